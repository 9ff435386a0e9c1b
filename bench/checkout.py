"""Checkout throughput: orders per second and latency through the gateway, side by side with
the saga's first step alone (a bare stock reservation), same mesh, same clients, one run;
on SQLite (the embedded default) and on PostgreSQL (`DATABASE_URL`), one after the other.

wrk keeps one connection per customer; each request goes as the next customer in turn (its
own token, so its own rate-limit consumer), a checkout of one line and one unit with a fresh
Idempotency-Key, back to back for the duration.
Reported: orders/s, p50 and p99, and the ratio to the bare reservation, which shows what
the saga's durability (its step log, the outbox, the idempotency record) costs.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.table import QUICK, Row, quick
from bench.tools import FIVE_XX_LUA, Served, roomy_plan, wrk
from tests.support import ensure_redis, free_port

CLIENTS = int(os.environ.get("BENCH_CHECKOUT_CLIENTS", "32"))
SECONDS = float(os.environ.get("BENCH_CHECKOUT_SECONDS", quick(15, 5)))
SKUS = [f"SKU-{n:06d}" for n in range(150, 170)]


class Phase(msgspec.Struct):
    name: str
    done: int
    refused: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds


class CheckoutResult(msgspec.Struct):
    storage: str
    checkout: Phase
    reservation: Phase
    postings: int
    posted_s: float


#: wrk's script: each request as the next customer (tokens in turn), with its own
#: Idempotency-Key and payment reference (a checkout) or reservation id (a reservation)
WRK_SCRIPT = """
local tokens = {%(tokens)s}
local skus = {%(skus)s}
local path, kind = "%(path)s", "%(kind)s"
math.randomseed(os.time())
local run = string.format("%%08x", math.random(0, 2147483647))
local n = 0
request = function()
  n = n + 1
  local id = run .. "-" .. n
  local sku = skus[(n %% #skus) + 1]
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[(n %% #tokens) + 1],
    ["Content-Type"] = "application/json",
  }
  local body
  if kind == "checkout" then
    headers["Idempotency-Key"] = '"' .. id .. '"'
    body = '{"lines":[{"sku":"' .. sku .. '","quantity":1}],"payment_reference":"psp-' .. id .. '"}'
  else
    body = '{"reservation_id":"bench-' .. id .. '","sku":"' .. sku .. '","quantity":1,'
      .. '"owner":"bench-' .. id .. '","channel":"web"}'
  end
  return wrk.format("POST", path, headers, body)
end
"""


def _phase(name: str, base: str, tokens: list[str], path: str, kind: str, work: Path) -> Phase:
    """wrk, one connection per customer, for SECONDS: a client that is not the bottleneck
    (the httpx client it replaces topped out near 330 requests a second)."""
    script = work / f"{kind}.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "tokens": ", ".join(f'"{t}"' for t in tokens),
            "skus": ", ".join(f'"{s}"' for s in SKUS),
            "path": path,
            "kind": kind,
        }
        + FIVE_XX_LUA
    )
    r = wrk(base, seconds=int(SECONDS), connections=CLIENTS, headers={}, script=script)
    refused = r.non_2xx + r.errors
    return Phase(name, r.requests - r.non_2xx, refused, SECONDS, r.p50_ms, r.p99_ms)


async def _drive(storage: str, base: str, tokens: list[str], admin: str) -> CheckoutResult:
    auth = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for sku in SKUS:  # plenty of stock: this measures the path, not refusals
            r = await client.post(
                "/v1/erp/inventory/adjustments",
                headers=auth,
                json={
                    "adjustment_id": f"bench-{uuid.uuid4().hex[:12]}",
                    "sku": sku,
                    "location_id": "DC-NORTH",
                    "delta": 100_000,
                    "reason": "receipt",
                },
            )
            assert r.status_code == 201, r.text
            await client.get(f"/v1/inventory/availability/{sku}", headers=auth)  # warm
    work = Path(tempfile.mkdtemp(prefix="rm-checkout-wrk-"))
    reservation = await asyncio.to_thread(
        _phase, "reservation", base, tokens, "/v1/inventory/reservations", "reservation", work
    )
    checkout = await asyncio.to_thread(
        _phase, "checkout", base, tokens, "/v1/orders/orders", "checkout", work
    )
    # and until the ERP has booked every confirmed order (outbox → consumer → ERP)
    started = time.perf_counter()
    posted = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while time.perf_counter() - started < 300:
            posted = 0
            for sku in SKUS:
                t = (await client.get(f"/v1/erp/postings/totals/{sku}", headers=auth)).json()
                posted += t["order_postings"]
            if posted >= checkout.done:
                break
            await asyncio.sleep(0.5)
    return CheckoutResult(storage, checkout, reservation, posted, time.perf_counter() - started)


PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _pg_database() -> str | None:
    """A fresh PostgreSQL database for the run, or None when none answers."""
    import asyncpg

    name = f"rm_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].split("://", 1)[1]
    return f"postgresql+asyncpg://{base}/{name}"


def embedded_mesh(database_url: str | None, workers: int = 1) -> tuple[Served, Any]:
    """An embedded mesh served by Granian (not started) and its development JWT issuer."""
    from gateway.app import GatewaySettings
    from gateway.config import load_config

    work = Path(tempfile.mkdtemp(prefix="rm-checkout-"))
    # the customers' plan out of the way: the limiter runs, it does not refuse
    config = roomy_plan(Path("deploy/config/gateway.toml").read_text(), "customer")
    (work / "gateway.toml").write_text(config)
    env = {
        "DATA_DIR": str(work),
        "GATEWAY_CONFIG": str(work / "gateway.toml"),
        "REDIS_URL": ensure_redis(),
        "REDIS_PREFIX": f"rmcheckout:{uuid.uuid4().hex[:8]}:",
        "LOG_LEVEL": "WARNING",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    settings = GatewaySettings.from_env(env)
    issuer = settings.dev_issuer(load_config(settings.gateway_config))  # writes .data's dev keys
    port = free_port()
    if workers > 1:
        # one worker first creates the schema and seeds; then all of them share the database
        first = Served.granian("services.mesh:embedded_from_env", port, env)
        first.start("/readyz")
        first.stop()
    return Served.granian("services.mesh:embedded_from_env", port, env, workers=workers), issuer


def _one(storage: str, database_url: str | None, workers: int = 1) -> CheckoutResult:
    server, issuer = embedded_mesh(database_url, workers)
    tokens = [
        issuer.mint(f"bench-customer-{n}", scopes=["orders:write", "inventory:reserve"], ttl_s=3600)
        for n in range(CLIENTS)
    ]
    admin = issuer.mint("bench-ops", roles=["admin"], ttl_s=3600)
    try:
        server.start("/readyz")
        return asyncio.run(_drive(storage, server.url, tokens, admin))
    finally:
        server.stop()


def run() -> list[CheckoutResult]:
    results = [_one("SQLite", None)]
    pg = asyncio.run(_pg_database())
    if pg is not None:
        results.append(_one("PostgreSQL", pg))
        if QUICK:
            return results
        # every service in each worker: consumer groups, SKIP LOCKED relays and saga leases
        # share the work between them
        workers = os.cpu_count() or 2
        pg2 = asyncio.run(_pg_database())
        assert pg2 is not None
        results.append(_one(f"PostgreSQL, {workers} workers", pg2, workers))
    return results


def rows(results: list[CheckoutResult]) -> list[Row]:
    out = []
    for r in results:
        out.append(
            Row(
                what=f"checkout, {CLIENTS} customers, {r.storage}",
                now=r.checkout.rate,
                unit="orders/s",
                anchor=r.reservation.rate,
                anchor_name="reservations/s",
                target=0.5,
            )
        )
        if r.storage == "PostgreSQL":
            out.append(
                Row(
                    what=f"  checkout p99, {r.storage}",
                    now=r.checkout.p99_ms,
                    unit="ms",
                    target=250,
                    sense="<=",
                )
            )
    return out


def report(results: list[CheckoutResult]) -> str:
    lines = [
        f"checkout: {CLIENTS} customers, {SECONDS:.0f} s a phase, through the gateway "
        "(embedded mesh: every service in each Granian worker)"
    ]
    for r in results:
        c, v = r.checkout, r.reservation
        lines += [
            f"  {r.storage}",
            f"    checkout     {c.rate:7.0f} orders/s  p50 {c.p50_ms:6.1f} ms  "
            f"p99 {c.p99_ms:6.1f} ms  ({c.done} confirmed, {c.refused} not)",
            f"    reservation  {v.rate:7.0f} req/s     p50 {v.p50_ms:6.1f} ms  "
            f"p99 {v.p99_ms:6.1f} ms  ({v.done} held, {v.refused} not)",
            f"    ratio checkout/reservation {c.rate / v.rate:.2f}; the ERP booked "
            f"{r.postings} orders, the last {r.posted_s:.1f} s after the checkouts",
        ]
    if len(results) == 1:
        lines.append("  (no PostgreSQL answered: its half was not run)")
    else:
        base = results[0].checkout.rate
        lines.append(
            "  checkout "
            + "; ".join(f"{r.storage}/SQLite {r.checkout.rate / base:.2f}" for r in results[1:])
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
