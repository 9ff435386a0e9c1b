"""Readiness reports the service's own dependencies; liveness does not depend on them."""

from __future__ import annotations

from pathlib import Path

from services.erp.app import ErpSettings, create_app
from tests.conftest import Running
from tests.support import RedisServer


async def test_readyz_fails_when_redis_goes_away_and_recovers(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        app = create_app(
            ErpSettings(data_dir=str(tmp_path), redis_url=server.url, relay_interval_s=0.05)
        )
        async with Running(app) as running:
            ready = await running.client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "event_relay": "ok"}
            server.stop()
            r = await running.client.get("/readyz")
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["checks"]["redis"].startswith("failed")
            assert (await running.client.get("/healthz")).status_code == 200
            server.start()
            assert (await running.client.get("/readyz")).status_code == 200
    finally:
        server.stop()


async def test_without_redis_the_service_says_it_runs_in_memory(tmp_path: Path) -> None:
    app = create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))
    async with Running(app) as running:
        checks = (await running.client.get("/readyz")).json()["checks"]
    assert checks["redis"] == "in-memory"
