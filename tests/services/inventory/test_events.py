"""Stock-moving events update cached positions within a second, without an ERP fetch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.services.inventory.conftest import Mesh

SKU = "SKU-000055"


async def north(mesh: Mesh) -> dict[str, Any]:
    body = (await mesh.inventory.get(f"/availability/{SKU}")).json()
    found: dict[str, Any] = next(
        loc for loc in body["locations"] if loc["location_id"] == "DC-NORTH"
    )
    return found


async def wait_for(mesh: Mesh, predicate: Any, limit_s: float = 1.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if predicate(await north(mesh)):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {limit_s}s: {await north(mesh)}")


async def test_an_erp_adjustment_lowers_ats_within_one_second(mesh: Mesh) -> None:
    await mesh.set_on_hand(SKU, "DC-NORTH", 40)
    await wait_for(mesh, lambda loc: loc["on_hand"] == 40)
    fetches = mesh.ats.stats["erp_fetches"]
    await mesh.set_on_hand(SKU, "DC-NORTH", 25)  # a count found 15 fewer
    elapsed = await wait_for(mesh, lambda loc: loc["ats"] == 25)
    assert elapsed < 1.0
    assert mesh.ats.stats["erp_fetches"] == fetches  # the event did it, not a refetch
    view = (await mesh.inventory.get(f"/cache/{SKU}")).json()
    assert view["source"] == "event" and view["hits"] >= 2
    assert view["on_hand"]["DC-NORTH"] == 25 and view["versions"]["DC-NORTH"] >= 2


async def test_a_posted_order_moves_stock_and_commits_its_reservation_once(mesh: Mesh) -> None:
    await mesh.set_on_hand(SKU, "DC-NORTH", 30)
    await wait_for(mesh, lambda loc: loc["on_hand"] == 30)
    r = await mesh.inventory.post(
        "/reservations",
        json={
            "reservation_id": "ord-9:1",
            "sku": SKU,
            "quantity": 3,
            "owner": "ord-9",
            "location_id": "DC-NORTH",
        },
    )
    assert r.status_code == 201
    await mesh.inventory.post("/reservations/ord-9:1/confirm")
    assert (await north(mesh))["ats"] == 27
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(mesh.erp_app), base_url="http://erp", headers=mesh.headers
    ) as erp:
        posting = {
            "posting_id": "ord-9",
            "order_id": "ord-9",
            "lines": [
                {
                    "sku": SKU,
                    "location_id": "DC-NORTH",
                    "quantity": 3,
                    "unit_price": {"amount": 100, "currency": "EUR"},
                }
            ],
            "total": {"amount": 300, "currency": "EUR"},
            "occurred_at": "2026-11-24T10:00:00Z",
        }
        assert (await erp.post("/postings/orders", json=posting)).status_code == 201
    # on hand falls by 3 and the reservation is released: ATS stays 27, never 24
    await wait_for(mesh, lambda loc: loc["on_hand"] == 27 and loc["reserved"] == 0)
    assert (await north(mesh))["ats"] == 27
    status = (await mesh.inventory.get("/reservations/ord-9:1")).json()["status"]
    assert status == "committed"
