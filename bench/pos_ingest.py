"""Store sync throughput: tills upload batches of 500 transactions through the gateway.

Reports two rates: accepted by the POS (stored with their events, per second) and end to end
(until the ERP holds a posting for every one of them, through the outbox and the consumer).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.table import Row, quick
from bench.tools import Served
from tests.support import ensure_redis, free_port

TRANSACTIONS = int(os.environ.get("BENCH_POS_TRANSACTIONS", quick(10_000, 2_000)))
TILLS = 4
BATCH = 500
SKUS = [f"SKU-{n:06d}" for n in range(30, 40)]


class IngestResult(msgspec.Struct):
    transactions: int
    accept_s: float
    end_to_end_s: float


def _token(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "token", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _tx(till: int, seq: int) -> dict[str, Any]:
    return {
        "transaction_id": str(uuid.uuid4()),
        "kind": "sale",
        "store_id": "STORE-004",
        "till_id": f"T{till}",
        "sequence": seq,
        "occurred_at": "2026-11-24T09:00:00Z",
        "lines": [
            {
                "sku": SKUS[seq % len(SKUS)],
                "quantity": 1,
                "unit_price": {"amount": 500, "currency": "EUR"},
            }
        ],
        "tenders": [{"kind": "card", "amount": {"amount": 500, "currency": "EUR"}}],
    }


async def _drive(base: str, till_tokens: list[str], admin_token: str) -> IngestResult:
    per_till = TRANSACTIONS // TILLS
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def till(n: int) -> None:
            txs = [_tx(n, s) for s in range(1, per_till + 1)]
            for i in range(0, len(txs), BATCH):
                while True:  # as a till that honours its plan: past it, after Retry-After
                    r = await client.post(
                        "/v1/pos/transactions/batches",
                        json={"transactions": txs[i : i + BATCH]},
                        headers={"Authorization": f"Bearer {till_tokens[n]}"},
                    )
                    if r.status_code != 429:
                        break
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                assert r.status_code == 200 and r.json()["accepted"] == len(txs[i : i + BATCH]), (
                    r.text
                )

        started = time.perf_counter()
        await asyncio.gather(*(till(n) for n in range(TILLS)))
        accepted = time.perf_counter() - started
        total = per_till * TILLS
        admin = {"Authorization": f"Bearer {admin_token}"}
        deadline = started + 600
        while time.perf_counter() < deadline:
            posted = 0
            for sku in SKUS:
                t = (await client.get(f"/v1/erp/postings/totals/{sku}", headers=admin)).json()
                posted += t["order_postings"]
            if posted >= total:
                break
            await asyncio.sleep(0.5)
        return IngestResult(total, accepted, time.perf_counter() - started)


def run() -> IngestResult:
    work = Path(tempfile.mkdtemp(prefix="rm-pos-"))
    port = free_port()
    env = {
        "DATA_DIR": str(work),
        "REDIS_URL": ensure_redis(),
        "REDIS_PREFIX": f"rmpos:{uuid.uuid4().hex[:8]}:",
        "LOG_LEVEL": "WARNING",
    }
    # each till signs in as itself: its own consumer of the pos plan
    till_tokens = [
        _token(env, "--sub", f"till-{n}", "--scope", "pos:write", "--store-id", "STORE-004")
        for n in range(TILLS)
    ]
    admin_token = _token(env, "--sub", "ops", "--role", "admin", "--ttl", "7200")
    server = Served.granian("services.mesh:embedded_from_env", port, env)
    try:
        server.start("/readyz")
        return asyncio.run(_drive(server.url, till_tokens, admin_token))
    finally:
        server.stop()


def rows(r: IngestResult) -> list[Row]:
    accepted = r.transactions / r.accept_s
    return [
        Row(
            what="store sync: accepted by the POS (SQLite)",
            now=accepted,
            unit="tx/s",
            target=2000,
        ),
        Row(
            what="store sync: end to end, booked in the ERP",
            now=r.transactions / r.end_to_end_s,
            unit="tx/s",
            anchor=accepted,
            anchor_name="accepted",
            target=0.8,
        ),
    ]


def report(r: IngestResult) -> str:
    return (
        f"store sync: {r.transactions} transactions, {TILLS} tills, batches of {BATCH}, "
        f"through the gateway (embedded mesh, SQLite)\n"
        f"  accepted {r.transactions / r.accept_s:.0f} tx/s ({r.accept_s:.1f} s); "
        f"end to end to the ERP {r.transactions / r.end_to_end_s:.0f} tx/s ({r.end_to_end_s:.1f} s)"
    )


if __name__ == "__main__":
    print(report(run()))
