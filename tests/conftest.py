"""Fixtures on real parts: Redis (found or started), SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from services.kit.asgi import LifespanRunner
from tests.support import ServedApp, ensure_redis, unique

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No server outlives the run, whatever failed."""
    ServedApp.stop_all()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """REDIS_URL, else a server on 127.0.0.1:6379, else a private redis-server for the run."""
    try:
        return ensure_redis()
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=2)


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = unique("rmtest:") + ":"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _pg_available() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=2)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"no PostgreSQL answers at {PG_ADMIN_DSN}: {exc}"
    return None


_PG_SKIP = _pg_available()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database made for this test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    name = unique("rm_test_")
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def mesh_env(
    tmp_path: Path, redis_url: str, redis_prefix: str, database_url: str
) -> dict[str, str]:
    """Environment of an embedded mesh of this test's own (data dir, Redis prefix, database)."""
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "RELAY_INTERVAL_S": "0.05",
    }
    if not database_url.startswith("sqlite"):
        env["DATABASE_URL"] = database_url
    return env


class Running:
    """An ASGI app with its lifespan started, and an httpx client on it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lifespan = LifespanRunner(app)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app, client=("203.0.113.7", 51000)),
            base_url="http://gateway.test",
        )

    async def __aenter__(self) -> Running:
        await self.lifespan.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.lifespan.stop()


@pytest.fixture
async def mesh(mesh_env: dict[str, str]) -> AsyncIterator[Running]:
    """The embedded mesh (gateway + every service in-process), started."""
    from services.mesh import build_embedded

    async with Running(build_embedded(mesh_env)) as running:
        yield running


def dev_issuer(env: dict[str, str]) -> Any:
    """The development JWT issuer of a mesh built from `env`."""
    from gateway.app import GatewaySettings
    from gateway.config import load_config

    settings = GatewaySettings.from_env(env)
    return settings.dev_issuer(load_config(settings.gateway_config))


@pytest.fixture
def bearer(mesh_env: dict[str, str]) -> Any:
    """bearer(sub, scopes..., roles=[...], store_id=...) → Authorization headers."""
    issuer = dev_issuer(mesh_env)

    def make(sub: str = "tester", *scopes: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + issuer.mint(sub, scopes=list(scopes), **kw)}

    return make


@pytest.fixture
def admin(bearer: Any) -> dict[str, str]:
    headers: dict[str, str] = bearer("ops", roles=["admin"])
    return headers
