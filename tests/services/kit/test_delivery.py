"""Delivery to another service: a busy or absent one is waited out (days, not attempts),
its Retry-After honoured; an event it calls wrong is a dead letter at once; the backlog
is visible. The same rules on Redis Streams and on the in-memory bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from contracts.events import Envelope, StockAdjusted, envelope
from services.kit.events import (
    ConsumerPolicy,
    MemoryBus,
    RedisBus,
    RetryLater,
    Undeliverable,
    verdict,
)
from services.kit.events.delivery import retry_after_s
from services.kit.registry import ServiceResponse
from tests.support import settle

STREAM = "events.delivery"
decoder = msgspec.json.Decoder(Envelope[StockAdjusted])
POLICY = ConsumerPolicy(
    max_attempts=3, backoff_s=0.01, max_backoff_s=0.02, claim_idle_s=0.2, block_s=0.05
)


def fact(n: int = 1) -> Envelope[StockAdjusted]:
    data = StockAdjusted(
        sku="SKU-000001", location_id="STORE-001", delta=n, on_hand=n, reason="count"
    )
    return envelope(data, source="test")


@pytest.fixture(params=["redis", "memory"])
async def bus(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryBus()
        return
    client = aioredis.Redis.from_url(redis_url)
    yield RedisBus(client, redis_prefix)
    await client.aclose()


async def publish(bus: Any, *events: Envelope[StockAdjusted]) -> None:
    for e in events:
        await bus.publish(STREAM, e.id, e.type, msgspec.json.encode(e))


async def consume(bus: Any, handle: Any, policy: ConsumerPolicy = POLICY) -> Any:
    consumer = bus.consumer(STREAM, "erp", handle, decoder, policy=policy)
    return consumer, asyncio.create_task(consumer.run())


async def stop(consumer: Any, task: asyncio.Task[None]) -> None:
    consumer.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_busy_side_is_retried_past_max_attempts_until_it_takes_the_event(bus: Any) -> None:
    calls: list[float] = []
    applied: list[int] = []

    async def handle(env: Envelope[StockAdjusted]) -> None:
        calls.append(time.monotonic())
        if len(calls) <= 12:  # four times max_attempts
            raise RetryLater("ERP answered 429")
        applied.append(env.data.delta)

    await publish(bus, fact(5))
    consumer, task = await consume(bus, handle)
    try:
        await settle(lambda: _v(applied), lambda a: a == [5])
    finally:
        await stop(consumer, task)
    assert len(calls) == 13
    assert await bus.dead_letters(STREAM) == []


async def test_an_event_the_other_side_calls_wrong_is_a_dead_letter_at_once(bus: Any) -> None:
    calls = 0

    async def handle(env: Envelope[StockAdjusted]) -> None:
        nonlocal calls
        calls += 1
        raise Undeliverable("ERP answered 404 unknown-sku")

    await publish(bus, fact(1))
    consumer, task = await consume(bus, handle)
    try:
        (letter,) = await settle(lambda: bus.dead_letters(STREAM), lambda d: len(d) == 1)
    finally:
        await stop(consumer, task)
    assert calls == 1 and letter.attempts == 1
    assert "unknown-sku" in letter.error


async def test_retrying_ends_after_retry_for_s(bus: Any) -> None:
    async def handle(env: Envelope[StockAdjusted]) -> None:
        raise RetryLater("ERP down")

    policy = msgspec.structs.replace(POLICY, retry_for_s=0.3)
    started = time.monotonic()
    await publish(bus, fact(1))
    consumer, task = await consume(bus, handle, policy)
    try:
        (letter,) = await settle(lambda: bus.dead_letters(STREAM), lambda d: len(d) == 1)
    finally:
        await stop(consumer, task)
    assert time.monotonic() - started >= 0.3
    assert letter.attempts > POLICY.max_attempts  # attempts did not end it: the age did


async def test_the_other_sides_retry_after_is_honoured(bus: Any) -> None:
    calls: list[float] = []

    async def handle(env: Envelope[StockAdjusted]) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RetryLater("ERP answered 429", retry_after_s=0.5)

    await publish(bus, fact(1))
    consumer, task = await consume(bus, handle)
    try:
        await settle(lambda: _v(len(calls)), lambda n: n == 2)
    finally:
        await stop(consumer, task)
    assert calls[1] - calls[0] >= 0.5


async def test_the_backlog_shows_what_is_waiting_and_how_old(bus: Any) -> None:
    gate = asyncio.Event()

    async def handle(env: Envelope[StockAdjusted]) -> None:
        await gate.wait()

    consumer, task = await consume(bus, handle)
    try:
        await asyncio.sleep(0.1)  # the group exists before the events
        await publish(bus, *(fact(n) for n in range(5)))
        await asyncio.sleep(0.2)
        (waiting,) = await bus.backlog(STREAM)
        assert waiting.group == "erp"
        assert waiting.pending + waiting.undelivered == 5
        assert waiting.oldest_s >= 0.2
        gate.set()
        await settle(lambda: bus.backlog(STREAM), lambda b: b[0].pending + b[0].undelivered == 0)
        assert (await bus.backlog(STREAM))[0].oldest_s == 0
    finally:
        await stop(consumer, task)


async def _v(value: Any) -> Any:
    return value


def answer(status: int, **headers: str) -> ServiceResponse:
    return ServiceResponse(status=status, headers=headers, body=b"{}")


def test_what_an_answer_means_for_delivery() -> None:
    verdict(answer(201), "posting", done=(201,))
    for status in (408, 425, 429, 500, 502, 503, 504):
        with pytest.raises(RetryLater):
            verdict(answer(status), "posting")
    for status in (400, 403, 404, 409, 422):
        with pytest.raises(Undeliverable):
            verdict(answer(status), "posting")
    with pytest.raises(RetryLater) as busy:
        verdict(answer(429, **{"Retry-After": "7"}), "posting")
    assert busy.value.retry_after_s == 7


def test_retry_after_reads_seconds_and_dates_and_ignores_junk() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_s({"Retry-After": later}) or 0) <= 30
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({"retry-after": "99999999"}) == 86400
    assert retry_after_s({}) is None
