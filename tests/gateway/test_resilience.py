"""Retries (idempotent only, budgeted), the circuit breaker, shedding past a concurrency cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import GatewaySettings, create_gateway
from services.kit.registry import Registry
from tests.conftest import Running

CONFIG = """
[upstreams.flaky]
service = "flaky"
timeout_s = 2
retries = 2
retry_backoff_ms = 1
retry_budget_ratio = {ratio}
max_concurrency = {cap}
max_concurrency_per_consumer = 2
breaker_failure_ratio = 0.5
breaker_min_requests = 6
breaker_window_s = 10
breaker_open_s = 0.3

[[apis]]
name = "things"
upstream = "flaky"
  [[apis.versions]]
  version = "v1"

  [[apis.routes]]
  path = "/ops/**"
  methods = ["POST"]
  auth = "jwt"
  scopes = ["things:admin"]

  [[apis.routes]]
  path = "/**"
  methods = ["GET", "POST"]
  auth = "none"
"""


class Flaky:
    """An upstream whose next answers are scripted: a list of statuses, then `default`."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.default = 200
        self.calls = 0
        self.hold: asyncio.Event | None = None
        self.extra_headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        if self.hold is not None:
            await self.hold.wait()
        status = self.script.pop(0) if self.script else self.default
        body = b'{"ok": true}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *self.extra_headers],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def running_gateway(
    tmp_path: Path, upstream: Flaky, ratio: float = 0.2, cap: int = 2
) -> Running:
    config = CONFIG.replace("{ratio}", str(ratio)).replace("{cap}", str(cap))
    (tmp_path / "gateway.toml").write_text(config)
    settings = GatewaySettings(
        gateway_config=str(tmp_path / "gateway.toml"), data_dir=str(tmp_path), redis_mode="off"
    )
    return Running(create_gateway(settings, Registry(apps={"flaky": upstream}), spec=lambda: {}))


@pytest.fixture
async def flaky(tmp_path: Path) -> AsyncIterator[tuple[Running, Flaky]]:
    upstream = Flaky()
    async with await running_gateway(tmp_path, upstream) as running:
        yield running, upstream


async def test_get_is_retried_past_a_503(flaky: tuple[Running, Flaky]) -> None:
    running, upstream = flaky
    upstream.script = [503, 502]
    r = await running.client.get("/v1/things/x")
    assert r.status_code == 200
    assert upstream.calls == 3


async def test_post_is_never_retried(flaky: tuple[Running, Flaky]) -> None:
    running, upstream = flaky
    upstream.script = [503]
    r = await running.client.post("/v1/things/x", json={"a": 1})
    assert r.status_code == 503
    assert upstream.calls == 1


async def test_retries_stop_at_the_last_attempt(flaky: tuple[Running, Flaky]) -> None:
    running, upstream = flaky
    upstream.script = [503, 503, 503, 200]
    r = await running.client.get("/v1/things/x")
    assert r.status_code == 503  # the last attempt's answer goes to the client
    assert upstream.calls == 3


async def test_retry_budget_bounds_the_extra_load(tmp_path: Path) -> None:
    upstream = Flaky()
    upstream.default = 503
    async with await running_gateway(tmp_path, upstream, ratio=0.1) as running:
        running.app.guards["flaky"].breaker.min_requests = 10_000  # keep the breaker out of it
        for _ in range(50):
            assert (await running.client.get("/v1/things/x")).status_code == 503
    # 50 requests; retries drawn from a bucket of 10 plus 0.1 per request
    assert 50 < upstream.calls <= 50 + 10 + 5


async def test_breaker_opens_then_probes_and_closes(flaky: tuple[Running, Flaky]) -> None:
    running, upstream = flaky
    upstream.default = 503
    for _ in range(2):
        await running.client.get("/v1/things/x")  # 3 attempts each: 6 failures recorded
    state = running.app.guards["flaky"].snapshot()
    assert state.state == "open"
    calls = upstream.calls
    r = await running.client.get("/v1/things/x")
    assert r.status_code == 503
    assert r.json()["type"].endswith("/circuit-open")
    assert int(r.headers["retry-after"]) >= 1
    assert upstream.calls == calls  # not sent
    await asyncio.sleep(0.35)
    upstream.default = 200
    r = await running.client.get("/v1/things/x")  # the half-open probe
    assert r.status_code == 200
    assert running.app.guards["flaky"].snapshot().state == "closed"


async def test_breaker_reopens_when_the_probe_fails(flaky: tuple[Running, Flaky]) -> None:
    running, upstream = flaky
    upstream.default = 503
    for _ in range(2):
        await running.client.get("/v1/things/x")
    await asyncio.sleep(0.35)
    await running.client.get("/v1/things/x")
    assert running.app.guards["flaky"].snapshot().state == "open"


async def test_past_the_concurrency_limit_requests_are_shed_not_queued(
    flaky: tuple[Running, Flaky],
) -> None:
    running, upstream = flaky
    upstream.hold = asyncio.Event()
    tasks = [asyncio.create_task(running.client.post("/v1/things/x")) for _ in range(5)]
    for _ in range(100):
        if upstream.calls == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    shed = [t for t in tasks if t.done()]
    assert len(shed) == 3
    for task in shed:
        r = task.result()
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["type"].endswith("/overloaded")
    upstream.hold.set()
    served = [await t for t in tasks if t not in shed]
    assert [r.status_code for r in served] == [200, 200]
    assert running.app.guards["flaky"].snapshot().shed == 3


async def test_one_consumer_holds_at_most_its_share_of_an_upstreams_slots(tmp_path: Path) -> None:
    """Four slots, two per consumer: a consumer whose requests hang holds two, its next ones
    are 429 (its own fault, not the upstream's), and another consumer is still served."""
    upstream = Flaky()
    upstream.hold = asyncio.Event()
    async with await running_gateway(tmp_path, upstream, cap=4) as running:
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(running.app, client=("198.51.100.9", 40000)),
            base_url="http://gateway.test",
        )
        hogs = [asyncio.create_task(running.client.get("/v1/things/slow")) for _ in range(4)]
        for _ in range(500):
            if upstream.calls == 2 and sum(t.done() for t in hogs) == 2:
                break
            await asyncio.sleep(0.01)
        first = [t for t in hogs if t.done()]
        refused = [t.result() for t in first]
        assert [r.status_code for r in refused] == [429, 429]
        assert all(r.json()["type"].endswith("/too-many-in-flight") for r in refused)
        assert all(r.headers["retry-after"] == "1" for r in refused)
        served = asyncio.create_task(other.get("/v1/things/fine"))
        for _ in range(500):
            if upstream.calls == 3:
                break
            await asyncio.sleep(0.01)
        upstream.hold.set()
        assert (await served).status_code == 200
        assert [(await t).status_code for t in hogs if t not in first] == [200, 200]
        state = running.app.guards["flaky"].snapshot()
        assert state.state == "closed" and state.failures == 0 and state.in_flight == 0
        await other.aclose()


async def test_a_503_with_retry_after_is_the_upstreams_answer_not_a_failure(
    flaky: tuple[Running, Flaky],
) -> None:
    """A service saying "in progress, ask again in 2 s" (503 + Retry-After) is passed on as
    it is, not retried, and never opens the breaker for everyone else."""
    running, upstream = flaky
    upstream.default = 503
    upstream.extra_headers = [(b"retry-after", b"2")]
    for _ in range(12):  # twice the breaker's minimum of requests
        r = await running.client.get("/v1/things/busy")
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert upstream.calls == 12  # no retry of a deliberate answer
    state = running.app.guards["flaky"].snapshot()
    assert state.state == "closed" and state.failures == 0
    upstream.extra_headers = []  # a bare 503 is a failure: retried, then counted
    r = await running.client.get("/v1/things/down")
    assert r.status_code == 503
    assert running.app.guards["flaky"].snapshot().failures >= 1


async def test_a_retry_refused_after_all_passes_on_what_the_upstream_said(
    tmp_path: Path,
) -> None:
    """A held-back 503 whose retry the budget refuses goes to the client as the upstream's
    503 (body and all), not as a 502 of the gateway's."""
    upstream = Flaky()
    upstream.default = 503
    async with await running_gateway(tmp_path, upstream, ratio=0.0) as running:
        guard = running.app.guards["flaky"]
        guard.breaker.min_requests = 10_000  # the budget alone refuses here
        guard.budget.tokens = 0
        r = await running.client.get("/v1/things/x")
    assert r.status_code == 503 and r.json() == {"ok": True}
    assert upstream.calls == 1


async def test_an_operators_request_passes_an_open_breaker(tmp_path: Path) -> None:
    upstream = Flaky()
    async with await running_gateway(tmp_path, upstream) as running:
        from tests.conftest import dev_issuer

        env = {"GATEWAY_CONFIG": str(tmp_path / "gateway.toml"), "DATA_DIR": str(tmp_path)}
        issuer = dev_issuer(env)
        operator = {"Authorization": "Bearer " + issuer.mint("ops", roles=["admin"])}
        customer = {"Authorization": "Bearer " + issuer.mint("cus")}
        guard = running.app.guards["flaky"]
        upstream.default = 503
        for _ in range(2):
            await running.client.get("/v1/things/x")
        assert guard.snapshot().state == "open"
        upstream.default = 200
        r = await running.client.post("/v1/things/ops/rebuild", headers=operator)
        assert r.status_code == 200  # the repair reaches the service
        assert guard.snapshot().state == "open"  # and is no probe: the others still wait
        refused = await running.client.post("/v1/things/ops/rebuild", headers=customer)
        assert refused.status_code == 403
        blocked = await running.client.get("/v1/things/x")
        assert blocked.status_code == 503 and blocked.json()["type"].endswith("/circuit-open")
