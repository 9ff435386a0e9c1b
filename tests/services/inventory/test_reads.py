"""Reads stay off the ERP: one fetch per SKU however many readers and replicas, stale
positions served (and marked) while the ERP is down, until they are too old."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from services.inventory.app import InventorySettings, create_app
from services.kit.asgi import LifespanRunner
from services.mesh import build_embedded
from tests.conftest import Running
from tests.services.inventory.conftest import OPERATOR, Mesh
from tests.support import IdentityAuth, settle


def erp_calls(mesh: Mesh) -> int:
    calls: int = mesh.erp_app.state.conditions.calls
    return calls


async def test_500_concurrent_cold_reads_make_one_erp_call(mesh: Mesh) -> None:
    mesh.erp_app.state.conditions.latency_s = 0.1
    before = erp_calls(mesh)
    results = await asyncio.gather(
        *(mesh.inventory.get("/availability/SKU-000077") for _ in range(500))
    )
    assert {r.status_code for r in results} == {200}
    assert erp_calls(mesh) - before == 1
    assert len({r.json()["ats"] for r in results}) == 1
    statuses = [r.headers["cache-status"] for r in results]
    assert sum("fwd=miss" in s for s in statuses) == 500  # all waited for the one fetch
    again = await mesh.inventory.get("/availability/SKU-000077")
    assert again.headers["cache-status"].startswith("retailmesh-ats; hit")
    assert erp_calls(mesh) - before == 1


async def test_two_inventory_replicas_share_one_fetch(
    mesh: Mesh, inventory_env: dict[str, str], tmp_path: Path
) -> None:
    mesh.erp_app.state.conditions.latency_s = 0.15
    settings = InventorySettings.from_env(inventory_env)
    second = create_app(settings, registry=mesh.running.app.registry)
    lifespan = LifespanRunner(second)
    await lifespan.start()
    try:
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(second),
            base_url="http://inv2",
            auth=IdentityAuth(mesh.codec, OPERATOR),
        )
        before = erp_calls(mesh)
        results = await asyncio.gather(
            *(
                (mesh.inventory if n % 2 else other).get("/availability/SKU-000078")
                for n in range(500)
            )
        )
        await other.aclose()
        assert {r.status_code for r in results} == {200}
        assert erp_calls(mesh) - before == 1
    finally:
        await lifespan.stop()


async def test_bulk_reads_fetch_missing_skus_in_one_call(mesh: Mesh) -> None:
    before = erp_calls(mesh)
    skus = [f"SKU-{n:06d}" for n in range(100, 150)] + ["SKU-999999"]
    r = await mesh.inventory.post("/availability/query", json={"skus": skus, "channel": "pickup"})
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 50 and body["unknown_skus"] == ["SKU-999999"]
    assert erp_calls(mesh) - before == 1
    r = await mesh.inventory.post("/availability/query", json={"skus": skus, "channel": "pickup"})
    assert erp_calls(mesh) - before == 1  # all cached now, the unknown one too


async def test_erp_down_serves_stale_positions_marked_until_the_maximum_age(
    inventory_env: dict[str, str],
) -> None:
    env = {
        **inventory_env,
        "ATS_REFRESH_S": "0.3",
        "ATS_STALE_MAX_S": "1.2",
        "ATS_REVALIDATE_S": "0",  # no stale-while-revalidate: each read past 0.3 s fetches
    }
    async with Running(build_embedded(env)) as running:
        mesh = Mesh(running)
        try:
            fresh = await mesh.inventory.get("/availability/SKU-000079")
            assert fresh.status_code == 200
            mesh.erp_app.state.conditions.failure_rate = 1.0
            await asyncio.sleep(0.4)
            stale = await mesh.inventory.get("/availability/SKU-000079")
            assert stale.status_code == 200
            assert 'detail="stale-if-error"' in stale.headers["cache-status"]
            assert int(stale.headers["age"]) >= 0
            assert stale.json() == fresh.json()
            await asyncio.sleep(0.9)
            gone = await mesh.inventory.get("/availability/SKU-000079")
            assert gone.status_code == 503
            assert gone.headers["content-type"] == "application/problem+json"
            assert gone.json()["type"].endswith("/positions-unavailable")
            mesh.erp_app.state.conditions.failure_rate = 0.0
            back = await mesh.inventory.get("/availability/SKU-000079")
            assert back.status_code == 200 and "fwd=miss" in back.headers["cache-status"]
        finally:
            await mesh.inventory.aclose()


async def test_availability_through_the_gateway_needs_the_scope(
    mesh: Mesh, inventory_env: dict[str, str]
) -> None:
    from tests.conftest import dev_issuer

    c = mesh.running.client
    assert (await c.get("/v1/inventory/availability/SKU-000080")).status_code == 401
    token = dev_issuer(inventory_env).mint("shop", scopes=["inventory:read"])
    r = await c.get(
        "/v1/inventory/availability/SKU-000080", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200
    assert r.json()["channel"] == "web" and "cache-status" in r.headers
    unknown: Any = await c.get(
        "/v1/inventory/availability/SKU-000080",
        params={"channel": "moon"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert unknown.status_code == 404


async def test_the_shield_reports_its_metrics(mesh: Mesh) -> None:
    await asyncio.gather(*(mesh.inventory.get("/availability/SKU-000081") for _ in range(20)))
    r = await mesh.inventory.get("/metrics")
    assert r.status_code == 200
    text = r.text

    def counter(name: str) -> float:
        found = re.search(rf"^retailmesh_inventory_{name}_total (\S+)$", text, re.MULTILINE)
        assert found, name
        return float(found.group(1))

    # one fetch for the twenty (single flight); each read counted once: a miss while the
    # fetch is on its way, a hit once it is in (how many of each depends on the machine)
    assert counter("erp_fetches") == 1
    assert counter("miss") >= 1
    assert counter("miss") + counter("hit") + counter("stale") == 20
    assert (
        await mesh.inventory.get("/metrics", auth=None)  # no identity at all
    ).status_code == 401


async def test_past_its_freshness_an_entry_is_served_at_once_while_one_refresh_runs(
    inventory_env: dict[str, str],
) -> None:
    env = {**inventory_env, "ATS_REFRESH_S": "0.3", "ATS_REVALIDATE_S": "60"}
    async with Running(build_embedded(env)) as running:
        mesh = Mesh(running)
        fresh = await mesh.inventory.get("/availability/SKU-000080")
        assert fresh.status_code == 200
        # the ERP is slow from now on: a reader that waited for the refresh would be
        # answered after it, fresh (no stale-while-revalidate in its Cache-Status)
        mesh.erp_app.state.conditions.latency_s = 0.5
        await asyncio.sleep(0.4)
        before = await _stats(mesh)
        reads = await asyncio.gather(
            *(mesh.inventory.get("/availability/SKU-000080") for _ in range(20))
        )
        for r in reads:
            assert r.status_code == 200 and r.json() == fresh.json()
            status = r.headers["cache-status"]
            assert "hit" in status and 'detail="stale-while-revalidate"' in status, status
            assert "ttl=-1" in status
        # the refresh lands: the entry is fresh again
        await settle(_viewer(mesh), lambda view: view["age_s"] is not None and view["age_s"] < 0.3)
        after = await _stats(mesh)
        # one refresh for twenty readers, none of whom waited for it
        assert after["erp_fetches"] - before["erp_fetches"] == 1
        assert after["revalidating"] - before.get("revalidating", 0) == 20
        assert after.get("miss", 0) == before.get("miss", 0)
        again = await mesh.inventory.get("/availability/SKU-000080")
        assert "stale-while-revalidate" not in again.headers["cache-status"]


async def _stats(mesh: Mesh) -> dict[str, int]:
    view = (await mesh.inventory.get("/cache/SKU-000080")).json()
    return dict(view["stats"])


def _viewer(mesh: Mesh) -> Any:
    async def view() -> dict[str, Any]:
        return dict((await mesh.inventory.get("/cache/SKU-000080")).json())

    return view
