"""An embedded mesh (ERP + inventory) with an identity to call the inventory directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.kit.identity import IDENTITY_HEADER, Identity
from services.mesh import build_embedded
from tests.conftest import Running
from tests.support import IdentityAuth

INVENTORY_TOML = """
[channels.web]
locations = ["DC-NORTH", "DC-SOUTH"]

[channels.pickup]
locations = ["STORE-001", "STORE-002"]

[safety_stock]
default = 0
"""


@pytest.fixture
def inventory_env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    (tmp_path / "inventory.toml").write_text(INVENTORY_TOML)
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "INVENTORY_CONFIG": str(tmp_path / "inventory.toml"),
        "RELAY_INTERVAL_S": "0.05",
    }


OPERATOR = Identity(kind="service", consumer="test", roles=frozenset({"admin"}))


class Mesh:
    """The running mesh, a client on the inventory app itself, and ways to move stock."""

    def __init__(self, running: Running) -> None:
        self.running = running
        gateway = running.app
        self.inventory_app = gateway.registry.apps["inventory"]
        self.erp_app = gateway.registry.apps["erp"]
        self.codec = gateway.runtime.identity
        import httpx

        self.inventory = httpx.AsyncClient(
            transport=httpx.ASGITransport(self.inventory_app),
            base_url="http://inventory",
            auth=IdentityAuth(self.codec, OPERATOR),
        )

    @property
    def headers(self) -> dict[str, str]:
        """An operator's identity, signed anew on each use (it expires after a minute)."""
        return {IDENTITY_HEADER: self.codec.sign(OPERATOR)}

    @property
    def ats(self) -> Any:
        return self.inventory_app.state.holder["ats"]

    async def set_on_hand(self, sku: str, location: str, units: int) -> None:
        import httpx

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(self.erp_app), base_url="http://erp", headers=self.headers
        ) as erp:
            current = (await erp.get(f"/inventory/{sku}")).json()["positions"]
            on_hand = next(p["on_hand"] for p in current if p["location_id"] == location)
            r = await erp.post(
                "/inventory/adjustments",
                json={
                    "adjustment_id": f"set-{sku}-{location}-{units}-{on_hand}",
                    "sku": sku,
                    "location_id": location,
                    "delta": units - on_hand,
                    "reason": "count",
                },
            )
            assert r.status_code == 201, r.text


@pytest.fixture
async def mesh(inventory_env: dict[str, str]) -> AsyncIterator[Mesh]:
    async with Running(build_embedded(inventory_env)) as running:
        m = Mesh(running)
        yield m
        await m.inventory.aclose()
