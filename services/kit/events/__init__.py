"""Events: outbox, relay, and consumers over Redis Streams (or an in-memory stand-in)."""

from services.kit.events.bus import (
    Backlog,
    ConsumerPolicy,
    DeadLetter,
    EventBus,
    Handler,
    RetryLater,
    Runnable,
    Undeliverable,
)
from services.kit.events.delivery import verdict
from services.kit.events.memory import MemoryBus
from services.kit.events.outbox import Outbox, OutboxRow
from services.kit.events.relay import Relay
from services.kit.events.stream_consumer import StreamConsumer
from services.kit.events.streams import RedisBus

__all__ = [
    "Backlog",
    "ConsumerPolicy",
    "DeadLetter",
    "EventBus",
    "Handler",
    "MemoryBus",
    "Outbox",
    "OutboxRow",
    "RedisBus",
    "Relay",
    "RetryLater",
    "Runnable",
    "StreamConsumer",
    "Undeliverable",
    "verdict",
]
