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


#: KEYS: the events' markers; ARGV[1]: the lease in ms. Per key: 1 when leased now, else
#: the marker found ("done", "processing"; 0 if it expired meanwhile)
_LEASE = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, 'processing', 'NX', 'PX', ARGV[1]) then
    out[i] = 1
  else
    out[i] = redis.call('GET', key) or 0
  end
end
return out
"""

#: KEYS[1]: the stream, KEYS[2]: its attempts hash, KEYS[3..]: the applied events' markers;
#: ARGV[1]: the group, ARGV[2]: the markers' time to live (s), ARGV[3..]: the message ids
_FINISH = """
for i = 3, #KEYS do redis.call('SET', KEYS[i], 'done', 'EX', ARGV[2]) end
local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 500 or i == #ARGV then
    redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
    redis.call('HDEL', KEYS[2], unpack(ids))
    ids = {}
  end
end
return #ARGV - 2
"""


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
        self._lease_all = self.redis.register_script(_LEASE)
        self._finish_all = self.redis.register_script(_FINISH)
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
        if messages:
            await self._process_together(messages)
        return len(messages)

    async def _process_together(self, messages: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Take each message's lease, apply it and mark it done, with the Redis work of the
        whole read in two scripts (the leases, and after the handlers the marks and the
        acknowledgements) instead of three commands per message. The handlers run in the
        stream's order, one at a time, unless the policy lets `concurrency` run at once.
        An event read twice in one go (a relay's re-send) is applied once, and both of its
        messages are acknowledged with it."""
        keys = [self._done_prefix + _event_id(fields) for _, fields in messages]
        first: dict[str, int] = {}
        twins: dict[int, list[bytes]] = {}  # the first message of an event → its re-sends
        for i, key in enumerate(keys):
            if key in first:
                twins.setdefault(first[key], []).append(messages[i][0])
            else:
                first[key] = i
        unique = list(first.values())
        leases = await self._lease_all(keys=[keys[i] for i in unique], args=[self._lease_ms()])
        leased = [i for i, got in zip(unique, leases, strict=True) if got == 1]
        # a marker left by an earlier success means "already applied"; a lease means
        # another consumer is applying it right now (it stays pending here)
        applied = [i for i, got in zip(unique, leases, strict=True) if got == b"done"]
        if applied:
            await self._ack(*(m for i in applied for m in [messages[i][0], *twins.get(i, ())]))
        limit = asyncio.Semaphore(self.policy.concurrency)

        async def one(i: int) -> int | None:
            async with limit:
                msg_id, fields = messages[i]
                return i if await self._apply(msg_id, fields, keys[i]) else None

        if self.policy.concurrency <= 1:
            handled = [await one(i) for i in leased]
        else:
            handled = await asyncio.gather(*(one(i) for i in leased))
        done = [i for i in handled if i is not None]
        if done:
            ids = [m for i in done for m in [messages[i][0], *twins.get(i, ())]]
            await self._finish_all(
                keys=[self.key, self._attempts_key, *(keys[i] for i in done)],
                args=[self.group, self.policy.dedupe_ttl_s, *ids],
            )

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
