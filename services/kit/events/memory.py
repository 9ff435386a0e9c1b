"""An in-process stand-in for Redis Streams, for the embedded mode without Redis.

Same contract as `RedisBus` within one process (groups, retries with backoff, dead letters,
replay, dedupe by event id); nothing survives the process, which the outbox makes up for:
unpublished events stay in the database until a relay hands them over.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.kit.events.bus import (
    Backlog,
    ConsumerPolicy,
    DeadLetter,
    Handler,
    Publication,
    RetryLater,
    Undeliverable,
    dead_letter_view,
    retry_delay,
)
from services.kit.supervisor import Liveness

__all__ = ["MemoryBus"]

log = logging.getLogger("retailmesh.events")


class _Entry(msgspec.Struct):
    id: str
    event_id: str
    type: str
    payload: bytes
    at: float = 0.0


class MemoryBus:
    def __init__(self) -> None:
        self._streams: dict[str, list[_Entry]] = defaultdict(list)
        self._dead: dict[str, list[DeadLetter]] = defaultdict(list)
        self._done: set[tuple[str, str, str]] = set()
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._consumers: list[_MemoryConsumer] = []

    async def publish(self, stream: str, event_id: str, type: str, payload: bytes) -> None:
        entry = _Entry(f"{next(self._ids)}-0", event_id, type, payload, time.time())
        self._streams[stream].append(entry)
        async with self._changed:
            self._changed.notify_all()

    async def publish_all(self, events: Sequence[Publication]) -> None:
        for stream, event_id, type, payload in events:
            await self.publish(stream, event_id, type, payload)

    def consumer(
        self,
        stream: str,
        group: str,
        handler: Handler,
        decoder: msgspec.json.Decoder[Any],
        *,
        name: str | None = None,
        policy: ConsumerPolicy | None = None,
    ) -> _MemoryConsumer:
        policy = policy or ConsumerPolicy()
        consumer = _MemoryConsumer(self, stream, group, handler, decoder, policy)
        self._consumers.append(consumer)
        return consumer

    async def backlog(self, stream: str) -> list[Backlog]:
        entries = self._streams[stream]
        out = []
        for c in self._consumers:
            if c.stream != stream:
                continue
            left = entries[c._position - (1 if c.delivering else 0) :]
            out.append(
                Backlog(
                    stream=stream,
                    group=c.group,
                    pending=1 if c.delivering else 0,
                    undelivered=len(entries) - c._position,
                    oldest_s=round(time.time() - left[0].at, 3) if left else 0.0,
                )
            )
        return out

    async def dead_letters(self, stream: str, limit: int = 100) -> list[DeadLetter]:
        # the listing is cut to its bounds; the letter kept (and replayed) stays whole
        return [
            dead_letter_view(**msgspec.structs.asdict(letter))
            for letter in self._dead[stream][:limit]
        ]

    async def replay(self, stream: str, dead_letter_id: str) -> bool:
        for letter in self._dead[stream]:
            if letter.id == dead_letter_id:
                self._dead[stream].remove(letter)
                await self.publish(stream, letter.event_id, letter.type, letter.payload.encode())
                return True
        return False


class _MemoryConsumer:
    def __init__(
        self,
        bus: MemoryBus,
        stream: str,
        group: str,
        handler: Handler,
        decoder: msgspec.json.Decoder[Any],
        policy: ConsumerPolicy,
    ) -> None:
        self.bus, self.stream, self.group = bus, stream, group
        self.handler, self.decoder, self.policy = handler, decoder, policy
        self._position = 0
        self._stopping = False
        self.delivering = False
        self.name = f"consumer {stream}/{group}"
        self.liveness = Liveness(expected_s=policy.block_s + policy.round_s)

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        entries = self.bus._streams[self.stream]
        while not self._stopping:
            self.liveness.ok()
            if self._position >= len(entries):
                async with self.bus._changed:
                    try:
                        async with asyncio.timeout(self.policy.block_s):
                            await self.bus._changed.wait()
                    except TimeoutError:
                        pass
                continue
            entry = entries[self._position]
            self._position += 1
            await self._deliver(entry)

    async def _deliver(self, entry: _Entry) -> None:
        key = (self.stream, self.group, entry.event_id)
        if key in self.bus._done:
            return
        self.delivering = True
        try:
            error, attempts = await self._attempt_until_done(entry)
        finally:
            self.delivering = False
        if error is None:
            self.bus._done.add(key)
            return
        self.bus._dead[self.stream].append(
            DeadLetter(
                id=f"{time.time_ns()}-0",
                stream=self.stream,
                group=self.group,
                event_id=entry.event_id,
                type=entry.type,
                error=error,
                attempts=attempts,
                failed_at=datetime.now(UTC).isoformat(),
                payload=entry.payload.decode("utf-8", "replace"),
            )
        )
        log.error("event moved to dead letters", extra={"stream": self.stream, "error": error})

    async def _attempt_until_done(self, entry: _Entry) -> tuple[str | None, int]:
        """(None, attempts) once handled; (the last error, attempts) when given up, by the
        same rule as the Redis consumer's."""
        first = time.time()
        attempts = 0
        while True:
            attempts += 1
            try:
                await self.handler(self.decoder.decode(entry.payload))
                return None, attempts
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                if isinstance(exc, (msgspec.DecodeError, Undeliverable)):
                    return error, attempts
                if isinstance(exc, RetryLater):
                    if time.time() - first >= self.policy.retry_for_s:
                        return error, attempts
                elif attempts >= self.policy.max_attempts:
                    return error, attempts
                if self._stopping:
                    raise asyncio.CancelledError from None  # shutting down: no dead letter
                self.liveness.ok()  # waiting on the other side is not being stuck
                await asyncio.sleep(retry_delay(self.policy, attempts, exc))
