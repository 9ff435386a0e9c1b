"""The flows of the public API as OpenAPI links (OpenAPI 3.1, 4.8.20): from an operation that
creates or lists a resource to those that take its id, with the expression that finds the id
in the answer. A client reads them as "what to call next"; a stateful fuzzer (schemathesis,
`make fuzz`) follows them to reach the operations behind an id, which random ids never reach.

Links name their target by method and public path; `add_links` writes the target's
operationId, and leaves out a link whose source or target is not published (a retired
version, a route the gateway does not expose).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["LINKS", "Link", "add_links"]


class Link(NamedTuple):
    source: str  # "POST /v2/web/checkout 201"
    name: str
    target: str  # "GET /v2/web/orders/{order_id}"
    parameters: dict[str, str]
    body: dict[str, str] | None = None


ORDER = "$response.body#/order_id"


def _order_flow(checkout: str, prefix: str) -> list[Link]:
    """A new order's next calls: its page, a return, and the moves of its life."""
    order = {"order_id": ORDER}
    return [
        Link(checkout, "TheOrder", f"GET {prefix}/orders/{{order_id}}", order),
        Link(checkout, "ReturnIt", f"POST {prefix}/returns", {}, order),
    ]


_MOVES = ["cancel", "ready", "collect", "ship", "deliver"]


def _operator_moves(checkout: str) -> list[Link]:
    return [
        Link(
            checkout,
            f"Operator{move.title()}",
            f"POST /v1/orders/orders/{{order_id}}/{move}",
            {"order_id": ORDER},
        )
        for move in _MOVES
    ] + [
        Link(
            checkout, "StoreReady", "POST /v1/store/pickups/{order_id}/ready", {"order_id": ORDER}
        ),
        Link(
            checkout,
            "StoreCollect",
            "POST /v1/store/pickups/{order_id}/collect",
            {"order_id": ORDER},
        ),
        Link(checkout, "CareCancel", "POST /v1/care/orders/{order_id}/cancel", {"order_id": ORDER}),
        Link(checkout, "StoreReturn", "POST /v1/store/returns", {}, {"order_id": ORDER}),
    ]


def _returns(create: str, get: str) -> Link:
    return Link(create, "TheReturn", get, {"return_id": "$response.body#/return_id"})


LINKS: list[Link] = [
    # orders, from every channel that takes them
    *_order_flow("POST /v2/web/checkout 201", "/v2/web"),
    *_operator_moves("POST /v2/web/checkout 201"),
    *_order_flow("POST /v1/web/checkout 201", "/v1/web"),
    *_operator_moves("POST /v1/orders/orders 201"),
    Link(
        "POST /v1/orders/orders 201",
        "TheOrder",
        "GET /v1/orders/orders/{order_id}",
        {"order_id": ORDER},
    ),
    Link(
        "POST /v1/orders/orders 201", "ReturnIt", "POST /v1/orders/returns", {}, {"order_id": ORDER}
    ),
    Link(
        "POST /v1/partner/orders 201",
        "TheOrder",
        "GET /v1/partner/orders/{order_id}",
        {"order_id": ORDER},
    ),
    Link(
        "GET /v2/web/orders 200",
        "FirstOrder",
        "GET /v2/web/orders/{order_id}",
        {"order_id": "$response.body#/items/0/order_id"},
    ),
    Link(
        "GET /v1/orders/orders 200",
        "FirstOrder",
        "GET /v1/orders/orders/{order_id}",
        {"order_id": "$response.body#/items/0/order_id"},
    ),
    # returns
    _returns("POST /v2/web/returns 201", "GET /v2/web/returns/{return_id}"),
    _returns("POST /v1/web/returns 201", "GET /v1/web/returns/{return_id}"),
    _returns("POST /v1/orders/returns 201", "GET /v1/orders/returns/{return_id}"),
    _returns("POST /v1/store/returns 201", "GET /v1/orders/returns/{return_id}"),
    # reservations
    *[
        Link(
            "POST /v1/inventory/reservations 201",
            name,
            target,
            {"reservation_id": "$response.body#/reservation_id"},
        )
        for name, target in (
            ("TheReservation", "GET /v1/inventory/reservations/{reservation_id}"),
            ("Confirm", "POST /v1/inventory/reservations/{reservation_id}/confirm"),
            ("Release", "POST /v1/inventory/reservations/{reservation_id}/release"),
        )
    ],
    # loyalty: a member's account, and a hold's settlement
    *[
        Link(
            "POST /v1/loyalty/members 201", name, target, {"member_id": "$response.body#/member_id"}
        )
        for name, target in (
            ("TheMember", "GET /v1/loyalty/members/{member_id}"),
            ("Ledger", "GET /v1/loyalty/members/{member_id}/ledger"),
            ("Hold", "POST /v1/loyalty/members/{member_id}/holds"),
            ("Earn", "POST /v1/loyalty/members/{member_id}/earnings"),
            ("Adjust", "POST /v1/loyalty/members/{member_id}/adjustments"),
        )
    ],
    *[
        Link(
            "POST /v1/loyalty/members/{member_id}/holds 201",
            name,
            target,
            {"hold_id": "$response.body#/hold_id"},
        )
        for name, target in (
            ("Capture", "POST /v1/loyalty/holds/{hold_id}/capture"),
            ("Release", "POST /v1/loyalty/holds/{hold_id}/release"),
        )
    ],
    # a till's sales
    Link(
        "POST /v1/pos/transactions/batches 200",
        "FirstSale",
        "GET /v1/pos/transactions/{transaction_id}",
        {"transaction_id": "$response.body#/results/0/transaction_id"},
    ),
    # the operator's: keys of a partner, dead letters to replay
    Link(
        "POST /admin/v1/partners 201",
        "KeyFor",
        "POST /admin/v1/keys",
        {},
        {"partner_id": "$response.body#/id"},
    ),
    *[
        Link("POST /admin/v1/keys 201", name, target, {"key_id": "$response.body#/record/id"})
        for name, target in (
            ("Rotate", "POST /admin/v1/keys/{key_id}/rotate"),
            ("Revoke", "POST /admin/v1/keys/{key_id}/revoke"),
        )
    ],
    Link(
        "GET /admin/v1/dead-letters/{stream} 200",
        "Replay",
        "POST /admin/v1/dead-letters/{stream}/{letter_id}/replay",
        {
            "stream": "$request.path.stream",
            "letter_id": "$response.body#/0/id",
        },
    ),
]


def add_links(paths: dict[str, Any], links: list[Link] = LINKS) -> None:
    """Write `links` into the operations of `paths` (a spec's), in place."""
    for link in links:
        method, path, status = link.source.split()
        source = paths.get(path, {}).get(method.lower())
        target_method, target_path = link.target.split()
        target = paths.get(target_path, {}).get(target_method.lower())
        if source is None or target is None or status not in source.get("responses", {}):
            continue
        definition: dict[str, Any] = {"operationId": target["operationId"]}
        if link.parameters:
            definition["parameters"] = link.parameters
        if link.body is not None:
            definition["requestBody"] = link.body
        source["responses"][status].setdefault("links", {})[link.name] = definition
