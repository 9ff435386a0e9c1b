"""The order lifecycle: posting waits out an ERP outage, pick-up with the store's identity
and the customer's code, cancellation gives back stock and points, illegal moves are 409."""

from __future__ import annotations

from typing import Any

from tests.services.orders.conftest import SKU, Shop, cart, eventually


async def _stock(shop: Shop, sku: str, location: str, units: int) -> None:
    await shop.set_on_hand(sku, location, units)


async def _status_is(shop: Shop, order_id: str, status: str) -> bool:
    return (await shop.order(order_id))["status"] == status


async def test_with_the_erp_down_orders_confirm_and_are_posted_once_it_is_back(
    shop: Shop,
) -> None:
    await _stock(shop, SKU, "DC-NORTH", 20)
    await _stock(shop, SKU, "DC-SOUTH", 0)
    warm = (await shop.checkout("warmup", cart((SKU, 1)))).json()["order_id"]
    await eventually(lambda: _status_is(shop, warm, "posted"))  # and its price is known
    erp = shop.running.app.registry.apps["erp"].state.conditions
    erp.failure_rate = 1.0  # every ERP call now answers 503
    try:
        results = [await shop.checkout(f"c{n}", cart((SKU, 1))) for n in range(5)]
        assert [r.status_code for r in results] == [201] * 5
        ids = [r.json()["order_id"] for r in results]
        refused_before = erp.calls
        await eventually(lambda: _erp_was_called(erp, refused_before + 3))
        for oid in ids:
            assert (await shop.order(oid))["status"] == "confirmed"
    finally:
        erp.failure_rate = 0.0
    for oid in ids:
        await eventually(lambda oid=oid: _status_is(shop, oid, "posted"))
        assert len(await shop.postings(oid)) == 1
    totals = (await shop.erp.get(f"/postings/totals/{SKU}")).json()
    assert totals["order_postings"] == 6 and totals["ordered_units"] == 6


async def _erp_was_called(erp: Any, calls: int) -> bool:
    return bool(erp.calls >= calls)


async def test_pick_up_needs_the_store_and_the_customers_code(shop: Shop) -> None:
    await _stock(shop, SKU, "STORE-001", 5)
    r = await shop.checkout(
        "gina", cart((SKU, 2), fulfilment="pickup", pickup_store_id="STORE-001")
    )
    assert r.status_code == 201, r.text
    order = r.json()
    oid, code = order["order_id"], order["pickup_code"]
    assert order["lines"][0]["location_id"] == "STORE-001" and len(code) == 6
    await eventually(lambda: _status_is(shop, oid, "posted"))
    path = f"/v1/orders/orders/{oid}"
    till = shop.token("till-1", "orders:read", "orders:pickup", store_id="STORE-001")
    elsewhere = shop.token("till-9", "orders:read", "orders:pickup", store_id="STORE-002")
    assert (await shop.gateway.post(path + "/ready", headers=elsewhere)).status_code == 404
    ready = await shop.gateway.post(path + "/ready", headers=till)
    assert ready.status_code == 200 and ready.json()["status"] == "ready_for_pickup"
    assert ready.json().get("pickup_code") is None  # the store never sees the code
    waiting = await shop.gateway.get(
        "/v1/orders/stores/STORE-001/orders", params={"status": "ready_for_pickup"}, headers=till
    )
    assert [o["order_id"] for o in waiting.json()["items"]] == [oid]
    wrong = "000000" if code != "000000" else "111111"
    bad = await shop.gateway.post(path + "/collect", json={"pickup_code": wrong}, headers=till)
    assert bad.status_code == 403 and bad.json()["type"].endswith("/wrong-pickup-code")
    by_customer = await shop.gateway.post(
        path + "/collect", json={"pickup_code": code}, headers=shop.token("gina")
    )
    assert by_customer.status_code == 403  # the scope is the store's
    done = await shop.gateway.post(path + "/collect", json={"pickup_code": code}, headers=till)
    assert done.status_code == 200 and done.json()["status"] == "collected"
    again = await shop.gateway.post(path + "/collect", json={"pickup_code": code}, headers=till)
    assert again.status_code == 409 and again.json()["type"].endswith("/illegal-transition")
    history = [h["status"] for h in (await shop.order(oid))["history"]]
    assert history == ["pending", "confirmed", "posted", "ready_for_pickup", "collected"]


async def test_cancelling_a_posted_order_books_it_back_and_returns_the_points(
    shop: Shop,
) -> None:
    await _stock(shop, SKU, "DC-NORTH", 10)
    await _stock(shop, SKU, "DC-SOUTH", 0)
    await shop.enrol("M-HAL", "hal", 1000)
    r = await shop.checkout("hal", cart((SKU, 4), redeem={"member_id": "M-HAL", "points": 400}))
    assert r.status_code == 201, r.text
    oid = r.json()["order_id"]
    earned = r.json()["total"]["amount"] // 100
    await eventually(lambda: _status_is(shop, oid, "posted"))
    await eventually(lambda: _points_are(shop, "M-HAL", 600 + earned))
    cancel = await shop.gateway.post(f"/v1/orders/orders/{oid}/cancel", headers=shop.token("hal"))
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"

    async def refunded() -> bool:
        postings = await shop.postings(oid)
        return any(p["kind"] == "refund" for p in postings)

    await eventually(refunded)
    await eventually(lambda: _points_are(shop, "M-HAL", 1000))  # redeemed back, earned taken
    await eventually(lambda: _ats_is(shop, 10))  # the four units are back on the shelf
    kinds = sorted(p["kind"] for p in await shop.postings(oid))
    assert kinds == ["order", "refund"]
    again = await shop.gateway.post(f"/v1/orders/orders/{oid}/cancel", headers=shop.token("hal"))
    assert again.status_code == 409


async def test_cancelling_before_the_posting_releases_the_stock_and_posts_nothing(
    shop: Shop,
) -> None:
    await _stock(shop, SKU, "DC-NORTH", 10)
    await _stock(shop, SKU, "DC-SOUTH", 0)
    await shop.checkout("warmup", cart((SKU, 1)))
    erp = shop.running.app.registry.apps["erp"].state.conditions
    erp.failure_rate = 1.0  # the posting cannot happen yet
    try:
        oid = (await shop.checkout("ivy", cart((SKU, 3)))).json()["order_id"]
        assert await shop.ats(SKU) == 6
        r = await shop.gateway.post(f"/v1/orders/orders/{oid}/cancel", headers=shop.token("ivy"))
        assert r.status_code == 200
        await eventually(lambda: _ats_is(shop, 9))
    finally:
        erp.failure_rate = 0.0
    await eventually(
        lambda: _status_is(shop, "placeholder", "") if False else _no_posting(shop, oid)
    )
    assert (await shop.order(oid))["status"] == "cancelled"


async def _no_posting(shop: Shop, oid: str) -> bool:
    return await shop.postings(oid) == []


async def _points_are(shop: Shop, member: str, points: int) -> bool:
    return bool((await shop.account(member))["balance"] == points)


async def _ats_is(shop: Shop, units: int) -> bool:
    return await shop.ats(SKU) == units


async def test_shipping_is_for_fulfilment_and_only_in_order(shop: Shop) -> None:
    await _stock(shop, SKU, "DC-NORTH", 10)
    oid = (await shop.checkout("jack", cart((SKU, 1)))).json()["order_id"]
    await eventually(lambda: _status_is(shop, oid, "posted"))
    path = f"/v1/orders/orders/{oid}"
    warehouse = shop.token("wms", "orders:fulfil")
    assert (await shop.gateway.post(path + "/deliver", headers=warehouse)).status_code == 409
    assert (await shop.gateway.post(path + "/ship", headers=shop.token("jack"))).status_code == 403
    assert (await shop.gateway.post(path + "/ship", headers=warehouse)).status_code == 200
    delivered = await shop.gateway.post(path + "/deliver", headers=warehouse)
    assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"
    assert (
        await shop.gateway.post(path + "/cancel", headers=shop.token("jack"))
    ).status_code == 409


async def test_reservations_lost_with_redis_are_put_back_by_the_orders(
    shop: Shop, redis_client: Any, shop_env: dict[str, str]
) -> None:
    await _stock(shop, SKU, "DC-NORTH", 10)
    await _stock(shop, SKU, "DC-SOUTH", 0)
    warm = (await shop.checkout("warmup", cart((SKU, 1)))).json()["order_id"]
    await eventually(lambda: _status_is(shop, warm, "posted"))
    await eventually(lambda: _ats_is(shop, 9))
    erp = shop.running.app.registry.apps["erp"].state.conditions
    erp.failure_rate = 1.0  # confirmed orders wait for their posting, holding stock
    try:
        ids = [(await shop.checkout(f"r{n}", cart((SKU, 2)))).json()["order_id"] for n in range(2)]
        assert await shop.ats(SKU) == 5
        prefix = shop_env["REDIS_PREFIX"]
        lost = [
            k
            async for k in redis_client.scan_iter(match=prefix + "ats:*")
            if not k.decode().endswith(":pos")  # the positions cache survives; reservations go
        ]
        await redis_client.delete(*lost)
        assert await shop.ats(SKU) == 9  # as if the stock were free: an oversell waiting
        admin = shop.token("ops", roles=["admin"])
        path = "/v1/orders/operations/reservations/rebuild"
        assert (await shop.gateway.post(path, headers=shop.token("r0"))).status_code == 403
        report = await shop.gateway.post(path, headers=admin)
        assert report.status_code == 200, report.text
        assert report.json() == {"orders": 2, "reservations": 2, "refused": []}
        assert await shop.ats(SKU) == 5
        again = await shop.gateway.post(path, headers=admin)
        assert again.json()["reservations"] == 2 and await shop.ats(SKU) == 5  # once
        status = (await shop.inventory.get(f"/reservations/{ids[0]}.0")).json()["status"]
        assert status == "confirmed"  # it does not lapse while the ERP is away
    finally:
        erp.failure_rate = 0.0
    for oid in ids:
        await eventually(lambda oid=oid: _status_is(shop, oid, "posted"))
    await eventually(lambda: _ats_is(shop, 5))
