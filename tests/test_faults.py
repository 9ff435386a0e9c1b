"""Faults injected into the running mesh heal by themselves: each scenario ends with every
accepted sale booked and every confirmed order posted once, nothing in the dead letters,
and prints how long the mesh took to recover."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.mesh import build_embedded
from tests.conftest import Running, dev_issuer
from tests.services.pos.test_batches import sale, till, upload
from tests.support import settle


def recovered(scenario: str, started: float) -> None:
    print(f"\n[fault] {scenario}: recovered in {time.monotonic() - started:.1f} s")


@pytest.fixture
def env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "RELAY_INTERVAL_S": "0.05",
    }


@pytest.fixture
def admin(env: dict[str, str]) -> dict[str, str]:
    return {"Authorization": "Bearer " + dev_issuer(env).mint("ops", roles=["admin"])}


@pytest.fixture
async def busy_erp(env: dict[str, str]) -> AsyncIterator[Running]:
    """The mesh with an ERP that takes 3 requests a second and answers 429 past that."""
    busy = {**env, "ERP_RATE_LIMIT_RPS": "3", "RETRY_MAX_BACKOFF_S": "2"}
    async with Running(build_embedded(busy)) as running:
        yield running


async def test_a_busy_erp_books_every_sale_of_a_batch_and_dead_letters_none(
    busy_erp: Running, env: dict[str, str], admin: dict[str, str]
) -> None:
    mesh = busy_erp
    txs = [sale(n, till_id="T9") for n in range(1, 51)]
    ids = {tx["transaction_id"] for tx in txs}
    started = time.monotonic()
    answer = await upload(mesh, till(env), txs)
    assert answer.status_code == 200 and answer.json()["accepted"] == 50

    async def booked() -> int:
        r = await mesh.client.get(
            "/v1/erp/postings", params={"kind": "order", "limit": 200}, headers=admin
        )
        if r.status_code != 200:  # the ERP is busy for us too
            return -1
        return sum(1 for p in r.json()["items"] if p["posting_id"] in ids)

    seen_backlog = 0

    async def still_to_book() -> int:
        nonlocal seen_backlog
        r = await mesh.client.get("/admin/v1/backlog", headers=admin)
        assert r.status_code == 200, r.text
        waiting = r.json()
        left = sum(b["pending"] + b["undelivered"] for b in waiting if b["group"] == "pos-erp")
        seen_backlog = max(seen_backlog, left)
        return left

    # the ERP's own listing costs it requests too: watch the backlog, then count once
    await settle(still_to_book, lambda left: left == 0 and seen_backlog > 0, interval_s=0.5)
    recovered("ERP at 3 requests/s, 50-sale batch", started)
    assert await settle(booked, lambda n: n >= 0) == 50
    letters = (await mesh.client.get("/admin/v1/dead-letters/events.pos", headers=admin)).json()
    assert letters == []
