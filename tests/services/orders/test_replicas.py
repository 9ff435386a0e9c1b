"""Two orders replicas on one PostgreSQL database: checkouts on either, postings shared by
their consumer group and their relays (SKIP LOCKED), each order posted once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from services.kit.asgi import LifespanRunner
from services.kit.identity import IDENTITY_HEADER, Identity
from services.orders.app import OrdersSettings, create_app
from tests.services.orders.conftest import SKU, Shop, cart, eventually

pytestmark = pytest.mark.postgres


async def test_two_replicas_share_the_work_and_post_each_order_once(
    shop: Shop, shop_env: dict[str, str]
) -> None:
    if "DATABASE_URL" not in shop_env:
        pytest.skip("replicas share a PostgreSQL database; SQLite is one process's")
    await shop.set_on_hand(SKU, "DC-NORTH", 500)
    second = create_app(OrdersSettings.from_env(shop_env), registry=shop.running.app.registry)
    runner = LifespanRunner(second)
    await runner.start()
    erp = shop.running.app.registry.apps["erp"].state.conditions
    try:
        replicas = [
            shop.orders,
            httpx.AsyncClient(transport=httpx.ASGITransport(second), base_url="http://orders-2"),
        ]

        async def checkout(n: int) -> Any:
            who = Identity(kind="user", consumer=f"c{n}", sub=f"c{n}")
            headers = {
                IDENTITY_HEADER: shop.codec.sign(who),
                "Idempotency-Key": f'"{uuid.uuid4()}"',
            }
            return await replicas[n % 2].post("/orders", json=cart((SKU, 1)), headers=headers)

        warm = await asyncio.gather(checkout(0), checkout(1))  # each knows the price
        assert [r.status_code for r in warm] == [201, 201]
        erp.failure_rate = 1.0  # postings wait, retried by both replicas' consumers
        results = await asyncio.gather(*(checkout(n) for n in range(40)))
        assert [r.status_code for r in results] == [201] * 40
        ids = [r.json()["order_id"] for r in results]
        await asyncio.sleep(1.0)
        erp.failure_rate = 0.0

        async def all_posted() -> bool:
            totals = (await shop.erp.get(f"/postings/totals/{SKU}")).json()
            return bool(totals["order_postings"] >= 42)

        await eventually(all_posted, timeout=60)
        totals = (await shop.erp.get(f"/postings/totals/{SKU}")).json()
        assert totals["order_postings"] == 42 and totals["ordered_units"] == 42
        for oid in ids[:6]:
            await eventually(lambda oid=oid: _posted(shop, oid))
            history = [h["status"] for h in (await shop.order(oid))["history"]]
            assert history == ["pending", "confirmed", "posted"]  # each move once
        await replicas[1].aclose()
    finally:
        erp.failure_rate = 0.0
        await runner.stop()


async def _posted(shop: Shop, oid: str) -> bool:
    return (await shop.order(oid))["status"] == "posted"
