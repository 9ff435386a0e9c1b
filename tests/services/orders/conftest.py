"""An embedded mesh (gateway, ERP, inventory, loyalty, orders) and a shop's worth of helpers:
customers with tokens, stock set in the ERP, members with points."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.kit.identity import IDENTITY_HEADER, Identity
from services.mesh import build_embedded
from tests.conftest import Running, dev_issuer
from tests.support import IdentityAuth, patiently

INVENTORY_TOML = """
[channels.web]
locations = ["DC-NORTH", "DC-SOUTH"]

[channels.pickup]
locations = ["STORE-001", "STORE-002"]

[safety_stock]
default = 0
"""

SKU = "SKU-000077"
CUSTOMER_SCOPES = ["orders:write", "orders:read"]
OPERATOR = Identity(kind="service", consumer="test", roles=frozenset({"admin"}))


@pytest.fixture
def shop_env(
    tmp_path: Path, redis_url: str, redis_prefix: str, database_url: str
) -> dict[str, str]:
    (tmp_path / "inventory.toml").write_text(INVENTORY_TOML)
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "INVENTORY_CONFIG": str(tmp_path / "inventory.toml"),
        "RELAY_INTERVAL_S": "0.05",
        "SAGA_SWEEP_S": "0.2",
    }
    if not database_url.startswith("sqlite"):
        env["DATABASE_URL"] = database_url
    return env


class Shop:
    def __init__(self, running: Running, env: dict[str, str]) -> None:
        self.running = running
        self.gateway = running.client
        self.issuer = dev_issuer(env)
        apps = running.app.registry.apps
        codec = running.app.runtime.identity
        self.codec = codec
        self.erp, self.inventory, self.loyalty, self.orders = (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(apps[name]),
                base_url=f"http://{name}",
                auth=IdentityAuth(codec, OPERATOR),
            )
            for name in ("erp", "inventory", "loyalty", "orders")
        )

    @property
    def operator(self) -> dict[str, str]:
        return {IDENTITY_HEADER: self.codec.sign(OPERATOR)}

    def token(self, sub: str, *scopes: str, **kw: Any) -> dict[str, str]:
        chosen = list(scopes) or CUSTOMER_SCOPES
        return {"Authorization": "Bearer " + self.issuer.mint(sub, scopes=chosen, **kw)}

    async def close(self) -> None:
        for client in (self.erp, self.inventory, self.loyalty, self.orders):
            await client.aclose()

    async def set_on_hand(self, sku: str, location: str, units: int) -> None:
        current = (await self.erp.get(f"/inventory/{sku}")).json()["positions"]
        on_hand = next(p["on_hand"] for p in current if p["location_id"] == location)
        r = await self.erp.post(
            "/inventory/adjustments",
            json={
                "adjustment_id": f"set-{uuid.uuid4().hex[:12]}",
                "sku": sku,
                "location_id": location,
                "delta": units - on_hand,
                "reason": "count",
            },
        )
        assert r.status_code == 201, r.text

    async def ats(self, sku: str, channel: str = "web") -> int:
        r = await self.inventory.get(f"/availability/{sku}", params={"channel": channel})
        assert r.status_code == 200, r.text
        return int(r.json()["ats"])

    async def enrol(self, member_id: str, customer: str, points: int) -> None:
        r = await self.loyalty.post(
            "/members", json={"member_id": member_id, "customer_sub": customer}
        )
        assert r.status_code == 201, r.text
        r = await self.loyalty.post(
            f"/members/{member_id}/adjustments",
            json={"source_id": f"welcome-{member_id}", "points": points, "reason": "welcome"},
        )
        assert r.status_code == 200, r.text

    async def account(self, member_id: str) -> dict[str, Any]:
        r = await self.loyalty.get(f"/members/{member_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def checkout_to_the_end(self, customer: str, body: dict[str, Any]) -> httpx.Response:
        """Check out as a careful client does: an answer that says "not yet" (503 with
        Retry-After, 504, 409 for a key still in flight) is asked again with the same
        Idempotency-Key until the order's end comes back. How long that takes depends on
        the machine; what comes back does not."""
        key = str(uuid.uuid4())
        while True:
            r = await self.checkout(customer, body, key)
            not_yet = r.status_code in (503, 504) or (
                r.status_code == 409 and r.json()["type"].endswith("/idempotency-key-in-flight")
            )
            if not not_yet:
                return r
            await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    async def checkout(
        self, customer: str, body: dict[str, Any], key: str | None = None
    ) -> httpx.Response:
        """A checkout as a client that honours its plan does: past the customer's limit
        (429), again after `Retry-After`, with the same key."""
        headers = {**self.token(customer), "Idempotency-Key": f'"{key or uuid.uuid4()}"'}
        return await patiently(
            lambda: self.gateway.post("/v1/orders/orders", json=body, headers=headers)
        )

    async def order(self, order_id: str) -> dict[str, Any]:
        r = await self.orders.get(f"/orders/{order_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def postings(self, order_id: str) -> list[dict[str, Any]]:
        r = await self.erp.get("/postings", params={"order_id": order_id})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def cart(*lines: tuple[str, int], **kw: Any) -> dict[str, Any]:
    return {
        "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines],
        "payment_reference": f"psp-{uuid.uuid4().hex[:16]}",
        **kw,
    }


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Until `check()` holds. The deadline only guards against a hang (a minute: far past
    what any machine needs), it is not a claim about speed."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def shop(shop_env: dict[str, str]) -> AsyncIterator[Shop]:
    async with Running(build_embedded(shop_env)) as running:
        s = Shop(running, shop_env)
        yield s
        await s.close()
