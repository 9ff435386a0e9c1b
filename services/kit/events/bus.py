"""What producers and consumers see of the event transport, whatever carries it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Protocol, cast

import msgspec
import msgspec.inspect

from contracts.bounds import Count
from contracts.problems import MAX_DETAIL, clipped
from services.kit.rng import rng
from services.kit.supervisor import Liveness

__all__ = [
    "MAX_PAYLOAD",
    "Backlog",
    "ConsumerPolicy",
    "DeadLetter",
    "EventBus",
    "Handler",
    "LetterId",
    "Publication",
    "RetryLater",
    "Runnable",
    "Undeliverable",
    "dead_letter_view",
    "retry_delay",
]

#: A consumer's handler receives the decoded envelope. Raising `RetryLater` means "the other
#: side is busy or away", `Undeliverable` "this will never succeed"; any other exception is
#: a failure of unknown kind, retried `max_attempts` times.
Handler = Callable[[Any], Awaitable[None]]


class RetryLater(Exception):
    """The other side cannot take it now (429, 503, a timeout, unreachable): nothing is
    wrong with the event. Retried with backoff for `retry_for_s`, however many attempts that
    takes, and never sooner than `retry_after_s` (the other side's `Retry-After`)."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Undeliverable(Exception):
    """The other side said the event is wrong (a 4xx about its content): trying again
    cannot help, so it goes to the dead letters at once, for an operator."""


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
    #: how long an event whose handler says `RetryLater` keeps being retried
    retry_for_s: float = 3 * 86400.0


def retry_delay(policy: ConsumerPolicy, attempts: int, exc: BaseException) -> float:
    """When to try again after the `attempts`-th failure: exponential backoff with jitter
    (so a crowd of failed events does not come back at once), capped, and never sooner
    than the other side asked."""
    backoff = min(policy.backoff_s * 2.0 ** min(attempts - 1, 32), policy.max_backoff_s)
    delay = backoff * rng.uniform(0.5, 1.0)
    asked = exc.retry_after_s if isinstance(exc, RetryLater) else None
    return max(delay, asked) if asked else delay


#: a stream's or a consumer group's name
StreamText = Annotated[str, msgspec.Meta(max_length=64)]
#: a dead letter's id on its stream (two 64-bit numbers: `<ms>-<seq>`)
LetterId = Annotated[str, msgspec.Meta(max_length=41)]
#: the most of a dead letter's event an operator's listing shows (events are a few KB)
MAX_PAYLOAD = 65_536


def dead_letter_view(**fields: Any) -> DeadLetter:
    """A dead letter within its published bounds: a listing cuts what is longer (the stored
    entry, which a replay sends again, stays whole)."""
    for name, limit in _LIMITS.items():
        if isinstance(fields.get(name), str):
            fields[name] = clipped(fields[name], limit)
    return DeadLetter(**fields)


class Backlog(msgspec.Struct, frozen=True, kw_only=True):
    """What a consumer group has still to do on a stream."""

    stream: StreamText
    group: StreamText
    #: delivered and not yet done (being handled or waiting for a retry)
    pending: Count
    #: on the stream and not yet delivered to the group
    undelivered: Count
    #: age of the oldest event not yet done, in seconds (0 when there is none)
    oldest_s: float


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message that failed `max_attempts` times, with the last error."""

    id: LetterId
    stream: StreamText
    group: StreamText
    event_id: Annotated[str, msgspec.Meta(max_length=128)]
    type: Annotated[str, msgspec.Meta(max_length=128)]
    error: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL)]
    attempts: Count
    failed_at: Annotated[str, msgspec.Meta(max_length=40)]
    payload: Annotated[str, msgspec.Meta(max_length=MAX_PAYLOAD)]


#: each text field's bound, as the struct declares it (read once, never written twice)
_LIMITS = {
    field.name: field.type.max_length
    for field in cast("msgspec.inspect.StructType", msgspec.inspect.type_info(DeadLetter)).fields
    if isinstance(field.type, msgspec.inspect.StrType) and field.type.max_length is not None
}


class Runnable(Protocol):
    """A background worker (see `services.kit.supervisor`)."""

    name: str
    liveness: Liveness

    async def run(self) -> None: ...

    def stop(self) -> None: ...


#: an event to publish: (stream, event id, type, payload)
Publication = tuple[str, str, str, bytes]


class EventBus(Protocol):
    async def publish(self, stream: str, event_id: str, type: str, payload: bytes) -> None: ...

    async def publish_all(self, events: Sequence[Publication]) -> None:
        """Publish in order, in one round trip where the transport allows."""

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

    async def backlog(self, stream: str) -> list[Backlog]: ...
