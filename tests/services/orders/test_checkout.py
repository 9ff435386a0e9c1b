"""Checkout as a saga: stock and points held, the order confirmed, then posted to the ERP
once; refusals compensate and answer problem+json."""

from __future__ import annotations

from tests.services.orders.conftest import SKU, Shop, cart, eventually, patiently


async def test_a_checkout_confirms_posts_once_and_commits_its_stock(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 10)
    await shop.set_on_hand(SKU, "DC-SOUTH", 0)
    r = await shop.checkout("alice", cart((SKU, 3)))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "confirmed" and order["customer"] == "alice"
    assert order["lines"][0]["location_id"] == "DC-NORTH"
    price = order["lines"][0]["unit_price"]["amount"]
    assert order["total"]["amount"] == 3 * price
    assert await shop.ats(SKU) == 7

    async def posted() -> bool:
        return (await shop.order(order["order_id"]))["status"] == "posted"

    await eventually(posted)
    postings = await shop.postings(order["order_id"])
    assert len(postings) == 1 and postings[0]["lines"][0]["quantity"] == 3
    # the ERP's stock moved and the reservation was committed: ATS counts the units once
    await eventually(lambda: _ats_is(shop, 7))
    history = [h["status"] for h in (await shop.order(order["order_id"]))["history"]]
    assert history == ["pending", "confirmed", "posted"]


async def _ats_is(shop: Shop, units: int) -> bool:
    return await shop.ats(SKU) == units


async def test_out_of_stock_is_409_and_releases_the_lines_already_reserved(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 5)
    await shop.set_on_hand(SKU, "DC-SOUTH", 0)
    await shop.set_on_hand("SKU-000078", "DC-NORTH", 0)
    await shop.set_on_hand("SKU-000078", "DC-SOUTH", 0)
    r = await shop.checkout("bob", cart((SKU, 2), ("SKU-000078", 1)))
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("/out-of-stock")
    order = await shop.order(problem["order_id"])
    assert order["status"] == "rejected" and "SKU-000078" in order["reason"]
    assert await shop.ats(SKU) == 5  # the first line's reservation was given back


async def test_points_are_held_then_redeemed_and_not_enough_points_is_422(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 10)
    await shop.set_on_hand(SKU, "DC-SOUTH", 0)
    await shop.enrol("M-CAROL", "carol", 500)
    r = await shop.checkout("carol", cart((SKU, 1), redeem={"member_id": "M-CAROL", "points": 300}))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["points_redeemed"] == 300
    # once posted, the order earns its points: 1 a euro at the base tier
    earned = order["total"]["amount"] // 100
    await eventually(lambda: _balance_is(shop, "M-CAROL", 200 + earned))
    assert (await shop.account("M-CAROL"))["held"] == 0
    too_many = 200 + earned + 1
    r = await shop.checkout(
        "carol", cart((SKU, 1), redeem={"member_id": "M-CAROL", "points": too_many})
    )
    assert r.status_code == 422 and r.json()["type"].endswith("/insufficient-points")
    assert await shop.ats(SKU) == 9  # the second order's unit came back
    assert (await shop.account("M-CAROL"))["available"] == 200 + earned


async def _balance_is(shop: Shop, member: str, points: int) -> bool:
    return bool((await shop.account(member))["balance"] == points)


async def test_an_order_earns_points_for_the_customers_own_member_only(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 10)
    await shop.enrol("M-KIM", "kim", 0)
    r = await shop.checkout("kim", cart((SKU, 2), member_id="M-KIM"))
    assert r.status_code == 201, r.text
    earned = r.json()["total"]["amount"] // 100
    await eventually(lambda: _balance_is(shop, "M-KIM", earned))
    ledger = (await shop.loyalty.get("/members/M-KIM/ledger")).json()["entries"]
    assert [(e["kind"], e["source_id"]) for e in ledger][-1] == ("earn", r.json()["order_id"])
    other = await shop.checkout("lee", cart((SKU, 1), member_id="M-KIM"))
    assert other.status_code == 422 and other.json()["type"].endswith("/member-not-found")


async def test_another_customers_points_cannot_be_redeemed(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 10)
    await shop.enrol("M-DAN", "dan", 500)
    r = await shop.checkout("eve", cart((SKU, 1), redeem={"member_id": "M-DAN", "points": 100}))
    assert r.status_code == 422 and r.json()["type"].endswith("/member-not-found")
    assert (await shop.account("M-DAN"))["balance"] == 500


async def test_unknown_skus_are_422_a_pickup_without_store_400_and_nothing_is_created(
    shop: Shop,
) -> None:
    r = await shop.checkout("frank", cart(("SKU-999999", 1)))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "lines[0].sku"
    # the store of a pick-up, and only of one: a rule of the published schema (if/then/else)
    for bad in (
        cart((SKU, 1), fulfilment="pickup"),
        cart((SKU, 1), pickup_store_id="STORE-001"),
    ):
        r = await shop.checkout("frank", bad)
        assert r.status_code == 400 and r.json()["type"].endswith("/validation"), r.text
        assert "pickup_store_id" in r.json()["errors"][0]["message"]
    mine = await shop.gateway.get("/v1/orders/orders", headers=shop.token("frank"))
    assert mine.status_code == 200 and mine.json()["items"] == []


async def test_checkout_limits_and_pickup_stores_come_from_the_configuration(shop: Shop) -> None:
    """A flash sale's stock is not hoarded by one basket, a pick-up is only at a store that
    offers it (a distribution centre or an unknown store: 422 on the field, not "out of
    stock"), and nothing is left behind by a refused checkout."""
    await shop.set_on_hand(SKU, "DC-NORTH", 2000)
    before = await shop.ats(SKU)
    hoard = await shop.checkout("grace", cart((SKU, 1000)))
    assert hoard.status_code == 422, hoard.text
    assert {"field": "lines[0].quantity", "message": "at most 10 units per line on web"} in (
        hoard.json()["errors"]
    )
    many = await shop.checkout(
        "grace", cart((SKU, 10), ("SKU-000124", 10), ("SKU-000125", 10), ("SKU-000126", 1))
    )
    assert many.status_code == 422
    assert {"field": "lines", "message": "at most 30 units per order on web"} in many.json()[
        "errors"
    ]
    for store, why in (
        ("DC-NORTH", "DC-NORTH offers no pick-up"),
        ("STORE-999", "STORE-999 offers no pick-up"),
    ):
        r = await shop.checkout("grace", cart((SKU, 1), fulfilment="pickup", pickup_store_id=store))
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "pickup_store_id", "message": why}]
    mine = await patiently(
        lambda: shop.gateway.get("/v1/orders/orders", headers=shop.token("grace"))
    )
    assert mine.status_code == 200 and mine.json()["items"] == []
    assert await shop.ats(SKU) == before  # nothing reserved
    ok = await shop.checkout("grace", cart((SKU, 10)))
    assert ok.status_code == 201, ok.text
