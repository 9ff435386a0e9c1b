"""The hot-path lookup of API keys: key → record from memory, the database only on a miss.
A revocation is published on Redis pub/sub and every replica drops the key from its cache
at once (a short TTL bounds staleness should a message be missed while a replica
reconnects)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from gateway.auth.keys import ApiKey, KeyStore, checksum_ok, hash_key
from services.kit.supervisor import Liveness

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from services.kit.storage import Database

__all__ = ["KeyCache"]

log = logging.getLogger("retailmesh.gateway.keys")


class KeyCache:
    """The hot-path lookup: key → record from memory, the database only on a miss."""

    def __init__(
        self,
        store: KeyStore,
        db: Database,
        redis: Redis | None,
        channel: str,
        *,
        ttl_s: float = 60.0,
        negative_ttl_s: float = 5.0,
    ) -> None:
        self.store, self.db, self.redis, self.channel = store, db, redis, channel
        self.ttl_s, self.negative_ttl_s = ttl_s, negative_ttl_s
        self._entries: dict[str, tuple[ApiKey | None, float]] = {}
        self._partners: dict[str, tuple[bool, float]] = {}
        self._stopping = asyncio.Event()
        self.name = "key invalidation listener"
        self.liveness = Liveness(expected_s=30.0)

    async def lookup(self, key: str) -> ApiKey | None:
        if len(key) != 46:
            return None
        digest = hash_key(self.store.pepper, key)
        entry = self._entries.get(digest)
        now = time.monotonic()
        if entry is not None and now < entry[1]:
            return entry[0]
        if not checksum_ok(key):  # a typo costs no lookup (and is not cached)
            return None
        record = await self.store.by_hash(self.db, digest)
        ttl = self.ttl_s if record is not None else self.negative_ttl_s
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[digest] = (record, now + ttl)
        return record

    async def partner_known(self, partner_id: str) -> bool:
        """Whether a partner is registered (a token's `partner_id` claim must name one);
        remembered for the key TTL, a miss for the negative TTL."""
        now = time.monotonic()
        entry = self._partners.get(partner_id)
        if entry is not None and now < entry[1]:
            return entry[0]
        async with self.db.read() as conn:
            known = await self.store.partner_exists(conn, partner_id)
        if len(self._partners) > 10_000:
            self._partners.clear()
        self._partners[partner_id] = (known, now + (self.ttl_s if known else self.negative_ttl_s))
        return known

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)

    async def announce(self, digest: str) -> None:
        """Tell every replica (this one included) to drop a key from its cache."""
        self.forget(digest)
        if self.redis is not None:
            await self.redis.publish(self.channel, digest)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Listen for invalidations for the life of the gateway (one process without Redis
        has nobody to hear from: it just waits to be stopped)."""
        if self.redis is None:
            while not self._stopping.is_set():
                self.liveness.ok()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await self._stopping.wait()
            return
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                # Whatever changed while we were not listening: start from a clean cache.
                self._entries.clear()
                while not self._stopping.is_set():
                    self.liveness.ok()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self.forget(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError) as exc:
                self.liveness.failed(exc)
                log.warning("key invalidation channel lost, retrying: %s", exc)
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
