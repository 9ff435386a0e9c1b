"""Events: outbox, relay, and consumers over Redis Streams (or an in-memory stand-in)."""

from services.kit.events.bus import ConsumerPolicy, DeadLetter, EventBus, Handler, Runnable
from services.kit.events.memory import MemoryBus
from services.kit.events.outbox import Outbox, OutboxRow
from services.kit.events.relay import Relay
from services.kit.events.streams import RedisBus, StreamConsumer

__all__ = [
    "ConsumerPolicy",
    "DeadLetter",
    "EventBus",
    "Handler",
    "MemoryBus",
    "Outbox",
    "OutboxRow",
    "RedisBus",
    "Relay",
    "Runnable",
    "StreamConsumer",
]
