"""The relay: publishes committed outbox rows to the bus, in order, and marks them.

Publish-then-mark means a crash between the two publishes an event again; consumers are
idempotent by event id, so that is harmless. While the bus is down rows simply wait.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from services.kit.supervisor import Liveness

if TYPE_CHECKING:
    from services.kit.events.bus import EventBus
    from services.kit.events.outbox import Outbox
    from services.kit.storage import Database

__all__ = ["Relay"]

log = logging.getLogger("retailmesh.events")


class Relay:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        bus: EventBus,
        *,
        interval_s: float = 0.5,
        batch: int = 500,
        retention: timedelta = timedelta(days=1),
    ) -> None:
        self.db, self.outbox, self.bus = db, outbox, bus
        self.interval_s, self.batch, self.retention = interval_s, batch, retention
        self._stopping = False
        self.healthy = True
        self.name = "event relay"
        #: a round is a few milliseconds; half a minute without one is a stuck relay
        self.liveness = Liveness(expected_s=max(30.0, 20 * interval_s))

    def stop(self) -> None:
        self._stopping = True
        self.outbox.notify()

    async def run_once(self) -> int:
        """Publish what is waiting; returns how many events went out."""
        if self.db.is_sqlite:
            # One process owns a SQLite file: read, publish, mark, without holding the lock.
            async with self.db.read() as conn:
                rows = await self.outbox.pending(conn, self.batch)
            if not rows:
                return 0
            await self.bus.publish_all([(r.stream, r.event_id, r.type, r.payload) for r in rows])
            async with self.db.write() as conn:
                await self.outbox.mark_published(conn, [row.seq for row in rows])
            return len(rows)
        # PostgreSQL: replicas share the table; SKIP LOCKED gives each row to one relay.
        async with self.db.write() as conn:
            rows = await self.outbox.pending(conn, self.batch, lock=True)
            if rows:
                await self.bus.publish_all(
                    [(r.stream, r.event_id, r.type, r.payload) for r in rows]
                )
                await self.outbox.mark_published(conn, [row.seq for row in rows])
        return len(rows)

    async def run(self) -> None:
        """Publish until stopped. A bus outage is waited out here; any other error (the
        database's) ends the run and the supervisor starts it again."""
        cycles = 0
        while not self._stopping:
            try:
                sent = await self.run_once()
                self.liveness.ok()
                if not self.healthy:
                    log.info("event relay recovered")
                self.healthy = True
                if sent >= self.batch:
                    continue
                cycles += 1
                if cycles % 1000 == 0:
                    async with self.db.write() as conn:
                        await self.outbox.purge(conn, self.retention)
            except (RedisError, OSError) as exc:
                self.liveness.failed(exc)
                if self.healthy:
                    log.warning("event relay cannot publish, events wait in the outbox: %s", exc)
                self.healthy = False
            await self.outbox.wait(self.interval_s)
