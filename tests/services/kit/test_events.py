"""Outbox, relay and consumers on a real Redis: nothing lost, nothing applied twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis
from sqlalchemy import MetaData

from contracts.events import Envelope, StockAdjusted, envelope
from services.kit.events import ConsumerPolicy, Outbox, RedisBus, Relay
from services.kit.storage import Database
from tests.support import RedisServer

STREAM = "events.test"
decoder = msgspec.json.Decoder(Envelope[StockAdjusted])
FAST = ConsumerPolicy(
    max_attempts=3, backoff_s=0.05, max_backoff_s=0.05, claim_idle_s=0.2, block_s=0.05
)


def fact(n: int = 1) -> Envelope[StockAdjusted]:
    return envelope(
        StockAdjusted(
            sku="SKU-000001", location_id="STORE-001", delta=n, on_hand=n, reason="count"
        ),
        source="test",
    )


@pytest.fixture
async def outbox_db(database_url: str) -> AsyncIterator[tuple[Database, Outbox]]:
    metadata = MetaData()
    outbox = Outbox(metadata, "test")
    db = Database(database_url)
    await db.create_all(metadata)
    yield db, outbox
    await db.dispose()


async def drain(consumer, rounds: int = 40, pause: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(rounds):
        await consumer.step()
        if pause:
            await asyncio.sleep(pause)


async def test_event_written_while_redis_is_down_is_published_when_it_is_back(
    outbox_db: tuple[Database, Outbox], redis_prefix: str
) -> None:
    db, outbox = outbox_db
    server = RedisServer()
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.2)
    bus = RedisBus(client, redis_prefix)
    relay = Relay(db, outbox, bus)
    event = fact()
    async with db.write() as conn:
        await outbox.add(conn, STREAM, event)
    try:
        # Redis is down: the relay fails, the event waits in the outbox.
        with pytest.raises((OSError, aioredis.ConnectionError)):
            await relay.run_once()
        async with db.read() as conn:
            assert await outbox.unpublished_count(conn) == 1
        server.start()
        assert await relay.run_once() == 1
        assert await relay.run_once() == 0
        entries = await client.xrange(bus.key(STREAM))
        assert len(entries) == 1
        assert entries[0][1][b"id"] == event.id.encode()
        assert decoder.decode(entries[0][1][b"event"]) == event
        async with db.read() as conn:
            assert await outbox.unpublished_count(conn) == 0
    finally:
        await client.aclose()
        server.stop()


async def test_relay_loop_keeps_going_through_an_outage(
    outbox_db: tuple[Database, Outbox], redis_prefix: str
) -> None:
    db, outbox = outbox_db
    server = RedisServer()
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.2)
    bus = RedisBus(client, redis_prefix)
    relay = Relay(db, outbox, bus, interval_s=0.05)
    task = asyncio.create_task(relay.run())
    try:
        async with db.write() as conn:
            for n in range(3):
                await outbox.add(conn, STREAM, fact(n))
        outbox.notify()
        await asyncio.sleep(0.3)
        assert not relay.healthy
        server.start()
        for _ in range(100):
            if await client.exists(bus.key(STREAM)) and await client.xlen(bus.key(STREAM)) == 3:
                break
            await asyncio.sleep(0.05)
        assert await client.xlen(bus.key(STREAM)) == 3
        assert relay.healthy
    finally:
        relay.stop()
        await task
        await client.aclose()
        server.stop()


async def test_consumer_applies_an_event_seen_twice_once(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    bus = RedisBus(redis_client, redis_prefix)
    applied: list[str] = []

    async def handle(env: Envelope[StockAdjusted]) -> None:
        applied.append(env.id)

    consumer = bus.consumer(STREAM, "ats", handle, decoder, name="c1", policy=FAST)
    await consumer.ensure_group()
    event, other = fact(1), fact(2)
    payload = msgspec.json.encode(event)
    await bus.publish(STREAM, event.id, event.type, payload)
    await bus.publish(STREAM, event.id, event.type, payload)  # a relay's re-send
    await bus.publish(STREAM, other.id, other.type, msgspec.json.encode(other))
    await drain(consumer, 3)
    assert applied == [event.id, other.id]
    pending = await redis_client.xpending(bus.key(STREAM), "ats")
    assert pending["pending"] == 0


async def test_poison_message_lands_in_dlq_after_max_attempts_and_replays(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    bus = RedisBus(redis_client, redis_prefix)
    calls: list[int] = []
    healthy = False

    async def handle(env: Envelope[StockAdjusted]) -> None:
        calls.append(env.data.delta)
        if not healthy:
            raise RuntimeError("warehouse system said no")

    consumer = bus.consumer(STREAM, "ats", handle, decoder, name="c1", policy=FAST)
    await consumer.ensure_group()
    event = fact(7)
    await bus.publish(STREAM, event.id, event.type, msgspec.json.encode(event))
    for _ in range(60):
        await consumer.step()
        if await bus.dead_letters(STREAM):
            break
        await asyncio.sleep(0.03)
    letters = await bus.dead_letters(STREAM)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.event_id == event.id
    assert letter.attempts == FAST.max_attempts
    assert "RuntimeError: warehouse system said no" in letter.error
    assert len(calls) == FAST.max_attempts
    assert (await redis_client.xpending(bus.key(STREAM), "ats"))["pending"] == 0

    healthy = True
    assert await bus.replay(STREAM, letter.id)
    await drain(consumer, 3)
    assert len(calls) == FAST.max_attempts + 1
    assert await bus.dead_letters(STREAM) == []
    assert not await bus.replay(STREAM, letter.id)


async def test_undecodable_message_goes_straight_to_dlq(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    bus = RedisBus(redis_client, redis_prefix)

    async def handle(env: Envelope[StockAdjusted]) -> None:
        raise AssertionError("never called")

    consumer = bus.consumer(STREAM, "ats", handle, decoder, name="c1", policy=FAST)
    await consumer.ensure_group()
    await bus.publish(STREAM, "bad-1", "StockAdjusted", b"{not json")
    await drain(consumer, 2)
    (letter,) = await bus.dead_letters(STREAM)
    assert letter.error.startswith("undecodable")
    assert letter.attempts == 1


async def test_messages_of_a_dead_consumer_are_reclaimed_by_another(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    bus = RedisBus(redis_client, redis_prefix)
    applied: list[int] = []

    async def handle(env: Envelope[StockAdjusted]) -> None:
        applied.append(env.data.delta)

    dead = bus.consumer(STREAM, "ats", handle, decoder, name="dead", policy=FAST)
    alive = bus.consumer(STREAM, "ats", handle, decoder, name="alive", policy=FAST)
    await dead.ensure_group()
    for n in range(5):
        event = fact(n)
        await bus.publish(STREAM, event.id, event.type, msgspec.json.encode(event))
    # "dead" takes the messages and dies before handling them.
    taken = await redis_client.xreadgroup("ats", "dead", {bus.key(STREAM): ">"}, count=10)
    assert len(taken[0][1]) == 5
    await alive.step()
    assert applied == []  # not idle long enough yet: they still belong to "dead"
    await asyncio.sleep(FAST.claim_idle_s + 0.05)
    await drain(alive, 2)
    assert sorted(applied) == [0, 1, 2, 3, 4]
    assert (await redis_client.xpending(bus.key(STREAM), "ats"))["pending"] == 0


async def test_two_groups_each_get_every_event(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    bus = RedisBus(redis_client, redis_prefix)
    seen: dict[str, list[str]] = {"ats": [], "loyalty": []}

    def handler(group: str):  # type: ignore[no-untyped-def]
        async def handle(env: Envelope[StockAdjusted]) -> None:
            seen[group].append(env.id)

        return handle

    consumers = [bus.consumer(STREAM, g, handler(g), decoder, name="c", policy=FAST) for g in seen]
    for c in consumers:
        await c.ensure_group()
    events = [fact(n) for n in range(3)]
    for e in events:
        await bus.publish(STREAM, e.id, e.type, msgspec.json.encode(e))
    for c in consumers:
        await drain(c, 2)
    assert seen["ats"] == seen["loyalty"] == [e.id for e in events]


async def test_memory_bus_retries_dead_letters_and_replays() -> None:
    from services.kit.events import MemoryBus

    bus = MemoryBus()
    calls: list[str] = []
    fail = True

    async def handle(env: Envelope[StockAdjusted]) -> None:
        calls.append(env.id)
        if fail:
            raise RuntimeError("nope")

    consumer = bus.consumer(STREAM, "ats", handle, decoder, policy=FAST)
    task = asyncio.create_task(consumer.run())
    event = fact()
    await bus.publish(STREAM, event.id, event.type, msgspec.json.encode(event))
    await bus.publish(STREAM, event.id, event.type, msgspec.json.encode(event))
    for _ in range(100):
        if len(await bus.dead_letters(STREAM)) == 2:
            break
        await asyncio.sleep(0.02)
    letters = await bus.dead_letters(STREAM)
    assert len(letters) == 2
    assert len(calls) == 2 * FAST.max_attempts
    fail = False
    assert await bus.replay(STREAM, letters[0].id)
    assert await bus.replay(STREAM, letters[1].id)
    await asyncio.sleep(0.2)
    assert len(calls) == 2 * FAST.max_attempts + 1  # the second replay is a duplicate
    consumer.stop()
    await task


async def test_a_concurrent_consumer_handles_a_batch_at_once_and_still_once_each(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    bus = RedisBus(redis_client, redis_prefix)
    applied: list[int] = []
    in_flight = 0
    peak = 0

    async def handle(env: Envelope[StockAdjusted]) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        applied.append(env.data.delta)
        in_flight -= 1

    policy = ConsumerPolicy(concurrency=8, batch=64, block_s=0.05, claim_idle_s=0.1)
    consumer = bus.consumer(STREAM, "erp-poster", handle, decoder, name="c1", policy=policy)
    await consumer.ensure_group()
    events = [fact(n) for n in range(40)]
    for e in [*events, *events[:10]]:  # ten of them twice, in the same read
        await bus.publish(STREAM, e.id, e.type, msgspec.json.encode(e))
    await drain(consumer, 3)
    assert sorted(applied) == list(range(40))
    assert peak == 8
    # the copies waited while their originals were applied; taken up again, they are seen
    # as applied and acknowledged: nothing stays pending, nothing is applied twice
    for _ in range(200):
        if (await bus.group_backlog(STREAM, "erp-poster")).pending == 0:
            break
        await drain(consumer, 1, pause=0.02)
    backlog = await bus.group_backlog(STREAM, "erp-poster")
    assert (backlog.pending, backlog.undelivered) == (0, 0)
    assert sorted(applied) == list(range(40))
