"""Flash sale: 500 concurrent clients reading 20 hot SKUs through the gateway, with the ERP
slow and rate-limited. The cache must shield it: few ERP calls, no ERP 429s, no 5xx.
Then the same sale through the web shop's product page (`/v2/web/products/{sku}`, which
composes the catalogue copy and the same ATS cache), against the inventory read's rate.

The embedded mesh in one Granian worker; the reference ERP at ERP_LATENCY_MS=150 and
ERP_RATE_LIMIT_RPS=20; wrk with a Lua script that picks one of 20 SKUs per request and
counts 5xx answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import msgspec

from bench.table import Row, quick
from bench.tools import (
    FIVE_XX_LUA,
    Served,
    WrkResult,
    ensure_debian_tool,
    resident_mb,
    roomy_plan,
    wrk,
)
from tests.support import ensure_redis, free_port

SECONDS = int(os.environ.get("BENCH_FLASH_SECONDS", quick(30, 8)))
CLIENTS = int(os.environ.get("BENCH_FLASH_CLIENTS", "500"))
SKUS = [f"SKU-{n:06d}" for n in range(1, 21)]

WRK_SCRIPT = """
local skus = {%s}
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "%s" .. skus[math.random(#skus)] .. "%s")
end
""" + FIVE_XX_LUA.replace("%", "%%")
INVENTORY_READ = "/v1/inventory/availability/"
#: a product page with pick-up at the shopper's store and the two nearest
WEB_READ, WEB_QUERY = "/v2/web/products/", "?store=STORE-003"


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-tmp;
  proxy_temp_path {work}/nginx-tmp;
  fastcgi_temp_path {work}/nginx-tmp;
  uwsgi_temp_path {work}/nginx-tmp;
  scgi_temp_path {work}/nginx-tmp;
  server {{
    listen 127.0.0.1:{port};
    root {work};
    location /v1/inventory/availability/ {{
      default_type application/json;
      try_files /availability.json =404;
    }}
  }}
}}
"""
#: how often the cache refreshes a SKU from the ERP (the inventory service's default)
REFRESH_S = 5.0


class CacheUse(msgspec.Struct):
    erp_calls: int
    erp_429: int
    hit_ratio: float
    stale_serves: int


class FlashResult(msgspec.Struct):
    sale: WrkResult
    erp_calls: int
    erp_429: int
    hit_ratio: float
    stale_serves: int
    resident_mb: float
    nginx: WrkResult
    #: the same sale through the web shop's product page
    web: WrkResult
    web_cache: CacheUse


def _wrk(url: str, script: Path, headers: dict[str, str]) -> WrkResult:
    return wrk(url, seconds=SECONDS, connections=CLIENTS, headers=headers, script=script)


def _nginx(work: Path, document: bytes, script: Path) -> WrkResult:
    """nginx (one worker) serving the same availability document to the same load."""
    nginx = ensure_debian_tool("nginx", "nginx")
    port = free_port()
    (work / "availability.json").write_bytes(document)
    (work / "nginx-tmp").mkdir(exist_ok=True)
    (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, port=port))
    server = Served(
        [nginx, "-e", str(work / "nginx-error.log"), "-c", str(work / "nginx.conf")],
        f"http://127.0.0.1:{port}",
    )
    try:
        server.start(f"/v1/inventory/availability/{SKUS[0]}")
        return _wrk(server.url, script, {})
    finally:
        server.stop()


def _stats(url: str, auth: dict[str, str]) -> dict[str, int]:
    """The inventory's cache counters (hits, misses, ERP fetches) so far."""
    view = httpx.get(f"{url}/v1/inventory/cache/{SKUS[0]}", headers=auth).json()
    return dict(view["stats"])


def _cache_use(before: dict[str, int], after: dict[str, int]) -> CacheUse:
    stats = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    hits = stats.get("hit", 0)
    lookups = hits + stats.get("miss", 0) + stats.get("stale", 0)
    return CacheUse(
        erp_calls=stats.get("erp_fetches", 0),
        erp_429=stats.get("erp_429", 0),
        hit_ratio=hits / lookups if lookups else 0.0,
        stale_serves=stats.get("stale", 0),
    )


def _script(work: Path, name: str, path: str, query: str = "") -> Path:
    script = work / name
    script.write_text(WRK_SCRIPT % (", ".join(f'"{s}"' for s in SKUS), path, query))
    return script


def run() -> FlashResult:
    work = Path(tempfile.mkdtemp(prefix="rm-flash-"))
    # The shop's backend is one JWT consumer: give its plan room for the whole sale, and let
    # it hold as many requests in flight to the inventory as the sale has clients (the
    # default share, a quarter of the upstream's, would answer most of them 429).
    # The web shop's readers are anonymous (its product pages are public), all from one
    # address here: the anonymous plan gets the same room.
    config = roomy_plan(Path("deploy/config/gateway.toml").read_text(), "internal")
    config = roomy_plan(config, "free")
    config = config.replace(
        '[upstreams.inventory]\nservice = "inventory"\n',
        '[upstreams.inventory]\nservice = "inventory"\n'
        f"max_concurrency = {2 * CLIENTS}\nmax_concurrency_per_consumer = {CLIENTS}\n",
    )
    assert f"max_concurrency_per_consumer = {CLIENTS}" in config
    (work / "gateway.toml").write_text(config)
    port = free_port()
    env = {
        "DATA_DIR": str(work),
        "REDIS_URL": ensure_redis(),
        "REDIS_PREFIX": f"rmflash:{uuid.uuid4().hex[:8]}:",
        "GATEWAY_CONFIG": str(work / "gateway.toml"),
        "ERP_LATENCY_MS": "150",
        "ERP_RATE_LIMIT_RPS": "20",
        "ATS_REFRESH_S": str(REFRESH_S),
        "LOG_LEVEL": "WARNING",
    }
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "token",
            "--sub",
            "shop",
            "--role",
            "admin",
            "--ttl",
            "7200",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    script = _script(work, "flash.lua", INVENTORY_READ)
    web_script = _script(work, "web.lua", WEB_READ, WEB_QUERY)
    server = Served.granian("services.mesh:embedded_from_env", port, env)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        server.start("/readyz")
        # the sale's SKUs are read once before it opens, as a retailer warms a flash sale;
        # the ratio counts the sale's reads only
        for sku in SKUS:
            httpx.get(f"{server.url}/v1/inventory/availability/{sku}", headers=auth)
        before = _stats(server.url, auth)
        sale = _wrk(server.url, script, auth)
        assert server.proc is not None
        rss = resident_mb(server.proc.pid)
        after = _stats(server.url, auth)
        document = httpx.get(
            f"{server.url}/v1/inventory/availability/{SKUS[0]}", headers=auth
        ).content
        for sku in SKUS:  # the web shop's catalogue copy is loaded before the sale too
            httpx.get(f"{server.url}{WEB_READ}{sku}{WEB_QUERY}")
        web_before = _stats(server.url, auth)
        web = _wrk(server.url, web_script, {})
        web_after = _stats(server.url, auth)
    finally:
        server.stop()
    cache = _cache_use(before, after)
    return FlashResult(
        sale=sale,
        erp_calls=cache.erp_calls,
        erp_429=cache.erp_429,
        hit_ratio=cache.hit_ratio,
        stale_serves=cache.stale_serves,
        resident_mb=rss,
        nginx=_nginx(work, document, script),
        web=web,
        web_cache=_cache_use(web_before, web_after),
    )


def rows(r: FlashResult) -> list[Row]:
    # one fetch per SKU per refresh interval, plus one each for a refresh under way
    allowed = len(SKUS) * (SECONDS / REFRESH_S + 1)
    return [
        Row(
            what=f"flash sale: {CLIENTS} clients, {len(SKUS)} hot SKUs, full stack",
            now=r.sale.rps,
            unit="req/s",
            anchor=r.nginx.rps,
            anchor_name="nginx",
            target=0.25,
        ),
        Row(what="  cache hit ratio", now=r.hit_ratio, unit="", target=0.999),
        Row(
            what="  ERP fetches per SKU per refresh",
            now=r.erp_calls / allowed,
            unit="",
            target=1.0,
            sense="<=",
        ),
        Row(what="  ERP 429s", now=r.erp_429, unit="", target=0, sense="<="),
        Row(what="  5xx at the edge", now=r.sale.five_xx, unit="", target=0, sense="<="),
        Row(
            what="  other non-2xx answers",
            now=r.sale.non_2xx - r.sale.five_xx,
            unit="",
            target=0,
            sense="<=",
        ),
        Row(
            what="flash sale through /v2/web product pages",
            now=r.web.rps,
            unit="req/s",
            anchor=r.sale.rps,
            anchor_name="/v1/inventory",
            target=0.7,
        ),
        Row(what="  cache hit ratio", now=r.web_cache.hit_ratio, unit="", target=0.999),
        Row(
            what="  ERP fetches per SKU per refresh",
            now=r.web_cache.erp_calls / allowed,
            unit="",
            target=1.0,
            sense="<=",
        ),
        Row(what="  5xx at the edge", now=r.web.five_xx, unit="", target=0, sense="<="),
        Row(
            what="  other non-2xx answers",
            now=r.web.non_2xx - r.web.five_xx,
            unit="",
            target=0,
            sense="<=",
        ),
    ]


def report(r: FlashResult) -> str:
    return "\n".join(
        [
            f"flash sale: {CLIENTS} clients, {len(SKUS)} hot SKUs, {SECONDS}s, through the gateway;"
            " ERP 150 ms, 20 req/s",
            f"  {r.sale.rps:.0f} req/s  p50 {r.sale.p50_ms:.1f} ms  p99 {r.sale.p99_ms:.1f} ms  "
            f"({r.sale.requests} requests, {r.sale.errors} socket errors); "
            f"mesh resident memory {r.resident_mb:.0f} MiB at the end",
            f"  nginx, same document and load: {r.nginx.rps:.0f} req/s  "
            f"p50 {r.nginx.p50_ms:.1f} ms  p99 {r.nginx.p99_ms:.1f} ms",
            f"  ERP calls {r.erp_calls}  ERP 429s {r.erp_429} (must be 0)  "
            f"5xx at the edge {r.sale.five_xx} (must be 0)  non-2xx {r.sale.non_2xx}",
            f"  cache hit ratio {r.hit_ratio:.4f}  stale serves {r.stale_serves}",
            f"  through /v2/web product pages ({WEB_READ}<sku>{WEB_QUERY}): "
            f"{r.web.rps:.0f} req/s  p50 {r.web.p50_ms:.1f} ms  p99 {r.web.p99_ms:.1f} ms  "
            f"({r.web.errors} socket errors, {r.web.five_xx} 5xx, {r.web.non_2xx} non-2xx); "
            f"ERP calls {r.web_cache.erp_calls}, hit ratio {r.web_cache.hit_ratio:.4f}, "
            f"ratio to the inventory read {r.web.rps / r.sale.rps if r.sale.rps else 0:.2f}",
        ]
    )


if __name__ == "__main__":
    print(report(run()))
