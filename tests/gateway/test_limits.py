"""Rate limits per plan: headers, 429s, weights, and what happens when Redis goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import GatewaySettings, create_gateway
from gateway.config import PlanConfig
from gateway.limits import Limiter, PlanPolicy
from services.kit.registry import Registry
from tests.conftest import Running
from tests.gateway.echo import echo
from tests.support import RedisServer

CONFIG = """
anonymous_plan = "tiny"

[plans.tiny]
burst_per_second = 1000
per_minute = 1000
daily_quota = 5

[plans.internal]
burst_per_second = 1000
per_minute = 1000
daily_quota = 1000

[upstreams.echo]
service = "echo"

[[apis]]
name = "things"
upstream = "echo"
  [[apis.versions]]
  version = "v1"

  [[apis.routes]]
  path = "/bulk"
  methods = ["POST"]
  auth = "none"
  weight = 3

  [[apis.routes]]
  path = "/strict"
  methods = ["GET"]
  auth = "none"
  fail_closed = true

  [[apis.routes]]
  path = "/**"
  methods = ["GET"]
  auth = "none"
"""


async def gateway_on(tmp_path: Path, redis_url: str, redis_prefix: str) -> Running:
    (tmp_path / "gateway.toml").write_text(CONFIG)
    settings = GatewaySettings(
        gateway_config=str(tmp_path / "gateway.toml"),
        data_dir=str(tmp_path),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    return Running(create_gateway(settings, Registry(apps={"echo": echo}), spec=lambda: {}))


@pytest.fixture
async def gw(tmp_path: Path, redis_url: str, redis_prefix: str) -> AsyncIterator[Running]:
    async with await gateway_on(tmp_path, redis_url, redis_prefix) as running:
        yield running


async def test_quota_headers_then_429_with_retry_after(gw: Running) -> None:
    c = gw.client
    seen: list[Any] = []
    for _ in range(5):
        r = await c.get("/v1/things/x")
        assert r.status_code == 200
        seen.append(r)
    assert seen[0].headers["ratelimit-policy"] == (
        '"burst";q=1000;w=1, "minute";q=1000;w=60, "day";q=5;w=86400'
    )
    assert seen[0].headers["ratelimit"].startswith('"day";r=4;t=')
    assert seen[4].headers["ratelimit"].startswith('"day";r=0;t=')
    refused = await c.get("/v1/things/x")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    reset = int(refused.headers["ratelimit"].split("t=")[1])
    assert int(refused.headers["retry-after"]) >= reset > 0
    assert refused.json()["type"].endswith("/rate-limited")


async def test_limits_are_per_consumer(gw: Running) -> None:
    for _ in range(5):
        assert (await gw.client.get("/v1/things/x")).status_code == 200
    assert (await gw.client.get("/v1/things/x")).status_code == 429
    other = gw.client.__class__(
        transport=gw.client._transport.__class__(gw.app, client=("198.51.100.9", 4000)),  # type: ignore[attr-defined]
        base_url="http://gateway.test",
    )
    async with other:
        assert (await other.get("/v1/things/x")).status_code == 200


async def test_a_weighted_request_uses_more_and_a_refused_one_uses_nothing(gw: Running) -> None:
    c = gw.client
    assert (await c.post("/v1/things/bulk")).status_code == 200  # 3 of 5
    assert (await c.post("/v1/things/bulk")).status_code == 429  # 6 > 5: refused, not counted
    r = await c.get("/v1/things/x")
    assert r.status_code == 200 and r.headers["ratelimit"].startswith('"day";r=1;')
    assert (await c.get("/v1/things/x")).status_code == 200
    assert (await c.get("/v1/things/x")).status_code == 429


async def test_without_redis_limits_are_counted_locally_and_fail_closed_routes_refuse(
    tmp_path: Path, redis_prefix: str
) -> None:
    server = RedisServer().start()
    try:
        async with await gateway_on(tmp_path, server.url, redis_prefix) as running:
            c = running.client
            assert (await c.get("/v1/things/x")).status_code == 200
            server.stop()
            statuses = [(await c.get("/v1/things/x")).status_code for _ in range(6)]
            # fail-open: served, and still limited by this replica's own count
            assert statuses == [200] * 5 + [429]
            strict = await c.get("/v1/things/strict")
            assert strict.status_code == 503
            assert strict.json()["type"].endswith("/limits-unavailable")
    finally:
        server.stop()


async def test_concurrent_checks_share_round_trips(redis_client: Any, redis_prefix: str) -> None:
    import asyncio

    limiter = Limiter(redis_client, redis_prefix)
    policy = PlanPolicy(
        "p", PlanConfig(burst_per_second=10_000, per_minute=10_000, daily_quota=150)
    )
    decisions = await asyncio.gather(*(limiter.check("c1", policy) for _ in range(400)))
    assert sum(d.admitted for d in decisions) == 150
    assert limiter.round_trips <= 10  # 400 decisions, a handful of Redis calls


async def test_a_consumers_concurrent_requests_are_decided_in_turn_as_if_alone(
    redis_client: Any, redis_prefix: str
) -> None:
    import asyncio

    limiter = Limiter(redis_client, redis_prefix)
    policy = PlanPolicy("p", PlanConfig(burst_per_second=1000, per_minute=1000, daily_quota=10))
    other = PlanPolicy("q", PlanConfig(burst_per_second=1000, per_minute=1000, daily_quota=3))
    # one batch: a's 4 and 5 are admitted (9 of 10), its 3 refused (12), its 1 admitted
    # (10); b's 2 admitted, its next 2 refused (4 of 3): each consumer on its own counters
    weights = [("a", policy, 4), ("b", other, 2), ("a", policy, 5), ("a", policy, 3)]
    weights += [("b", other, 2), ("a", policy, 1)]
    decisions = await asyncio.gather(*(limiter.check(c, p, w) for c, p, w in weights))
    assert [d.admitted for d in decisions] == [True, True, True, False, False, True]
    assert limiter.round_trips == 1
    # what each was told is what was left after it: the day's window is the closest
    assert [(d.window, d.remaining) for d in decisions] == [
        ("day", 6),
        ("day", 1),
        ("day", 1),
        ("day", 1),
        ("day", 1),
        ("day", 0),
    ]
    assert [used for _, used, _ in await limiter.usage("a")] == [10, 10, 10]
    assert [used for _, used, _ in await limiter.usage("b")] == [2, 2, 2]


async def test_a_request_heavier_than_the_burst_takes_the_second_and_counts_in_full(
    redis_client: Any, redis_prefix: str
) -> None:
    """A bulk read of 100 items on a plan of 20 a second: admitted when the second is
    untouched (it takes all of it), counted 100 in the minute and the day; the next
    request in that second is refused. The same when Redis is away (counted locally)."""
    policy = PlanPolicy("p", PlanConfig(burst_per_second=20, per_minute=600, daily_quota=1000))
    for limiter in (Limiter(redis_client, redis_prefix), Limiter(None, redis_prefix)):
        first = await limiter.check("bulk", policy, 100)
        if first.window == "burst" and not first.admitted:  # a second's edge: the next one
            first = await limiter.check("bulk", policy, 100)
        assert first.admitted
        used = {window: n for window, n, _ in await limiter.usage("bulk")}
        assert (used["minute"], used["day"]) == (100, 100)
        assert used["burst"] in (0, 20)  # 0 once the second has turned
        refused = await limiter.check("bulk", policy, 501)  # 601 > the minute's 600
        assert not refused.admitted
        used = {window: n for window, n, _ in await limiter.usage("bulk")}
        assert used["minute"] == 100  # a refused request counts nothing
