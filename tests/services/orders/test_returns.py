"""Returns of online orders (online and at a store) and of store sales (by receipt):
eligibility, the ERP refund, points, stock back in the ATS, each once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.services.orders.conftest import SKU, Shop, cart, eventually, patiently

OTHER = "SKU-000078"


async def _posted_order(shop: Shop, customer: str, *lines: tuple[str, int], **kw: Any) -> Any:
    r = await shop.checkout(customer, cart(*lines, **kw))
    assert r.status_code == 201, r.text
    order = r.json()

    async def posted() -> bool:
        return (await shop.order(order["order_id"]))["status"] == "posted"

    await eventually(posted)
    return order


async def _delivered_order(shop: Shop, customer: str, *lines: tuple[str, int], **kw: Any) -> Any:
    """An order the customer has: posted, shipped and delivered (only such is returned)."""
    order = await _posted_order(shop, customer, *lines, **kw)
    for step in ("ship", "deliver"):
        r = await shop.orders.post(f"/orders/{order['order_id']}/{step}")
        assert r.status_code == 200, r.text
    return order


async def _return(
    shop: Shop, who: dict[str, str], body: dict[str, Any], key: str | None = None
) -> Any:
    headers = {**who, "Idempotency-Key": f'"{key or uuid.uuid4()}"'}
    return await shop.gateway.post("/v1/orders/returns", json=body, headers=headers)


def customer(shop: Shop, sub: str) -> dict[str, str]:
    return shop.token(sub, "orders:return", "orders:read", "orders:write")


async def _refunded(shop: Shop, return_id: str) -> dict[str, Any]:
    async def done() -> bool:
        r = await shop.orders.get(f"/returns/{return_id}")
        return bool(r.json()["status"] == "refunded")

    await eventually(done)
    body: dict[str, Any] = (await shop.orders.get(f"/returns/{return_id}")).json()
    return body


async def test_an_online_return_refunds_restocks_and_takes_back_points_once(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 10)
    await shop.set_on_hand(SKU, "DC-SOUTH", 0)
    await shop.enrol("M-RITA", "rita", 1000)
    order = await _delivered_order(
        shop, "rita", (SKU, 4), redeem={"member_id": "M-RITA", "points": 400}
    )
    oid, price = order["order_id"], order["lines"][0]["unit_price"]["amount"]
    earned = order["total"]["amount"] // 100
    await eventually(lambda: _points(shop, "M-RITA", 600 + earned))
    body = {
        "order_id": oid,
        "lines": [
            {"sku": SKU, "quantity": 1},
            {"sku": SKU, "quantity": 1, "disposition": "damaged"},
        ],
    }
    r = await _return(shop, customer(shop, "rita"), body, key="ret-1")
    assert r.status_code == 201, r.text
    accepted = r.json()
    assert accepted["status"] == "accepted" and accepted["refund"]["amount"] == 2 * price
    assert accepted["points_returned"] == 200  # half the order: half the redeemed points
    replay = await _return(shop, customer(shop, "rita"), body, key="ret-1")
    assert replay.json() == accepted and replay.headers["idempotent-replayed"] == "true"
    done = await _refunded(shop, accepted["return_id"])
    assert done["status"] == "refunded"
    postings = await shop.postings(oid)
    refund = [p for p in postings if p["kind"] == "refund"]
    assert len(refund) == 1 and refund[0]["amount"]["amount"] == 2 * price
    # one unit back on the shelf (the damaged one is not): 10 - 4 + 1
    await eventually(lambda: _ats(shop, 7))
    # points: redeemed 400, half given back; earned on 4 units, half taken back
    half_earned = earned // 2
    await eventually(lambda: _points(shop, "M-RITA", 600 + earned + 200 - half_earned))
    # two more of the four can be returned, not three
    too_many = await _return(
        shop, customer(shop, "rita"), {"order_id": oid, "lines": [{"sku": SKU, "quantity": 3}]}
    )
    assert too_many.status_code == 409
    assert too_many.json()["errors"][0]["field"] == "lines[0].quantity"


async def _points(shop: Shop, member: str, points: int) -> bool:
    return bool((await shop.account(member))["balance"] == points)


async def _ats(shop: Shop, units: int, sku: str = SKU, channel: str = "web") -> bool:
    return await shop.ats(sku, channel) == units


async def _rung_up(
    shop: Shop, lines: list[dict[str, Any]], *, paid: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """A sale at STORE-001's till T1 (its first), paid by card, synced to the POS; the sale
    and the till's credentials."""
    pos_till = shop.token("till-1", "pos:write", "pos:read", store_id="STORE-001")
    sale = {
        "transaction_id": str(uuid.uuid4()),
        "kind": "sale",
        "store_id": "STORE-001",
        "till_id": "T1",
        "sequence": 1,
        "occurred_at": _now(),
        "lines": lines,
        "tenders": [{"kind": "card", "amount": {"amount": paid, "currency": "EUR"}}],
    }
    up = await shop.gateway.post(
        "/v1/pos/transactions/batches", json={"transactions": [sale]}, headers=pos_till
    )
    assert up.json()["accepted"] == 1, up.text
    return sale, pos_till


async def test_a_store_takes_back_an_online_order_into_its_own_stock(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 5)
    await shop.set_on_hand(SKU, "STORE-001", 0)
    await shop.set_on_hand(SKU, "STORE-002", 0)
    order = await _delivered_order(shop, "sam", (SKU, 2))
    till = shop.token("till-2", "orders:return", "orders:read", store_id="STORE-002")
    r = await _return(
        shop, till, {"order_id": order["order_id"], "lines": [{"sku": SKU, "quantity": 2}]}
    )
    assert r.status_code == 201, r.text
    assert {line["location_id"] for line in r.json()["lines"]} == {"STORE-002"}
    await _refunded(shop, r.json()["return_id"])
    await eventually(lambda: _ats(shop, 2, channel="pickup"))  # STORE-002 has the two


async def test_returns_are_refused_for_others_orders_unbooked_orders_and_unknown_lines(
    shop: Shop,
) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 10)
    order = await _delivered_order(shop, "tom", (SKU, 1))
    body = {"order_id": order["order_id"], "lines": [{"sku": SKU, "quantity": 1}]}
    assert (await _return(shop, customer(shop, "uma"), body)).status_code == 404
    wrong = await _return(
        shop, customer(shop, "tom"), {**body, "lines": [{"sku": OTHER, "quantity": 1}]}
    )
    assert wrong.status_code == 409 and wrong.json()["errors"][0]["field"] == "lines[0].sku"
    both = await _return(shop, customer(shop, "tom"), {**body, "receipt": str(uuid.uuid4())})
    assert both.status_code == 400 and both.json()["type"].endswith("/validation")
    cancelled = (await shop.checkout("tom", cart((SKU, 1)))).json()["order_id"]
    await shop.orders.post(f"/orders/{cancelled}/cancel")
    r = await _return(
        shop, customer(shop, "tom"), {"order_id": cancelled, "lines": [{"sku": SKU, "quantity": 1}]}
    )
    assert r.status_code == 409
    # a customer cannot return a store sale by its receipt: the store does
    receipt = await _return(
        shop,
        customer(shop, "tom"),
        {"receipt": str(uuid.uuid4()), "lines": [{"sku": SKU, "quantity": 1}]},
    )
    assert receipt.status_code == 403


async def test_a_store_sale_is_returned_by_its_receipt_with_its_discount(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "STORE-001", 10)
    line = {
        "sku": SKU,
        "quantity": 4,
        "unit_price": {"amount": 1000, "currency": "EUR"},
        "discount": 400,
    }
    sale, pos_till = await _rung_up(shop, [line], paid=3600)
    tid = sale["transaction_id"]
    till = shop.token("till-1", "orders:return", "orders:read", store_id="STORE-001")
    r = await _return(shop, till, {"receipt": tid, "lines": [{"sku": SKU, "quantity": 1}]})
    assert r.status_code == 201, r.text
    ret = r.json()
    assert ret["receipt"] == tid and ret["refund"]["amount"] == 1000 - 100  # a quarter of it
    await _refunded(shop, ret["return_id"])
    refunds = [p for p in await shop.postings(tid) if p["kind"] == "refund"]
    assert len(refunds) == 1 and refunds[0]["posting_id"] == ret["return_id"]
    # a till rang up a return of two more; only one is left to return here
    till_return = {
        **sale,
        "transaction_id": str(uuid.uuid4()),
        "kind": "return",
        "sequence": 2,
        "original_transaction_id": tid,
        "lines": [{"sku": SKU, "quantity": 2, "unit_price": {"amount": 1000, "currency": "EUR"}}],
    }
    up = await shop.gateway.post(
        "/v1/pos/transactions/batches", json={"transactions": [till_return]}, headers=pos_till
    )
    assert up.json()["accepted"] == 1, up.text
    two = await _return(shop, till, {"receipt": tid, "lines": [{"sku": SKU, "quantity": 2}]})
    assert two.status_code == 409, two.text
    assert two.json()["code"] == "too-many-units"
    assert "1 left to return" in two.json()["errors"][0]["message"]
    one = await _return(shop, till, {"receipt": tid, "lines": [{"sku": SKU, "quantity": 1}]})
    assert one.status_code == 201, one.text
    # issue 12: the tills count the returns made by receipt here too: nothing is left
    last = {**till_return, "transaction_id": str(uuid.uuid4()), "sequence": 3}
    last["lines"] = [{"sku": SKU, "quantity": 1, "unit_price": {"amount": 1000, "currency": "EUR"}}]
    up = await shop.gateway.post(
        "/v1/pos/transactions/batches", json={"transactions": [last]}, headers=pos_till
    )
    (result,) = up.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "too-many-units"), result
    unknown = await _return(
        shop, till, {"receipt": str(uuid.uuid4()), "lines": [{"sku": SKU, "quantity": 1}]}
    )
    assert unknown.status_code == 404


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


async def _refund_postings(shop: Shop, oid: str) -> list[dict[str, Any]]:
    return [p for p in await shop.postings(oid) if p["kind"] == "refund"]


async def test_an_order_is_refunded_once_whether_returned_or_cancelled(shop: Shop) -> None:
    """Issue 12: an order returned in full could then be cancelled, and the ERP booked two
    refunds of the whole order. One refund path per order, whatever the order of calls."""
    await shop.set_on_hand(SKU, "DC-NORTH", 10)
    who = customer(shop, "vic")
    # not yet with the customer: a return is refused, a cancellation refunds (once)
    posted = await _posted_order(shop, "vic", (SKU, 2))
    body = {"order_id": posted["order_id"], "lines": [{"sku": SKU, "quantity": 2}]}
    early = await _return(shop, who, body)
    assert early.status_code == 409 and early.json()["status"] == 409, early.text
    cancel = await shop.gateway.post(f"/v1/orders/orders/{posted['order_id']}/cancel", headers=who)
    assert cancel.status_code == 200, cancel.text
    assert (await _return(shop, who, body)).status_code == 409  # cancelled: not returned too
    # with the customer: returned in full, then a cancellation is refused
    delivered = await _delivered_order(shop, "vic", (SKU, 2))
    oid = delivered["order_id"]
    r = await _return(shop, who, {"order_id": oid, "lines": [{"sku": SKU, "quantity": 2}]})
    assert r.status_code == 201, r.text
    await _refunded(shop, r.json()["return_id"])
    late = await shop.gateway.post(f"/v1/orders/orders/{oid}/cancel", headers=who)
    assert late.status_code == 409 and late.json()["type"].endswith("/illegal-transition")
    refunds = await _refund_postings(shop, oid)
    assert len(refunds) == 1 and refunds[0]["amount"] == delivered["total"]


async def test_a_pickup_order_is_returned_only_once_collected(shop: Shop) -> None:
    """Issue 12: a pick-up order could be returned (refunded) before it was collected, and
    then be marked ready and collected in full."""
    await shop.set_on_hand(SKU, "STORE-001", 5)
    r = await shop.checkout("wes", cart((SKU, 2), fulfilment="pickup", pickup_store_id="STORE-001"))
    assert r.status_code == 201, r.text
    oid, code = r.json()["order_id"], r.json()["pickup_code"]
    await eventually(lambda: _status(shop, oid, "posted"))
    body = {"order_id": oid, "lines": [{"sku": SKU, "quantity": 2}]}
    till = shop.token(
        "till-1", "orders:read", "orders:pickup", "orders:return", store_id="STORE-001"
    )
    assert (await _return(shop, customer(shop, "wes"), body)).status_code == 409
    path = f"/v1/orders/orders/{oid}"
    assert (await shop.gateway.post(path + "/ready", headers=till)).status_code == 200
    assert (await _return(shop, till, body)).status_code == 409  # on the shelf, not collected
    done = await shop.gateway.post(path + "/collect", json={"pickup_code": code}, headers=till)
    assert done.status_code == 200
    back = await _return(shop, till, body)
    assert back.status_code == 201, back.text
    await _refunded(shop, back.json()["return_id"])
    assert len(await _refund_postings(shop, oid)) == 1


async def _status(shop: Shop, oid: str, status: str) -> bool:
    return bool((await shop.order(oid))["status"] == status)


async def test_a_sku_rung_up_at_two_prices_refunds_what_was_paid(shop: Shop) -> None:
    # one unit at 1.00, one at 10.00 less 9.00: 2.00 paid for the two, 2.00 back for both
    # (a merge at the first line's price with both discounts refunded -7.00, forever refused)
    await shop.set_on_hand(SKU, "STORE-001", 10)
    lines = [
        {"sku": SKU, "quantity": 1, "unit_price": {"amount": 100, "currency": "EUR"}},
        {
            "sku": SKU,
            "quantity": 1,
            "unit_price": {"amount": 1000, "currency": "EUR"},
            "discount": 900,
        },
    ]
    sale, _ = await _rung_up(shop, lines, paid=200)
    till = shop.token("till-1", "orders:return", "orders:read", store_id="STORE-001")
    body = {"receipt": sale["transaction_id"], "lines": [{"sku": SKU, "quantity": 2}]}
    r = await _return(shop, till, body)
    assert r.status_code == 201, r.text
    assert r.json()["refund"]["amount"] == 200
    await _refunded(shop, r.json()["return_id"])


async def test_a_till_return_and_a_return_by_receipt_racing_take_the_last_unit_once(
    shop: Shop,
) -> None:
    """Issue 12: the tills and the orders service each checked only their own returns of
    a store sale; now both take the units at the POS, under the sale's lock."""
    await shop.set_on_hand(SKU, "STORE-001", 10)
    pos_till = shop.token("till-2", "pos:write", "pos:read", store_id="STORE-001")
    till = shop.token("till-2", "orders:return", "orders:read", store_id="STORE-001")
    price = {"amount": 1000, "currency": "EUR"}
    for round_ in range(5):
        tid = str(uuid.uuid4())
        sale = {
            "transaction_id": tid,
            "kind": "sale",
            "store_id": "STORE-001",
            "till_id": "T2",
            "sequence": 2 * round_ + 1,
            "occurred_at": _now(),
            "lines": [{"sku": SKU, "quantity": 1, "unit_price": price}],
            "tenders": [{"kind": "card", "amount": price}],
        }
        back = {
            **sale,
            "transaction_id": str(uuid.uuid4()),
            "kind": "return",
            "sequence": 2 * round_ + 2,
            "original_transaction_id": tid,
            "tenders": [],
        }
        up = await patiently(
            lambda sale=sale: shop.gateway.post(
                "/v1/pos/transactions/batches", json={"transactions": [sale]}, headers=pos_till
            )
        )
        assert up.json()["accepted"] == 1, up.text
        at_till, by_receipt = await asyncio.gather(
            patiently(
                lambda back=back: shop.gateway.post(
                    "/v1/pos/transactions/batches", json={"transactions": [back]}, headers=pos_till
                )
            ),
            _return(shop, till, {"receipt": tid, "lines": [{"sku": SKU, "quantity": 1}]}),
        )
        took = [at_till.json()["accepted"] == 1, by_receipt.status_code == 201]
        assert took.count(True) == 1, (at_till.text, by_receipt.text)
