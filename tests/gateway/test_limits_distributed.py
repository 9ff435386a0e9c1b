"""Three gateway processes sharing Redis admit the plan's limit, not three times it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.support import ServedApp

CONFIG = """
anonymous_plan = "free"

[plans.free]
burst_per_second = 100000
per_minute = 100000
daily_quota = 300

[plans.internal]
burst_per_second = 100000
per_minute = 100000
daily_quota = 100000

[upstreams.erp]
service = "erp"

[[apis]]
name = "erp"
upstream = "erp"
  [[apis.versions]]
  version = "v1"

  [[apis.routes]]
  path = "/products/**"
  methods = ["GET"]
  auth = "none"
"""


def _wait_out_midnight() -> None:
    # The quota is a UTC day: keep the run inside one.
    left = 86400 - time.time() % 86400
    if left < 60:
        time.sleep(left + 1)


async def test_three_replicas_admit_the_plan_limit_not_three_times_it(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    (tmp_path / "gateway.toml").write_text(CONFIG)
    env = {
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "GATEWAY_CONFIG": str(tmp_path / "gateway.toml"),
        "LOG_LEVEL": "WARNING",
    }
    replicas = [ServedApp("services.mesh:embedded_from_env", env) for _ in range(3)]
    try:
        for replica in replicas:
            replica.start()
        _wait_out_midnight()
        async with httpx.AsyncClient(timeout=10) as client:
            semaphore = asyncio.Semaphore(30)

            async def one(n: int) -> int:
                async with semaphore:
                    url = replicas[n % 3].url + "/v1/erp/products/SKU-000001"
                    return (await client.get(url)).status_code

            statuses = await asyncio.gather(*(one(n) for n in range(900)))
        admitted = statuses.count(200)
        assert statuses.count(429) == 900 - admitted
        assert abs(admitted - 300) <= 3, admitted  # within 1%; exact counting gives 300
        by_replica = [statuses[i::3].count(200) for i in range(3)]
        assert all(n > 0 for n in by_replica), by_replica  # every replica took part
    finally:
        for replica in replicas:
            replica.stop()
