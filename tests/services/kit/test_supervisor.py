"""Supervised workers: one that dies is logged, started again and reported; none dies
silently, and the work it was doing gets done."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from contracts.events import Envelope, StockAdjusted, envelope
from services.kit.events import ConsumerPolicy, Outbox, RedisBus, Relay
from services.kit.periodic import Periodic
from services.kit.storage import Database
from services.kit.supervisor import Liveness, Supervisor
from tests.faults import failing_database
from tests.support import settle

STREAM = "events.supervised"
decoder = msgspec.json.Decoder(Envelope[StockAdjusted])
FAST = ConsumerPolicy(max_attempts=50, backoff_s=0.02, max_backoff_s=0.05, block_s=0.05)


def fact(n: int) -> Envelope[StockAdjusted]:
    data = StockAdjusted(
        sku="SKU-000001", location_id="STORE-001", delta=n, on_hand=n, reason="count"
    )
    return envelope(data, source="test")


class Dies:
    """A worker that raises `times` times, then runs until stopped."""

    name = "dies"

    def __init__(self, times: int, error: BaseException | None = None) -> None:
        self.times, self.error = times, error or RuntimeError("boom")
        self.liveness = Liveness(expected_s=60)
        self.runs = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.times:
            raise self.error
        self.liveness.ok()
        await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


async def test_a_worker_that_dies_is_logged_started_again_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(backoff_s=0.01, max_backoff_s=0.05)
    worker = Dies(3)
    with caplog.at_level(logging.ERROR, logger="retailmesh.workers"):
        supervisor.start(worker)
        await settle(lambda: _value(worker.runs), lambda runs: runs == 4)
    state = supervisor.states()["dies"]
    assert state.restarts == 3 and state.failures == 0 and state.status == "ok"
    assert state.last_error == "RuntimeError: boom"
    died = [r for r in caplog.records if "died" in r.getMessage()]
    assert len(died) == 3 and all(r.exc_info for r in died)  # with the traceback
    await supervisor.stop()
    assert worker.runs == 4  # stopping is not dying: nothing started again


async def test_a_worker_without_rounds_is_late() -> None:
    live = Liveness(expected_s=0.05)
    assert live.state().status == "ok"
    await asyncio.sleep(0.1)
    assert live.state().status == "late"
    live.ok()
    assert live.state().status == "ok"


async def _value(v: int) -> int:
    return v


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def test_the_relay_killed_by_a_database_error_comes_back_and_publishes_everything(
    db: Database, redis_url: str, redis_prefix: str
) -> None:
    metadata = MetaData()
    outbox = Outbox(metadata, "test")
    await db.create_all(metadata)
    client = aioredis.Redis.from_url(redis_url)
    bus = RedisBus(client, redis_prefix)
    relay = Relay(db, outbox, bus, interval_s=0.02)
    supervisor = Supervisor(backoff_s=0.01, max_backoff_s=0.05)
    try:
        with failing_database(db, 5) as fault:
            supervisor.start(relay)
            await settle(lambda: _value(fault.left), lambda left: left == 0)
        async with db.write() as conn:
            for n in range(20):
                await outbox.add(conn, STREAM, fact(n))
        outbox.notify()
        await settle(lambda: client.xlen(bus.key(STREAM)), lambda n: n == 20)
        state = supervisor.states()["event relay"]
        assert state.restarts >= 1 and "disk I/O error" in (state.last_error or "")
        assert state.status == "ok"
    finally:
        await supervisor.stop()
        await client.aclose()


async def test_a_consumer_whose_handler_hits_database_errors_applies_every_event_once(
    db: Database, redis_url: str, redis_prefix: str
) -> None:
    metadata = MetaData()
    applied = Table(
        "applied", metadata, Column("event_id", String, primary_key=True), Column("n", Integer)
    )
    await db.create_all(metadata)
    client = aioredis.Redis.from_url(redis_url)
    bus = RedisBus(client, redis_prefix)

    async def handle(event: Envelope[StockAdjusted]) -> None:
        async with db.write() as conn:
            await conn.execute(insert(applied).values(event_id=event.id, n=event.data.delta))

    consumer = bus.consumer(STREAM, "g", handle, decoder, policy=FAST)
    supervisor = Supervisor(backoff_s=0.01, max_backoff_s=0.05)
    try:
        with failing_database(db, 15) as fault:
            for n in range(30):
                event = fact(n)
                await bus.publish(STREAM, event.id, "StockAdjusted", msgspec.json.encode(event))
            supervisor.start(consumer)
            await settle(lambda: _value(fault.left), lambda left: left == 0)

        async def count() -> int:
            async with db.read() as conn:
                query = select(func.count()).select_from(applied)
                return int((await conn.execute(query)).scalar_one())

        await settle(count, lambda n: n == 30)
        assert await bus.dead_letters(STREAM) == []
        assert supervisor.states()["consumer events.supervised/g"].status == "ok"
    finally:
        await supervisor.stop()
        await client.aclose()


async def test_a_periodic_job_failing_on_the_database_counts_failures_and_recovers(
    db: Database,
) -> None:
    rounds: list[int] = []

    async def job() -> None:
        async with db.read() as conn:
            rounds.append(int((await conn.execute(select(1))).scalar_one()))

    worker = Periodic("probe", 0.01, job, run_s=60)
    supervisor = Supervisor()
    try:
        with failing_database(db, 4) as fault:
            supervisor.start(worker)
            await settle(lambda: _value(fault.left), lambda left: left == 0)
        await settle(lambda: _value(len(rounds)), lambda n: n >= 3)
        state = supervisor.states()["probe"]
        assert state.failures == 0 and state.restarts == 0  # a failing round is not a death
        assert "disk I/O error" in (state.last_error or "")
    finally:
        await supervisor.stop()
