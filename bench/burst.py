"""A burst of checkouts beyond the stock: a thousand customers at once for a SKU with a
hundred units, through the gateway (embedded mesh, SQLite). Exactly the stock is confirmed;
the refused must hear so quickly (409 within a second each), not after the accepted
orders' sagas, and a burst beyond what the mesh takes at once is shed early (503 with
Retry-After), never held until the gateway's 504.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import msgspec

from bench.checkout import embedded_mesh
from bench.rawhttp import burst, request_bytes
from bench.table import Row, quick

BURST = int(os.environ.get("BENCH_BURST", quick(1000, 300)))
UNITS = BURST // 10
SKU = "SKU-000171"


class BurstResult(msgspec.Struct):
    confirmed: int
    refused: int
    shed: int
    other: dict[str, int]
    refused_p50_ms: float
    refused_max_ms: float
    confirmed_max_ms: float
    seconds: float


async def _set_stock(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """On hand such that exactly UNITS are available to sell on the web (DC-NORTH keeps
    its safety stock on top)."""
    web = (await client.get(f"/v1/inventory/availability/{SKU}", headers=auth)).json()
    safety = {row["location_id"]: row["safety_stock"] for row in web["locations"]}
    positions = (await client.get(f"/v1/erp/inventory/{SKU}", headers=auth)).json()["positions"]
    for position in positions:
        wanted = UNITS + safety.get("DC-NORTH", 0) if position["location_id"] == "DC-NORTH" else 0
        r = await client.post(
            "/v1/erp/inventory/adjustments",
            headers=auth,
            json={
                "adjustment_id": f"burst-{uuid.uuid4().hex[:12]}",
                "sku": SKU,
                "location_id": position["location_id"],
                "delta": wanted - position["on_hand"],
                "reason": "count",
            },
        )
        assert r.status_code == 201, r.text


async def _burst(base: str, tokens: list[str], admin: str) -> BurstResult:
    auth = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        await _set_stock(client, auth)
        for _ in range(100):  # the stock events reach the inventory's cache
            web = await client.get(f"/v1/inventory/availability/{SKU}", headers=auth)
            if web.json()["ats"] == UNITS:
                break
            await asyncio.sleep(0.1)
        assert web.json()["ats"] == UNITS, web.text

    host, port = base.removeprefix("http://").split(":")
    requests = [
        request_bytes(
            "POST",
            host,
            "/v1/orders/orders",
            {
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": f'"{uuid.uuid4()}"',
                "Content-Type": "application/json",
            },
            msgspec.json.encode(
                {
                    "lines": [{"sku": SKU, "quantity": 1}],
                    "payment_reference": f"psp-{uuid.uuid4().hex[:16]}",
                }
            ),
        )
        for token in tokens
    ]
    answers = [(a.status, a.ms) for a in await burst(host, int(port), requests)]
    seconds = max(ms for _, ms in answers) / 1000
    refused = sorted(ms for status, ms in answers if status == 409)
    confirmed = [ms for status, ms in answers if status == 201]
    other: dict[str, int] = {}
    for status, _ in answers:
        if status not in (201, 409, 503):
            other[str(status)] = other.get(str(status), 0) + 1
    return BurstResult(
        confirmed=len(confirmed),
        refused=len(refused),
        shed=sum(1 for status, _ in answers if status == 503),
        other=other,
        refused_p50_ms=refused[len(refused) // 2] if refused else 0.0,
        refused_max_ms=refused[-1] if refused else 0.0,
        confirmed_max_ms=max(confirmed, default=0.0),
        seconds=seconds,
    )


def run() -> BurstResult:
    server, issuer = embedded_mesh(None)
    tokens = [
        issuer.mint(f"burst-customer-{n}", scopes=["orders:write"], ttl_s=3600)
        for n in range(BURST)
    ]
    admin = issuer.mint("bench-ops", roles=["admin"], ttl_s=3600)
    try:
        server.start("/readyz")
        return asyncio.run(_burst(server.url, tokens, admin))
    finally:
        server.stop()


def rows(r: BurstResult) -> list[Row]:
    return [
        Row(
            what=f"burst: {BURST} checkouts for {UNITS} units, slowest refusal",
            now=r.refused_max_ms,
            unit="ms",
            target=1000,
            sense="<=",
        ),
        Row(
            what="  confirmed beyond the stock",
            now=max(0, r.confirmed - UNITS),
            unit="",
            target=0,
            sense="<=",
        ),
        Row(
            what="  held until 504 (or other)",
            now=sum(r.other.values()),
            unit="",
            target=0,
            sense="<=",
        ),
    ]


def report(r: BurstResult) -> str:
    return (
        f"checkout burst: {BURST} customers at once for {UNITS} units, through the gateway "
        f"(embedded mesh, SQLite), {r.seconds:.1f} s in all\n"
        f"  confirmed {r.confirmed}, refused 409 {r.refused} (p50 {r.refused_p50_ms:.0f} ms, "
        f"slowest {r.refused_max_ms:.0f} ms), shed 503 {r.shed}, other {r.other or 'none'}; "
        f"slowest confirmation {r.confirmed_max_ms:.0f} ms"
    )


if __name__ == "__main__":
    print(report(run()))
