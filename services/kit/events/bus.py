"""What producers and consumers see of the event transport, whatever carries it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from services.kit.supervisor import Liveness

__all__ = ["ConsumerPolicy", "DeadLetter", "EventBus", "Handler", "Runnable"]

#: A consumer's handler receives the decoded envelope; raising means "retry later".
Handler = Callable[[Any], Awaitable[None]]


class ConsumerPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How a consumer retries, reclaims and gives up."""

    #: attempts before a message goes to the dead-letter stream
    max_attempts: int = 5
    #: first retry delay; doubles per attempt up to `max_backoff_s`
    backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    #: a message pending this long with another consumer is taken over (XAUTOCLAIM)
    claim_idle_s: float = 5.0
    #: how long a read blocks waiting for new messages
    block_s: float = 1.0
    batch: int = 64
    #: messages of a batch handled at once. 1 keeps the stream's order; more suits handlers
    #: whose effects commute (idempotent calls keyed by the event, such as ERP postings)
    concurrency: int = 1
    #: how long "this event was applied" is remembered, for idempotency
    dedupe_ttl_s: int = 7 * 24 * 3600
    #: how long a round of reading and handling may take before the consumer counts as stuck
    round_s: float = 120.0


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message that failed `max_attempts` times, with the last error."""

    id: str
    stream: str
    group: str
    event_id: str
    type: str
    error: str
    attempts: int
    failed_at: str
    payload: str


class Runnable(Protocol):
    """A background worker (see `services.kit.supervisor`)."""

    name: str
    liveness: Liveness

    async def run(self) -> None: ...

    def stop(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, stream: str, event_id: str, type: str, payload: bytes) -> None: ...

    def consumer(
        self,
        stream: str,
        group: str,
        handler: Handler,
        decoder: msgspec.json.Decoder[Any],
        *,
        name: str | None = None,
        policy: ConsumerPolicy | None = None,
    ) -> Runnable: ...

    async def dead_letters(self, stream: str, limit: int = 100) -> list[DeadLetter]: ...

    async def replay(self, stream: str, dead_letter_id: str) -> bool: ...
