"""One member of a Redis Streams consumer group: reads, reclaims, retries, dead letters.

Delivery is at least once. A consumer applies an event at most once by its envelope id:
before handling it takes a short lease `done:<group>:<id>`; on success the lease becomes a
long-lived marker, on failure it is dropped. A message that keeps failing is retried with
exponential backoff and moved to `dlq.<stream>` after `max_attempts`, with its error. A
consumer that dies holding messages loses them to another after `claim_idle_s`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import RedisError, ResponseError

from services.kit.events.bus import (
    ConsumerPolicy,
    Handler,
    RetryLater,
    Undeliverable,
    retry_delay,
)
from services.kit.supervisor import Liveness

if TYPE_CHECKING:
    from services.kit.events.streams import RedisBus

__all__ = ["StreamConsumer"]

log = logging.getLogger("retailmesh.events")


def _event_id(fields: dict[bytes, bytes]) -> str:
    return fields.get(b"id", b"").decode("utf-8", "replace")


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
