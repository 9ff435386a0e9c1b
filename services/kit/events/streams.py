"""Redis Streams: publishing, consumer groups with retries, reclaim and dead letters.

Delivery is at least once. A consumer applies an event at most once by its envelope id:
before handling it takes a short lease `done:<group>:<id>`; on success the lease becomes a
long-lived marker, on failure it is dropped. A message that keeps failing is retried with
exponential backoff and moved to `dlq.<stream>` after `max_attempts`, with its error. A
consumer that dies holding messages loses them to another after `claim_idle_s` (XAUTOCLAIM).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import RedisError, ResponseError

from services.kit.events.bus import (
    Backlog,
    ConsumerPolicy,
    DeadLetter,
    Handler,
    Publication,
    RetryLater,
    Undeliverable,
    retry_delay,
)
from services.kit.supervisor import Liveness

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisBus", "StreamConsumer"]

log = logging.getLogger("retailmesh.events")


class _Idle(msgspec.Struct):
    id: str


_id_only = msgspec.json.Decoder(_Idle)


class RedisBus:
    """Streams under a key prefix: `<prefix>events.erp`, `<prefix>dlq.events.erp`."""

    def __init__(self, redis: Redis, prefix: str = "", *, maxlen: int = 1_000_000) -> None:
        # redis-py's annotations do not fit its asyncio client: replies are typed as Any here.
        self.redis: Any = redis
        self.prefix = prefix
        self.maxlen = maxlen

    def key(self, stream: str) -> str:
        return self.prefix + stream

    def dlq_key(self, stream: str) -> str:
        return self.prefix + "dlq." + stream

    async def publish(self, stream: str, event_id: str, type: str, payload: bytes) -> None:
        await self.redis.xadd(
            self.key(stream),
            {"id": event_id, "type": type, "event": payload},
            maxlen=self.maxlen,
            approximate=True,
        )

    async def publish_all(self, events: Sequence[Publication]) -> None:
        """One pipelined round trip for all (not a transaction: a failure part-way leaves
        the rest unpublished, and the relay publishes them all again, which consumers
        take once by event id)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, event_id, type, payload in events:
                pipe.xadd(
                    self.key(stream),
                    {"id": event_id, "type": type, "event": payload},
                    maxlen=self.maxlen,
                    approximate=True,
                )
            await pipe.execute()

    def consumer(
        self,
        stream: str,
        group: str,
        handler: Handler,
        decoder: msgspec.json.Decoder[Any],
        *,
        name: str | None = None,
        policy: ConsumerPolicy | None = None,
    ) -> StreamConsumer:
        return StreamConsumer(
            self, stream, group, handler, decoder, name=name, policy=policy or ConsumerPolicy()
        )

    async def dead_letters(self, stream: str, limit: int = 100) -> list[DeadLetter]:
        entries: Any = await self.redis.xrange(self.dlq_key(stream), count=limit)
        return [_dead_letter(entry_id, fields) for entry_id, fields in entries]

    async def backlog(self, stream: str) -> list[Backlog]:
        """Every consumer group's backlog on a stream (none before a group exists)."""
        try:
            groups: Any = await self.redis.xinfo_groups(self.key(stream))
        except ResponseError:
            return []  # no such stream yet
        return [await self.group_backlog(stream, _text(g["name"])) for g in groups]

    async def group_backlog(self, stream: str, group: str) -> Backlog:
        key = self.key(stream)
        # one MULTI/EXEC: read apart, a consumer taking events between the two reads would
        # move them from "undelivered" to "pending" unseen, and the backlog would look empty
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xpending(key, group)
            pipe.xinfo_groups(key)
            summary, groups = await pipe.execute()
        info: Any = {_text(g["name"]): g for g in groups}
        undelivered = int(info.get(group, {}).get("lag") or 0)
        oldest: str | None = _text(summary["min"]) if summary["pending"] else None
        if oldest is None and undelivered:
            after = "(" + _text(info[group]["last-delivered-id"])
            first: Any = await self.redis.xrange(key, min=after, count=1)
            oldest = _text(first[0][0]) if first else None
        age = max(0.0, time.time() - int(oldest.split("-")[0]) / 1000) if oldest else 0.0
        return Backlog(
            stream=stream,
            group=group,
            pending=int(summary["pending"]),
            undelivered=undelivered,
            oldest_s=round(age, 3),
        )

    async def replay(self, stream: str, dead_letter_id: str) -> bool:
        """Put a dead letter back on its stream (same event id) and drop it from the DLQ."""
        entries: Any = await self.redis.xrange(
            self.dlq_key(stream), min=dead_letter_id, max=dead_letter_id
        )
        if not entries:
            return False
        _, fields = entries[0]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.key(stream),
                {
                    "id": fields[b"event_id"],
                    "type": fields[b"type"],
                    "event": fields[b"event"],
                    "replayed_from": dead_letter_id,
                },
                maxlen=self.maxlen,
                approximate=True,
            )
            pipe.xdel(self.dlq_key(stream), dead_letter_id)
            await pipe.execute()
        return True


def _event_id(fields: dict[bytes, bytes]) -> str:
    return fields.get(b"id", b"").decode("utf-8", "replace")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dead_letter(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    def s(key: bytes) -> str:
        return fields.get(key, b"").decode("utf-8", "replace")

    return DeadLetter(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        stream=s(b"stream"),
        group=s(b"group"),
        event_id=s(b"event_id"),
        type=s(b"type"),
        error=s(b"error"),
        attempts=int(s(b"attempts") or 0),
        failed_at=s(b"failed_at"),
        payload=s(b"event"),
    )


class StreamConsumer:
    """One member of a consumer group; run several (across processes) to share the load."""

    def __init__(
        self,
        bus: RedisBus,
        stream: str,
        group: str,
        handler: Handler,
        decoder: msgspec.json.Decoder[Any],
        *,
        name: str | None,
        policy: ConsumerPolicy,
    ) -> None:
        self.bus = bus
        self.redis: Any = bus.redis
        self.stream = stream
        self.key = bus.key(stream)
        self.group = group
        self.handler = handler
        self.decoder = decoder
        #: this member's name in the group (Redis's); `name` is the worker's, for operators
        self.consumer_name = name or f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self.name = f"consumer {stream}/{group}"
        self.policy = policy
        self._attempts_key = f"{bus.prefix}attempts:{stream}:{group}"
        self._done_prefix = f"{bus.prefix}done:{stream}:{group}:"
        self._stopping = False
        self._claim_cursor = "-"
        self.liveness = Liveness(expected_s=policy.block_s + policy.round_s)

    def stop(self) -> None:
        self._stopping = True

    async def ensure_group(self) -> None:
        try:
            # From the stream's start: a group created after events were written still gets them.
            await self.redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Consume until stopped; Redis outages are waited out, anything else ends the run
        and the supervisor starts it again."""
        while not self._stopping:
            try:
                await self.ensure_group()
                while not self._stopping:
                    await self.step()
                    self.liveness.ok()
            except (RedisError, OSError) as exc:
                self.liveness.failed(exc)
                log.warning(
                    "consumer %s/%s: redis error %s; retrying", self.stream, self.group, exc
                )
                await asyncio.sleep(1.0)

    async def step(self) -> int:
        """Reclaim idle messages, then read new ones; returns how many were handled."""
        handled = await self._process_all(await self._reclaim())
        reply: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer_name,
            {self.key: ">"},
            count=self.policy.batch,
            block=int(self.policy.block_s * 1000),
        )
        for _stream, messages in reply or ():
            handled += await self._process_all(messages)
        return handled

    async def _process_all(self, messages: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        if not messages:
            return 0
        if self.policy.concurrency <= 1:
            for msg_id, fields in messages:
                await self._process(msg_id, fields)
            return len(messages)
        await self._process_together(messages)
        return len(messages)

    async def _process_together(self, messages: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """What `_process` does for each message, with the Redis work of the whole read in
        three pipelined round trips (leases, then the handlers at once, then the marks and
        acknowledgements) instead of two or three per message."""
        keys = [self._done_prefix + _event_id(fields) for _, fields in messages]
        lease_ms = self._lease_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, "processing", nx=True, px=lease_ms)
            leases = await pipe.execute()
        others = [i for i, got in enumerate(leases) if not got]
        if others:
            # a marker left by an earlier success means "already applied"; a lease means
            # another consumer is applying it right now (it stays pending here)
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in others:
                    pipe.get(keys[i])
                states = await pipe.execute()
            applied = [
                messages[i][0] for i, state in zip(others, states, strict=True) if state == b"done"
            ]
            if applied:
                await self._ack(*applied)
        limit = asyncio.Semaphore(self.policy.concurrency)

        async def one(i: int) -> bytes | None:
            async with limit:
                msg_id, fields = messages[i]
                return msg_id if await self._apply(msg_id, fields, keys[i]) else None

        handled = await asyncio.gather(*(one(i) for i, got in enumerate(leases) if got))
        done = {m for m in handled if m is not None}
        if done:
            async with self.redis.pipeline(transaction=True) as pipe:
                for i, (msg_id, _) in enumerate(messages):
                    if msg_id in done:
                        pipe.set(keys[i], "done", ex=self.policy.dedupe_ttl_s)
                pipe.xack(self.key, self.group, *done)
                pipe.hdel(self._attempts_key, *done)
                await pipe.execute()

    async def _reclaim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Take over pending messages that are due: a failed one whose backoff has elapsed,
        or one whose consumer has held it for `claim_idle_s` without acknowledging."""
        floor_ms = int(min(self.policy.claim_idle_s, self.policy.backoff_s) * 1000)
        pending: Any = await self.redis.xpending_range(
            self.key,
            self.group,
            min=self._claim_cursor,
            max="+",
            count=self.policy.batch,
            idle=max(floor_ms, 1),
        )
        if len(pending) < self.policy.batch:
            self._claim_cursor = "-"  # reached the end: next scan starts over
        else:
            last = pending[-1]["message_id"]
            self._claim_cursor = "(" + (last.decode() if isinstance(last, bytes) else last)
        if not pending:
            return []
        ids = [entry["message_id"] for entry in pending]
        infos: Any = await self.redis.hmget(self._attempts_key, ids)
        now = time.time()
        claim_idle_ms = self.policy.claim_idle_s * 1000
        due = []
        for entry, info in zip(pending, infos, strict=True):
            if info is not None:
                ready = float(info.decode().split("|", 2)[1]) <= now
            else:
                ready = entry["time_since_delivered"] >= claim_idle_ms
            if ready:
                due.append(entry["message_id"])
        if not due:
            return []
        # XCLAIM re-checks the idle time, so two consumers racing for a message: one wins.
        claimed: Any = await self.redis.xclaim(
            self.key,
            self.group,
            self.consumer_name,
            min_idle_time=max(floor_ms, 1),
            message_ids=due,
        )
        return [(msg_id, fields) for msg_id, fields in claimed if fields]

    def _lease_ms(self) -> int:
        return int(max(self.policy.claim_idle_s, 1.0) * 1000)

    async def _process(self, msg_id: bytes, fields: dict[bytes, bytes]) -> None:
        done_key = self._done_prefix + _event_id(fields)
        # Take the lease; a marker left by an earlier success means "already applied".
        got = await self.redis.set(done_key, "processing", nx=True, px=self._lease_ms())
        if not got:
            state = await self.redis.get(done_key)
            if state == b"done":
                await self._ack(msg_id)
            return  # or another consumer is applying it right now; it stays pending here
        if not await self._apply(msg_id, fields, done_key):
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(done_key, "done", ex=self.policy.dedupe_ttl_s)
            pipe.xack(self.key, self.group, msg_id)
            pipe.hdel(self._attempts_key, msg_id)
            await pipe.execute()

    async def _apply(self, msg_id: bytes, fields: dict[bytes, bytes], done_key: str) -> bool:
        """Decode and handle a message whose lease is held; True when the handler is done
        with it. On failure the lease is dropped and the next attempt scheduled (or the
        message dead-lettered)."""
        try:
            envelope = self.decoder.decode(fields[b"event"])
        except (msgspec.DecodeError, KeyError) as exc:
            await self.redis.delete(done_key)
            await self._dead_letter(msg_id, fields, f"undecodable: {exc}", attempts=1)
            return False
        try:
            await self.handler(envelope)
        except Exception as exc:
            await self.redis.delete(done_key)
            await self._failed(msg_id, fields, exc)
            return False
        return True

    async def _ack(self, *msg_ids: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, self.group, *msg_ids)
            pipe.hdel(self._attempts_key, *msg_ids)
            await pipe.execute()

    async def _failed(self, msg_id: bytes, fields: dict[bytes, bytes], exc: Exception) -> None:
        """Schedule the next attempt, or give up: at once for `Undeliverable`, after
        `retry_for_s` for `RetryLater`, after `max_attempts` for anything else."""
        info: Any = await self.redis.hget(self._attempts_key, msg_id)
        now = time.time()
        attempts, first = 1, now
        if info:
            parts = info.decode().split("|", 3)
            attempts = int(parts[0]) + 1
            first = float(parts[2]) if len(parts) == 4 else now
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if isinstance(exc, Undeliverable):
            give_up = True
        elif isinstance(exc, RetryLater):
            give_up = now - first >= self.policy.retry_for_s
        else:
            give_up = attempts >= self.policy.max_attempts
        if give_up:
            await self._dead_letter(msg_id, fields, error, attempts=attempts)
            return
        due = now + retry_delay(self.policy, attempts, exc)
        await self.redis.hset(self._attempts_key, msg_id, f"{attempts}|{due}|{first}|{error}")
        log.log(
            logging.INFO if isinstance(exc, RetryLater) else logging.WARNING,
            "event handling failed; will retry",
            extra={
                "stream": self.stream,
                "group": self.group,
                "event_id": fields.get(b"id", b"").decode("utf-8", "replace"),
                "attempts": attempts,
                "error": error,
            },
        )

    async def _dead_letter(
        self, msg_id: bytes, fields: dict[bytes, bytes], error: str, *, attempts: int
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.bus.dlq_key(self.stream),
                {
                    "stream": self.stream,
                    "group": self.group,
                    "msg_id": msg_id,
                    "event_id": fields.get(b"id", b""),
                    "type": fields.get(b"type", b""),
                    "event": fields.get(b"event", b""),
                    "error": error,
                    "attempts": attempts,
                    "failed_at": datetime.now(UTC).isoformat(),
                },
            )
            pipe.xack(self.key, self.group, msg_id)
            pipe.hdel(self._attempts_key, msg_id)
            await pipe.execute()
        log.error(
            "event moved to dead letters",
            extra={"stream": self.stream, "group": self.group, "error": error},
        )
