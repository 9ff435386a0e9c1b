"""QA's run: schemathesis, every check and every phase (examples, coverage, fuzzing, stateful
over the spec's links), against the gateway's published spec, through the gateway, with a
credential per role, as a QA engineer would point it at a mesh:

    .venv/bin/python -m tests.qa_fuzz [--mode embedded|mesh] [--max-examples N] [--seed S]

`make fuzz` runs it long in both modes; `tests/test_qa_fuzz.py` runs a bounded pass in `make
test`. The mesh is started here on a private data dir and Redis prefix, on the published
gateway config with the plans' limits raised to a fuzzer's pace (the limits are tested in
`tests/gateway/test_limits*.py` and `tests/test_modes.py`). Credentials, per role, by path:

- a customer (alice, the demo member M-ALICE) on the web shop;
- a till of STORE-002 on the store API;
- a partner's token (its partner registered here through the admin API) on the partner API;
- a customer-service supervisor on the care API;
- an operator everywhere else (the system and process APIs, the gateway's admin API).

Schema-valid input may break a business rule (an unknown SKU, amounts that do not add up,
points a member does not have): the spec documents those as 409 or 422 with their problem
types. It is never refused as invalid (400): that would mean the spec and the code disagree,
and it fails the run, as do the warnings that say the same ("schema validation mismatch") or
that an operation was never reached with data that exists ("missing test data").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from tests.modes import Mode, running_mode

__all__ = ["qa_config", "run"]

SHOPPER = ["orders:write", "orders:read", "orders:return"]
TILL = ["pos:write", "orders:pickup", "inventory:read", "orders:return", "loyalty:lookup"]
PARTNER = ["erp:stock", "inventory:read", "inventory:reserve", "partner:orders"]
CARE = ["care:read", "care:write"]
#: what a positive (schema-valid) case may be answered, besides success
BUSINESS_STATUSES = ["2xx", "3xx", "403", "404", "409", "422"]
#: what refuses a schema-invalid case: schemathesis's own list, and the gateway's documented
#: refusals of a request too large (413, 414, 431: an overlong query is 414 before routing)
REJECTION_STATUSES = [
    *("400", "401", "403", "404", "405", "406", "409", "413", "414", "415"),
    *("422", "428", "429", "431", "5xx"),
]
#: the operations that take returns of alice's online orders, each with its own orders
RETURN_POOLS = {
    "web1": r"^/v1/web/returns$",
    "web2": r"^/v2/web/returns$",
    "orders": r"^/v1/orders/returns$",
    "store": r"^/v1/store/returns$",
}
#: what QA's returnable orders hold
RETURNED_SKUS = ["SKU-000007", "SKU-000008", "SKU-000009"]
#: the till's store
TILL_STORE = "STORE-002"
#: where tests/qa_hooks.py finds the seeded ready pick-ups' codes (a JSON file's path)
PICKUP_CODES_ENV = "QA_PICKUP_CODES"


def qa_config(text: str) -> str:
    """The published gateway config, every plan's limits raised a thousandfold."""
    return re.sub(
        r"^(burst_per_second|per_minute|daily_quota) = (\d+)$",
        lambda m: f"{m[1]} = {int(m[2]) * 1000}",
        text,
        flags=re.MULTILINE,
    )


def _credentials(mode: Mode) -> dict[str, dict[str, str]]:
    partner = {"id": "qa-partner", "name": "QA's marketplace"}
    mode.client.post("/admin/v1/partners", json=partner, headers=mode.admin).raise_for_status()
    day = 86_400  # a long run outlives the usual hour
    return {
        "customer": mode.token("alice", *SHOPPER, ttl_s=day),
        "till": mode.token("till-qa", *TILL, store_id=TILL_STORE, ttl_s=day),
        # the partner's token, not an API key: the fuzzer revokes and rotates the keys it
        # finds in the admin API's listing, its own among them
        "partner": mode.token("qa-app", *PARTNER, partner_id=partner["id"], ttl_s=day),
        "care": mode.token("sup-qa", *CARE, ttl_s=day),
        "operator": mode.token("ops-qa", roles=["admin"], ttl_s=day),
    }


_ROLES = {
    # the orders API's own checkout and list too: a shopper's
    "customer": r"^/v[0-9]+/web/|^/v1/loyalty/accounts/mine$|^/v1/orders/orders$",
    "till": r"^/v[0-9]+/store/",
    "partner": r"^/v[0-9]+/partner/",
    "care": r"^/v[0-9]+/care/",
}


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _demo_orders(mode: Mode, creds: dict[str, dict[str, str]]) -> list[str]:
    """Alice's orders from the demo story (told in the background as the mesh starts)."""
    deadline = time.monotonic() + 60
    while True:
        page = mode.client.get("/v2/web/orders", headers=creds["customer"]).json()
        statuses = {o["status"] for o in page.get("items", [])}
        if {"delivered", "posted"} <= statuses:
            return sorted(o["order_id"] for o in page["items"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo story was not told: {page}")
        time.sleep(0.2)


def _place(
    mode: Mode, creds: dict[str, dict[str, str]], key: str, body: dict[str, object]
) -> str | None:
    """One of alice's orders, placed on the web shop and waited for until posted (None:
    out of stock there)."""
    r = mode.client.post(
        "/v2/web/checkout",
        json={"payment_reference": f"psp-{key}", **body},
        headers={**creds["customer"], "Idempotency-Key": f'"{key}"'},
    )
    if r.status_code == 409:
        return None
    r.raise_for_status()
    order_id: str = r.json()["order_id"]
    deadline = time.monotonic() + 60
    path = f"/v1/orders/orders/{order_id}"
    while mode.client.get(path, headers=creds["operator"]).json()["status"] != "posted":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{order_id} was not posted")
        time.sleep(0.1)
    return order_id


def _move(mode: Mode, who: dict[str, str], path: str) -> None:
    mode.client.post(path, headers=who).raise_for_status()


def _seed_data(mode: Mode, creds: dict[str, dict[str, str]], scale: int) -> dict[str, list[Any]]:
    """What the run's data points at, made through the API as a shop would make it: alice's
    delivered orders with units to return through every phase (`scale` of them), shipped
    ones to deliver, pick-ups at the till's store (some ready to collect), a partner's order,
    points holds to capture or release, and dead letters to replay."""
    demo = _demo_orders(mode, creds)  # first: alice's newest orders, before QA's own
    shipped: list[str] = []
    # pick-ups at the till's store, apart for the till and the operator (one's moves do not
    # use up the other's), half of them ready, with their codes
    pickups: dict[str, list[str]] = {"till": [], "ops": []}
    ready: dict[str, list[str]] = {"till": [], "ops": []}
    codes: dict[str, list[str]] = {"till": [], "ops": []}
    # each operation that takes returns has orders of its own: one's returns do not use up
    # the units another needs to be reached
    returnable: dict[str, list[str]] = {pool: [] for pool in RETURN_POOLS}
    for pool, orders in returnable.items():
        for n in range(scale):
            lines = [{"sku": sku, "quantity": 5} for sku in RETURNED_SKUS]
            order_id = _place(mode, creds, f"qa-returnable-{pool}-{n}", {"lines": lines})
            assert order_id is not None, "the distribution centres hold hundreds of each SKU"
            _move(mode, creds["operator"], f"/v1/orders/orders/{order_id}/ship")
            _move(mode, creds["operator"], f"/v1/orders/orders/{order_id}/deliver")
            orders.append(order_id)
    for n in range(3):
        body = {"lines": [{"sku": RETURNED_SKUS[0], "quantity": 1}]}
        order_id = _place(mode, creds, f"qa-shipped-{n}", body)
        assert order_id is not None
        _move(mode, creds["operator"], f"/v1/orders/orders/{order_id}/ship")
        shipped.append(order_id)
    # pick-ups of one unit of whatever the till's store holds (a store holds a few of each)
    placed = 0
    for n in range(1, 21):
        if placed == 4 * min(scale, 5):
            break
        body = {
            "lines": [{"sku": f"SKU-{n:06d}", "quantity": 1}],
            "fulfilment": "pickup",
            "pickup_store_id": TILL_STORE,
        }
        order_id = _place(mode, creds, f"qa-pickup-{n}", body)
        if order_id is None:
            continue
        who = ("till", "ops")[placed % 2]
        if placed % 4 >= 2:
            _move(mode, creds["till"], f"/v1/store/pickups/{order_id}/ready")
            view = mode.client.get(f"/v2/web/orders/{order_id}", headers=creds["customer"])
            # a bound code is its order's own when both are drawn (tests/qa_hooks.py: the
            # customer shows the code of the order collected); a random one is wrong, and
            # wrong codes lock a pick-up (an operator must then hand it over), as they should
            codes[who].append(view.json()["pickup_code"])
            ready[who].append(order_id)
        else:
            pickups[who].append(order_id)
        placed += 1
    partner = mode.client.post(
        "/v1/partner/orders",
        json={
            "customer_ref": "qa-buyer-1",
            "lines": [{"sku": RETURNED_SKUS[0], "quantity": 1}],
            "payment_reference": "psp-qa-partner",
        },
        headers={**creds["partner"], "Idempotency-Key": '"qa-partner-1"'},
    )
    partner.raise_for_status()
    # holds to capture, and others to release (a captured one cannot be released)
    holds: dict[str, list[str]] = {"capture": [], "release": []}
    for end, made in holds.items():
        for n in range(scale):
            hold = mode.client.post(
                "/v1/loyalty/members/M-ALICE/holds",
                json={"hold_id": f"qa-hold-{end}-{n}", "points": 10},
                headers=creds["operator"],
            )
            hold.raise_for_status()
            made.append(hold.json()["hold_id"])
    return {
        **{f"{end}_holds": made for end, made in holds.items()},
        "orders": [
            *demo,
            *(o for orders in returnable.values() for o in orders),
            *shipped,
            *(o for orders in [*pickups.values(), *ready.values()] for o in orders),
        ],
        **{f"returnable_{pool}": orders for pool, orders in returnable.items()},
        "shipped": shipped,
        **{f"pickups_{who}": orders for who, orders in pickups.items()},
        **{f"ready_{who}": orders for who, orders in ready.items()},
        **{f"codes_{who}": got for who, got in codes.items()},
        "partner_orders": [partner.json()["order_id"]],
        "letters": _dead_letters(mode, 2 * scale),
    }


def _dead_letters(mode: Mode, count: int) -> list[str]:
    """Letters in the ERP stream's dead-letter queue, as a consumer writes them (a replay
    puts the junk event back, and it comes back as a new letter)."""
    env = mode.gateway.env
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        return [
            client.xadd(
                env["REDIS_PREFIX"] + "dlq.events.erp",
                {
                    "stream": "events.erp",
                    "group": "ats",
                    "msg_id": "1-0",
                    "event_id": f"qa-{n}",
                    "type": "StockAdjusted",
                    "event": b'{"id": "qa"}',
                    "error": "RuntimeError: QA's letter",
                    "attempts": 5,
                    "failed_at": "2026-11-30T00:00:00+00:00",
                },
            ).decode()
            for n in range(count)
        ]
    finally:
        client.close()


def _binding(key: str, dictionary: str, probability: float) -> str:
    return f"{_toml(key)} = {_toml({'dictionary': dictionary, 'probability': probability})}"


def _operation(path_regex: str, bindings: dict[str, str], *, seen_ids: bool = True) -> list[str]:
    """Bindings for the operations whose path matches, most of the time. (A path regex only:
    schemathesis ORs the include filters of one entry, so a method beside it would widen
    the entry to every operation of that method.) `seen_ids=False`: not the ids schemathesis
    saw in other answers either, where only the bound ones fit (a return's order must be
    delivered and of its own pool; the orders other operations just made are neither)."""
    lines = [
        "[[operations]]",
        f"include-path-regex = {_toml(path_regex)}",
        "[operations.parameters]",
        *(_binding(key, name, 0.8) for key, name in bindings.items()),
        "",
    ]
    if not seen_ids:
        for phase in ("examples", "coverage", "fuzzing"):
            lines += [f"[operations.phases.{phase}.extra-data-sources]", "responses = false", ""]
    return lines


def _dictionaries(data: dict[str, list[Any]]) -> list[str]:
    """Values that exist in the seeded mesh, given half the time where a field takes them
    (most of the time where an operation needs them to get past its lookups), so that every
    operation is reached; the rest stays random."""
    values = {
        **data,
        "skus": [f"SKU-{n:06d}" for n in range(1, 21)],
        "quantities": [1, 2],
        "stores": [f"STORE-{n:03d}" for n in range(1, 10)],
        "members": ["M-ALICE", "M-BOB"],
        "alice": ["M-ALICE"],
        "returned_skus": RETURNED_SKUS,
        "web": ["web"],
        "few_points": [100],
        "streams": ["events.erp"],
        "zero": [0],
        "eur": ["EUR"],
        "locations": ["DC-NORTH", "DC-SOUTH", "STORE-001", "STORE-002"],
    }
    lines = []
    for name, items in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml(items)}", ""]
    everywhere = {
        "body.lines[*].sku": "skus",
        "body.lines[*].quantity": "quantities",
        "body.sku": "skus",
        "path.sku": "skus",
        "path.store_id": "stores",
        "body.pickup_store_id": "stores",
        "body.location_id": "stores",
        "query.store": "stores",
        "path.member_id": "members",
        "body.member_id": "members",
        "path.order_id": "orders",
    }
    lines.append("[parameters]")
    lines += [_binding(key, name, 0.5) for key, name in everywhere.items()]
    lines.append("")
    # a checkout of alice's: her member, a few of her points, shipped on the web
    checkout = {
        "body.member_id": "alice",
        "body.redeem.member_id": "alice",
        "body.redeem.points": "few_points",
        "body.channel": "web",
        "body.lines[*].quantity": "quantities",
        "body.lines[*].sku": "skus",
    }
    lines += _operation(r"/checkout$|^/v1/orders/orders$|^/v1/partner/orders$", checkout)
    for pool, regex in RETURN_POOLS.items():
        returns = {
            "body.order_id": f"returnable_{pool}",
            "body.lines[*].sku": "returned_skus",
            "body.lines[*].quantity": "quantities",
        }
        lines += _operation(regex, returns, seen_ids=False)
    lines += _operation(r"/deliver$", {"path.order_id": "shipped"})
    lines += _operation(r"^/v1/store/pickups/[^/]+/ready$", {"path.order_id": "pickups_till"})
    lines += _operation(r"^/v1/orders/orders/[^/]+/ready$", {"path.order_id": "pickups_ops"})
    # an order's id in a body: a return's is of the operation's own returnable orders (below;
    # any other order is not returnable), a care search's of any order
    lines += _operation(r"^/v1/care/customers/search$", {"body.order_id": "orders"})
    # a collect needs a ready pick-up and its code (paired by tests/qa_hooks.py)
    till_collect = {"path.order_id": "ready_till", "body.pickup_code": "codes_till"}
    lines += _operation(r"^/v1/store/pickups/[^/]+/collect$", till_collect)
    ops_collect = {"path.order_id": "ready_ops", "body.pickup_code": "codes_ops"}
    lines += _operation(r"^/v1/orders/orders/[^/]+/collect$", ops_collect)
    # a posting's amounts add up, which no schema says: at nothing a unit, they do, whatever
    # the lines and their quantities (the rest of the time, random amounts are refused 422)
    postings = {
        "body.lines[*].sku": "skus",
        "body.lines[*].location_id": "locations",
        "body.lines[*].unit_price.amount": "zero",
        "body.lines[*].unit_price.currency": "eur",
        "body.lines[*].discount": "zero",
        "body.total.amount": "zero",
        "body.total.currency": "eur",
        "body.amount.amount": "zero",
        "body.amount.currency": "eur",
    }
    lines += _operation(r"^/v1/erp/postings/(orders|refunds)$", postings)
    lines += _operation(r"^/v1/partner/orders/", {"path.order_id": "partner_orders"})
    lines += _operation(r"^/v1/loyalty/holds/[^/]+/capture$", {"path.hold_id": "capture_holds"})
    lines += _operation(r"^/v1/loyalty/holds/[^/]+/release$", {"path.hold_id": "release_holds"})
    lines += _operation(r"/replay$", {"path.stream": "streams", "path.letter_id": "letters"})
    return lines


def _pickup_codes(data: dict[str, list[Any]], path: Path) -> str:
    """The seeded ready pick-ups' codes by order, for the hook that pairs them."""
    pairs = {
        order: code
        for who in ("till", "ops")
        for order, code in zip(data[f"ready_{who}"], data[f"codes_{who}"], strict=True)
    }
    path.write_text(json.dumps(pairs))
    return str(path)


def _schemathesis_config(
    creds: dict[str, dict[str, str]],
    data: dict[str, list[Any]],
    path: Path,
    *,
    strict: bool,
) -> Path:
    lines = [
        *_dictionaries(data),
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {_toml(BUSINESS_STATUSES)}",
        "",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {_toml(REJECTION_STATUSES)}",
        "",
        # the credentials are the role's (below), not values generated for the schemes
        "[generation]",
        "with-security-parameters = false",
        "",
    ]
    if strict:
        lines += ["[warnings]", 'fail-on = ["missing_test_data", "validation_mismatch"]', ""]
    for role, regex in _ROLES.items():
        lines += [
            "[[operations]]",
            f"include-path-regex = {_toml(regex)}",
            f"headers = {_toml(creds[role])}",
            "",
        ]
    lines += [
        "[[operations]]",
        f"exclude-path-regex = {_toml('|'.join(_ROLES.values()))}",
        f"headers = {_toml(creds['operator'])}",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def run(
    mode_name: str = "embedded",
    *,
    max_examples: int = 100,
    seed: int | None = None,
    phases: str = "examples,coverage,fuzzing,stateful",
    strict: bool = True,
    extra: list[str] | None = None,
) -> tuple[int, str]:
    """Start a mode, provision the roles, run schemathesis; its exit code and output.
    `strict`: the warnings that mean data never reached an operation fail the run too."""
    tmp = Path(tempfile.mkdtemp(prefix="rm-qa-"))
    with running_mode(mode_name, tmp, qa_config) as mode:
        creds = _credentials(mode)
        data = _seed_data(mode, creds, scale=min(10, max(4, max_examples // 10)))
        config = _schemathesis_config(creds, data, tmp / "schemathesis.toml", strict=strict)
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{mode.gateway.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            phases,
            "--max-examples",
            str(max_examples),
            # one: Python 3.11's ast is not thread-safe (hypothesis parses lambdas' source,
            # and two workers broke it: "AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--no-color",
            *(["--seed", str(seed)] if seed is not None else []),
            *(extra or []),
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=tmp,  # no schemathesis.toml of the repository's: this run's own
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("qa_hooks.py")),
                PICKUP_CODES_ENV: _pickup_codes(data, tmp / "pickup-codes.json"),
            },
        )
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "mesh"], default="embedded")
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("extra", nargs="*", help="more options for `schemathesis run`")
    args = parser.parse_args()
    code, output = run(
        args.mode,
        max_examples=args.max_examples,
        seed=args.seed,
        phases=args.phases,
        extra=args.extra,
    )
    print(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
