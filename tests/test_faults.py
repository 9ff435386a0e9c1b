"""Faults injected into the running mesh heal by themselves: each scenario ends with every
accepted sale booked and every confirmed order posted once, nothing in the dead letters,
and prints how long the mesh took to recover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.mesh import build_embedded
from tests.conftest import Running, dev_issuer
from tests.services.orders.conftest import INVENTORY_TOML, Shop, cart
from tests.services.pos.test_batches import sale, till, upload
from tests.support import RedisServer, settle

SKU = "SKU-000077"


def recovered(scenario: str, started: float) -> None:
    print(f"\n[fault] {scenario}: recovered in {time.monotonic() - started:.1f} s")


@pytest.fixture
def env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "RELAY_INTERVAL_S": "0.05",
    }


@pytest.fixture
def admin(env: dict[str, str]) -> dict[str, str]:
    return {"Authorization": "Bearer " + dev_issuer(env).mint("ops", roles=["admin"])}


@pytest.fixture
async def busy_erp(env: dict[str, str]) -> AsyncIterator[Running]:
    """The mesh with an ERP that takes 3 requests a second and answers 429 past that."""
    busy = {**env, "ERP_RATE_LIMIT_RPS": "3", "RETRY_MAX_BACKOFF_S": "2"}
    async with Running(build_embedded(busy)) as running:
        yield running


async def test_a_busy_erp_books_every_sale_of_a_batch_and_dead_letters_none(
    busy_erp: Running, env: dict[str, str], admin: dict[str, str]
) -> None:
    mesh = busy_erp
    txs = [sale(n, till_id="T9") for n in range(1, 51)]
    ids = {tx["transaction_id"] for tx in txs}
    started = time.monotonic()
    answer = await upload(mesh, till(env), txs)
    assert answer.status_code == 200 and answer.json()["accepted"] == 50

    async def booked() -> int:
        r = await mesh.client.get(
            "/v1/erp/postings", params={"kind": "order", "limit": 200}, headers=admin
        )
        if r.status_code != 200:  # the ERP is busy for us too
            return -1
        return sum(1 for p in r.json()["items"] if p["posting_id"] in ids)

    seen_backlog = 0

    async def still_to_book() -> int:
        nonlocal seen_backlog
        r = await mesh.client.get("/admin/v1/backlog", headers=admin)
        assert r.status_code == 200, r.text
        waiting = r.json()
        left = sum(b["pending"] + b["undelivered"] for b in waiting if b["group"] == "pos-erp")
        seen_backlog = max(seen_backlog, left)
        return left

    # the ERP's own listing costs it requests too: watch the backlog, then count once
    await settle(still_to_book, lambda left: left == 0 and seen_backlog > 0, interval_s=0.5)
    recovered("ERP at 3 requests/s, 50-sale batch", started)
    assert await settle(booked, lambda n: n >= 0) == 50
    letters = (await mesh.client.get("/admin/v1/dead-letters/events.pos", headers=admin)).json()
    assert letters == []


@pytest.fixture
def healing_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Sweeps and watches that look often, so that a test sees them at work soon."""
    (tmp_path / "inventory.toml").write_text(INVENTORY_TOML)
    return {
        **env,
        "INVENTORY_CONFIG": str(tmp_path / "inventory.toml"),
        "SAGA_SWEEP_S": "0.2",
        "EFFECTS_SWEEP_S": "0.5",
        "EFFECTS_OVERDUE_S": "1",
        "POS_SWEEP_S": "0.5",
        "POS_BOOKING_OVERDUE_S": "1",
        "RETRY_MAX_BACKOFF_S": "1",
    }


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


async def _v(value: Any) -> Any:
    return value


async def _order_postings(shop: Shop, order_id: str) -> int:
    r = await shop.erp.get("/postings", params={"order_id": order_id})
    if r.status_code != 200:
        return -1
    return sum(1 for p in r.json()["items"] if p["kind"] == "order")


async def _statuses(shop: Shop, ids: list[str]) -> list[str]:
    return [(await shop.order(oid))["status"] for oid in ids]


async def _booked(shop: Shop, ids: set[str]) -> int:
    r = await shop.erp.get("/postings", params={"kind": "order", "limit": 200})
    if r.status_code != 200:
        return -1
    return sum(1 for p in r.json()["items"] if p["posting_id"] in ids)


async def _no_dead_letters(mesh: Running, admin: dict[str, str]) -> None:
    for stream in ("events.orders", "events.pos", "events.erp"):
        r = await mesh.client.get(f"/admin/v1/dead-letters/{stream}", headers=admin)
        assert r.status_code == 200 and r.json() == [], (stream, r.text)


async def test_redis_restarted_empty_while_the_erp_is_down_strands_nothing(
    healing_env: dict[str, str], private_redis: RedisServer, admin: dict[str, str]
) -> None:
    env = {**healing_env, "REDIS_URL": private_redis.url}
    async with Running(build_embedded(env)) as running:
        shop = Shop(running, env)
        try:
            await shop.set_on_hand(SKU, "DC-NORTH", 20)
            await shop.set_on_hand(SKU, "DC-SOUTH", 0)
            warm = (await shop.checkout_to_the_end("warm", cart((SKU, 1)))).json()["order_id"]
            await settle(lambda: _statuses(shop, [warm]), lambda s: s == ["posted"])
            erp: Any = running.app.registry.apps["erp"].state.conditions
            erp.failure_rate = 1.0  # the ERP is down: postings wait
            ids = []
            for n in range(6):
                r = await shop.checkout_to_the_end(f"c{n}", cart((SKU, 1)))
                assert r.status_code == 201, r.text
                ids.append(r.json()["order_id"])
            sales = [sale(n, till_id="T7") for n in range(1, 11)]
            accepted = await upload(running, till(env), sales)
            assert accepted.json()["accepted"] == 10
            assert await _statuses(shop, ids) == ["confirmed"] * 6

            private_redis.stop()  # Redis goes, and comes back with nothing
            private_redis.start()
            # the reservations cannot come back yet (no stock positions without the ERP):
            # the healing round fails, and says so, until the ERP is back
            heal = running.app.registry.apps["orders"].state.runtime.supervisor
            await settle(
                lambda: _v(heal.states()["order effects sweep"].failures), lambda n: n >= 2
            )
            assert await _statuses(shop, ids) == ["confirmed"] * 6
            erp.failure_rate = 0.0  # then the ERP is back
            started = time.monotonic()

            await settle(lambda: _statuses(shop, ids), lambda s: s == ["posted"] * 6)
            sale_ids = {tx["transaction_id"] for tx in sales}
            await settle(lambda: _booked(shop, sale_ids), lambda n: n == 10)
            recovered("Redis restarted empty while the ERP was down", started)
            for oid in ids:
                assert await _order_postings(shop, oid) == 1  # posted once
                got = await shop.inventory.get(f"/reservations/{oid}.0")
                assert got.status_code == 200, got.text
                reservation = got.json()
                assert reservation["status"] == "committed"  # its units have an end
            await _no_dead_letters(running, admin)
        finally:
            await shop.close()


async def test_a_hung_redis_costs_requests_a_bounded_wait_and_readyz_says_so(
    healing_env: dict[str, str], private_redis: RedisServer
) -> None:
    env = {**healing_env, "REDIS_URL": private_redis.url}
    async with Running(build_embedded(env)) as running:
        shop = Shop(running, env)
        try:
            await shop.set_on_hand(SKU, "DC-NORTH", 20)
            reader = shop.token("reader", "erp:stock", "inventory:read")
            c = running.client
            assert (
                await c.get(f"/v1/inventory/availability/{SKU}", headers=reader)
            ).status_code == 200
            assert (await c.get("/readyz")).status_code == 200
            limiter = running.app.limiter
            private_redis.freeze()  # hangs, connections open: nothing answers
            try:
                # the limiter decides alone within its timeout; routes that do not need
                # Redis answer as ever
                for _ in range(10):
                    r = await c.get("/v1/erp/products/SKU-000001", headers=reader)
                    assert r.status_code == 200, r.text
                assert not limiter.shared
                # what needs Redis says so with a 503 problem and Retry-After, not a hang
                r = await c.get(f"/v1/inventory/availability/{SKU}", headers=reader)
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == "application/problem+json"
                assert "retry-after" in r.headers
                checkout = await shop.checkout("hung", cart((SKU, 1)))
                assert checkout.status_code == 503, checkout.text
                await asyncio.sleep(1.1)  # past the readiness cache
                ready = await c.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["redis"].startswith("failed: no answer")
                assert private_redis.frozen  # all of that while Redis still hung
            finally:
                private_redis.thaw()
            started = time.monotonic()
            await settle(lambda: c.get("/readyz"), lambda r: r.status_code == 200)
            again = await shop.checkout_to_the_end("after", cart((SKU, 1)))
            assert again.status_code == 201, again.text
            oid = again.json()["order_id"]
            await settle(lambda: _statuses(shop, [oid]), lambda s: s == ["posted"])
            recovered("Redis frozen, then thawed", started)
            assert await _order_postings(shop, oid) == 1
            await settle(lambda: _v(limiter.shared), lambda shared: shared)
        finally:
            await shop.close()


async def test_redis_down_then_back_with_its_data_loses_and_doubles_nothing(
    healing_env: dict[str, str], tmp_path: Path, admin: dict[str, str]
) -> None:
    redis = RedisServer(persistent=True).start()
    env = {**healing_env, "REDIS_URL": redis.url}
    try:
        async with Running(build_embedded(env)) as running:
            shop = Shop(running, env)
            try:
                await shop.set_on_hand(SKU, "DC-NORTH", 20)
                await shop.set_on_hand(SKU, "DC-SOUTH", 0)
                first = await shop.checkout_to_the_end("before", cart((SKU, 1)))
                assert first.status_code == 201
                redis.stop()  # Redis is down
                sales = [sale(n, till_id="T5") for n in range(1, 11)]
                accepted = await upload(running, till(env), sales)
                assert accepted.json()["accepted"] == 10  # the till is not held up
                down = await shop.checkout("during", cart((SKU, 1)))
                assert down.status_code == 503 and "retry-after" in down.headers
                # careful clients keep asking while Redis is away
                waiting = [
                    asyncio.create_task(shop.checkout_to_the_end(f"w{n}", cart((SKU, 1))))
                    for n in range(4)
                ]
                await asyncio.sleep(0.5)
                redis.start()  # back, with everything it had acknowledged
                started = time.monotonic()
                answers = await asyncio.gather(*waiting)
                assert [a.status_code for a in answers] == [201] * 4
                ids = [first.json()["order_id"], *(a.json()["order_id"] for a in answers)]
                await settle(lambda: _statuses(shop, ids), lambda s: s == ["posted"] * 5)
                sale_ids = {tx["transaction_id"] for tx in sales}
                await settle(lambda: _booked(shop, sale_ids), lambda n: n == 10)
                recovered("Redis down, then back with its data", started)
                for oid in ids:
                    assert await _order_postings(shop, oid) == 1
                await _no_dead_letters(running, admin)
            finally:
                await shop.close()
    finally:
        redis.stop()
