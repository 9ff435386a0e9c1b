"""Readiness reports the service's own dependencies; liveness does not depend on them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.erp.app import ErpSettings, create_app
from services.kit.supervisor import Liveness
from tests.conftest import Running
from tests.support import RedisServer, settle


class Stuck:
    """A worker that hangs after its first round (a call that never returns)."""

    name = "stuck"

    def __init__(self) -> None:
        self.liveness = Liveness(expected_s=0.2)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self.liveness.ok()
        await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


async def test_readyz_fails_while_a_worker_completes_no_round(tmp_path: Path) -> None:
    app = create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))
    async with Running(app) as running:
        app.state.runtime.add_worker(Stuck())
        r = await settle(lambda: running.client.get("/readyz"), lambda r: r.status_code == 503)
        problem = r.json()
        assert problem["checks"]["workers"] == "late: stuck"
        assert problem["workers"]["stuck"]["status"] == "late"
        assert problem["workers"]["event relay"]["status"] == "ok"
        assert r.headers["retry-after"] == "1"


async def test_readyz_fails_when_redis_goes_away_and_recovers(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        app = create_app(
            ErpSettings(data_dir=str(tmp_path), redis_url=server.url, relay_interval_s=0.05)
        )
        async with Running(app) as running:
            ready = await running.client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "workers": "ok"}
            assert ready.json()["workers"]["event relay"]["status"] == "ok"
            server.stop()
            # readiness is checked at most once a second: the next check sees Redis gone
            r = await settle(lambda: running.client.get("/readyz"), lambda r: r.status_code == 503)
            assert r.headers["content-type"] == "application/problem+json"
            problem = r.json()
            assert problem["checks"]["redis"].startswith("failed")
            assert problem["status"] == 503 and problem["instance"] == "/readyz"
            assert problem["request_id"] == r.headers["x-request-id"]
            assert (await running.client.get("/healthz")).status_code == 200
            server.start()
            await settle(lambda: running.client.get("/readyz"), lambda r: r.status_code == 200)
    finally:
        server.stop()


async def test_without_redis_the_service_says_it_runs_in_memory(tmp_path: Path) -> None:
    app = create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))
    async with Running(app) as running:
        checks = (await running.client.get("/readyz")).json()["checks"]
    assert checks["redis"] == "in-memory"


async def test_a_flood_of_probes_checks_the_dependencies_once_a_second(tmp_path: Path) -> None:
    app = create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))
    async with Running(app) as running:
        runtime = app.state.runtime
        checked = 0
        real = runtime.readiness

        async def counting() -> dict[str, str]:
            nonlocal checked
            checked += 1
            return await real()

        runtime.readiness = counting
        started = time.monotonic()
        for _ in range(200):
            assert (await running.client.get("/readyz")).status_code == 200
        seconds = time.monotonic() - started
    assert 1 <= checked <= seconds + 1  # at most one check per second, however many probes
