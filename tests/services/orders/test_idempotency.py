"""Idempotency-Key as the IETF draft has it, and each customer sees only their own orders."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tests.services.orders.conftest import CUSTOMER_SCOPES, SKU, Shop, cart


async def _stock(shop: Shop, units: int) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", units)
    await shop.set_on_hand(SKU, "DC-SOUTH", 0)


async def test_a_replay_answers_the_first_response_and_orders_once(shop: Shop) -> None:
    await _stock(shop, 10)
    body = cart((SKU, 2))
    first = await shop.checkout("alice", body, key="k-1")
    again = await shop.checkout("alice", body, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert first.headers["idempotent-replayed"] == "false"
    assert again.headers["idempotent-replayed"] == "true"
    assert await shop.ats(SKU) == 8  # reserved once
    # a rejection replays too, as the same problem
    big = cart((SKU, 9))  # within the line limit, more than the 8 left
    refused = await shop.checkout("alice", big, key="k-2")
    replay = await shop.checkout("alice", big, key="k-2")
    assert refused.status_code == replay.status_code == 409
    # the same problem; like every problem, each answer names its own request
    assert {**replay.json(), "request_id": None} == {**refused.json(), "request_id": None}
    for answer in (refused, replay):
        assert answer.json()["request_id"] == answer.headers["x-request-id"]
        assert answer.json()["instance"] == "/v1/orders/orders"
    assert replay.headers["content-type"].startswith("application/problem+json")


async def test_the_same_key_with_another_body_is_422(shop: Shop) -> None:
    await _stock(shop, 10)
    assert (await shop.checkout("alice", cart((SKU, 1)), key="k-3")).status_code == 201
    other = await shop.checkout("alice", cart((SKU, 2)), key="k-3")
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert await shop.ats(SKU) == 9


async def test_keys_are_forgotten_after_their_time_to_live(shop: Shop) -> None:
    await _stock(shop, 10)
    body = cart((SKU, 1))
    first = await shop.checkout("alice", body, key="k-old")
    orders = shop.running.app.registry.apps["orders"].state.holder["orders"]
    assert await orders.purge_keys(timedelta(hours=24)) == 0  # young keys stay
    assert (await shop.checkout("alice", body, key="k-old")).json() == first.json()
    later = datetime.now(UTC) + timedelta(hours=25)
    assert await orders.purge_keys(timedelta(hours=24), now=later) == 1
    again = await shop.checkout("alice", body, key="k-old")  # a new checkout now
    assert again.status_code == 201 and again.json()["order_id"] != first.json()["order_id"]


async def test_keys_belong_to_their_caller(shop: Shop) -> None:
    await _stock(shop, 10)
    body = cart((SKU, 1))
    a = await shop.checkout("alice", body, key="shared")
    b = await shop.checkout("bob", body, key="shared")
    assert a.status_code == b.status_code == 201
    assert a.json()["order_id"] != b.json()["order_id"]


async def test_the_same_key_while_the_first_runs_is_409_and_one_order_is_made(
    shop: Shop,
) -> None:
    await _stock(shop, 100)
    body = cart((SKU, 1))
    await shop.checkout("warmup", cart((SKU, 1)))  # prices cached: the race is in the saga
    # carol's app retries twenty times at once: more than a customer's plan takes in a
    # second, so this race runs as a backend of the retailer's (role service, its plan)
    headers = {**shop.token("carol", *CUSTOMER_SCOPES, roles=["service"])}
    headers["Idempotency-Key"] = '"k-race"'
    results = await asyncio.gather(
        *(shop.gateway.post("/v1/orders/orders", json=body, headers=headers) for _ in range(20))
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert 409 in statuses
    busy = next(r for r in results if r.status_code == 409)
    assert busy.json()["type"].endswith("/idempotency-key-in-flight")
    assert busy.headers["retry-after"]
    made = {r.json()["order_id"] for r in results if r.status_code == 201}
    assert len(made) == 1
    assert [r.headers["idempotent-replayed"] for r in results if r.status_code == 201].count(
        "false"
    ) == 1
    assert await shop.ats(SKU) == 98
    replay = await shop.gateway.post("/v1/orders/orders", json=body, headers=headers)
    assert replay.status_code == 201 and replay.json()["order_id"] in made


async def test_a_checkout_without_a_key_is_400(shop: Shop) -> None:
    r = await shop.gateway.post(
        "/v1/orders/orders", json=cart((SKU, 1)), headers=shop.token("alice")
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"] == [
        {"field": "Idempotency-Key", "message": "required", "source": "header"}
    ]


async def test_another_customers_order_is_404_to_read_and_to_cancel(shop: Shop) -> None:
    await _stock(shop, 10)
    mine = (await shop.checkout("alice", cart((SKU, 1)))).json()["order_id"]
    path = f"/v1/orders/orders/{mine}"
    assert (await shop.gateway.get(path, headers=shop.token("alice"))).status_code == 200
    peek = await shop.gateway.get(path, headers=shop.token("mallory"))
    assert peek.status_code == 404 and peek.json()["type"].endswith("/unknown-order")
    cancel = await shop.gateway.post(path + "/cancel", headers=shop.token("mallory"))
    assert cancel.status_code == 404
    assert (await shop.order(mine))["status"] in ("confirmed", "posted")
    listed = await shop.gateway.get("/v1/orders/orders", headers=shop.token("mallory"))
    assert listed.json()["items"] == []
    unknown = f"/v1/orders/orders/ord-{uuid.uuid4().hex}"
    assert (await shop.gateway.get(unknown, headers=shop.token("alice"))).status_code == 404
    # a store sees only pick-ups at itself
    till = shop.token("till-1", "orders:read", "orders:pickup", store_id="STORE-001")
    assert (await shop.gateway.get(path, headers=till)).status_code == 404
    other_store = await shop.gateway.get("/v1/orders/stores/STORE-002/orders", headers=till)
    assert other_store.status_code == 403
