"""Governed proxying, the gateway against HAProxy, side by side in one run.

Both do the same job in front of the same upstream, one worker each: check an API key
(HAProxy: a map file; the gateway: its key cache), count the request against a limit
shared per key (HAProxy: a stick table; the gateway: Redis, coalesced), forward. The same
wrk load goes to each. Target: the gateway at least a third of HAProxy's throughput.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import msgspec

from bench.table import Row as TableRow
from bench.table import quick
from bench.tools import Served, WrkResult, ensure_debian_tool, wrk
from tests.support import ensure_redis, free_port

SECONDS = int(os.environ.get("BENCH_SECONDS", quick(10, 3)))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
PATH = "/v1/bench/products/SKU-000001"

GATEWAY_TOML = """
anonymous_plan = "bench"

[jwt.plans]
operator = "bench"
service = "bench"
partner = "bench"
till = "bench"
customer = "bench"

[plans.bench]
burst_per_second = 1000000000
per_minute = 1000000000
daily_quota = 1000000000

[upstreams.bench]
service = "bench"

[[apis]]
name = "bench"
upstream = "bench"
  [[apis.versions]]
  version = "v1"

  [[apis.routes]]
  path = "/**"
  methods = ["GET"]
  auth = "key"
"""

HAPROXY_CFG = """
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{port}
    stick-table type string len 64 size 100k expire 10m store http_req_rate(60s)
    http-request deny deny_status 401 unless {{ req.hdr(x-api-key),map({map}) -m found }}
    http-request track-sc0 req.hdr(x-api-key)
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 1000000000 }}
    default_backend be
backend be
    http-reuse always
    server upstream 127.0.0.1:{upstream}
"""


class Row(msgspec.Struct):
    name: str
    result: WrkResult


def run() -> list[Row]:
    haproxy = ensure_debian_tool("haproxy", "haproxy")
    ensure_debian_tool("wrk", "wrk")
    work = Path(tempfile.mkdtemp(prefix="rm-bench-"))
    upstream_port, gateway_port, haproxy_port = free_port(), free_port(), free_port()
    upstream = Served.granian("bench.upstream:create", upstream_port)
    env = {
        "DATA_DIR": str(work),
        "REDIS_URL": ensure_redis(),
        "REDIS_PREFIX": f"rmbench:{uuid.uuid4().hex[:8]}:",
        "GATEWAY_CONFIG": str(work / "gateway.toml"),
        "SERVICE_URLS": f"bench=http://127.0.0.1:{upstream_port}",
        "LOG_LEVEL": "WARNING",
    }
    (work / "gateway.toml").write_text(GATEWAY_TOML)

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    cli("partners", "add", "bench")  # a key is minted for a registered partner
    created = cli("keys", "create", "--partner", "bench", "--plan", "bench")
    key = created.split("store it now): ")[1].strip()
    (work / "keys.map").write_text(f"{key} bench\n")
    (work / "haproxy.cfg").write_text(
        HAPROXY_CFG.format(port=haproxy_port, map=work / "keys.map", upstream=upstream_port)
    )
    gateway = Served.granian("services.mesh:gateway_from_env", gateway_port, env)
    proxy = Served([haproxy, "-f", str(work / "haproxy.cfg")], f"http://127.0.0.1:{haproxy_port}")
    headers = {"X-API-Key": key}
    rows = []
    try:
        upstream.start()
        gateway.start(PATH, headers)
        proxy.start(PATH, headers)
        for server in (proxy, gateway):
            wrk(server.url + PATH, seconds=2, connections=CONNECTIONS, headers=headers)  # warm-up
        for name, server in (("haproxy", proxy), ("gateway", gateway)):
            rows.append(
                Row(
                    name,
                    wrk(
                        server.url + PATH, seconds=SECONDS, connections=CONNECTIONS, headers=headers
                    ),
                )
            )
        # and the door is really shut: no key, no service
        refused = wrk(gateway.url + PATH, seconds=1, connections=4, headers={})
        assert refused.non_2xx == refused.requests, "the gateway served a request without a key"
    finally:
        for server in (proxy, gateway, upstream):
            server.stop()
    return rows


def rows(measured: list[Row]) -> list[TableRow]:
    by = {r.name: r.result for r in measured}
    return [
        TableRow(
            what="governed proxy: key + limit + forward, 1 worker",
            now=by["gateway"].rps,
            unit="req/s",
            anchor=by["haproxy"].rps,
            anchor_name="HAProxy",
            target=0.33,
        )
    ]


def report(rows: list[Row]) -> str:
    by = {r.name: r.result for r in rows}
    lines = [
        f"gateway vs HAProxy: API key + shared rate limit + forward, one worker each, "
        f"wrk -c{CONNECTIONS} {SECONDS}s",
        f"{'':10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'non-2xx':>9}",
    ]
    for name, r in by.items():
        lines.append(
            f"{name:10}{r.rps:10.0f}{r.p50_ms:9.2f}{r.p99_ms:9.2f}{r.errors:8}{r.non_2xx:9}"
        )
    ratio = by["gateway"].rps / by["haproxy"].rps
    lines.append(f"ratio gateway/haproxy: {ratio:.2f} (target >= 0.33)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
