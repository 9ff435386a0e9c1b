"""Redis Streams: publishing, backlogs, dead letters and their replay; the consumers of a
group are in `stream_consumer`.

Delivery is at least once. A consumer applies an event at most once by its envelope id:
before handling it takes a short lease `done:<group>:<id>`; on success the lease becomes a
long-lived marker, on failure it is dropped. A message that keeps failing is retried with
exponential backoff and moved to `dlq.<stream>` after `max_attempts`, with its error. A
consumer that dies holding messages loses them to another after `claim_idle_s` (XAUTOCLAIM).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import ResponseError

from services.kit.events.bus import (
    Backlog,
    ConsumerPolicy,
    DeadLetter,
    Handler,
    Publication,
    dead_letter_view,
)
from services.kit.events.stream_consumer import StreamConsumer

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisBus"]

log = logging.getLogger("retailmesh.events")


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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dead_letter(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    def s(key: bytes) -> str:
        return fields.get(key, b"").decode("utf-8", "replace")

    return dead_letter_view(
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
