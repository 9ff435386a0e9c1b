"""The reference ERP behaves like a cloud ERP when told to: slow, rate-limited, failing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.erp.app import ErpSettings, create_app
from services.kit.identity import IDENTITY_HEADER, Identity
from tests.conftest import Running


def erp(tmp_path: Path, **conditions: float) -> Running:
    running = Running(
        create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off", **conditions))
    )
    caller = Identity(kind="service", consumer="inventory", sub="inventory")
    running.client.headers[IDENTITY_HEADER] = running.app.state.runtime.identity.sign(caller)
    return running


async def test_past_its_rate_the_erp_answers_429_with_retry_after(tmp_path: Path) -> None:
    async with erp(tmp_path, erp_rate_limit_rps=5) as running:
        results = await asyncio.gather(
            *(running.client.get("/products/SKU-000001") for _ in range(20))
        )
        statuses = [r.status_code for r in results]
        assert statuses.count(200) == 5
        assert statuses.count(429) == 15
        limited = next(r for r in results if r.status_code == 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["type"].endswith("/erp-rate-limited")
        await asyncio.sleep(0.25)  # about one token back
        assert (await running.client.get("/products/SKU-000001")).status_code == 200


async def test_failure_rate_answers_503(tmp_path: Path) -> None:
    async with erp(tmp_path, erp_failure_rate=1.0) as running:
        r = await running.client.get("/products/SKU-000001")
        assert r.status_code == 503
        assert r.json()["type"].endswith("/erp-unavailable")
        # health is not an ERP call
        assert (await running.client.get("/healthz")).status_code == 200


async def test_latency_slows_every_call(tmp_path: Path) -> None:
    async with erp(tmp_path, erp_latency_ms=200) as running:
        started = time.perf_counter()
        await asyncio.gather(*(running.client.get("/locations") for _ in range(5)))
        elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 1.0  # concurrent calls wait side by side, not in a queue
