"""The transactional outbox: events are rows written in the same transaction as the state
change they describe, so an event exists exactly when its change does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncConnection

    from contracts.events import Envelope

__all__ = ["Outbox", "OutboxRow"]

_encoder = msgspec.json.Encoder()


class OutboxRow(msgspec.Struct, frozen=True):
    seq: int
    event_id: str
    stream: str
    type: str
    payload: bytes


class Outbox:
    """The outbox table of one service (`<service>_outbox`) and its queries."""

    def __init__(self, metadata: MetaData, service: str) -> None:
        self.table = Table(
            f"{service}_outbox",
            metadata,
            Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
            Column("event_id", String(64), nullable=False, unique=True),
            Column("stream", String(128), nullable=False),
            Column("type", String(128), nullable=False),
            Column("payload", LargeBinary, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("published_at", DateTime(timezone=True), nullable=True, index=True),
        )
        self._wake = asyncio.Event()

    async def add(self, conn: AsyncConnection, stream: str, event: Envelope[Any]) -> None:
        """Write an event inside the caller's transaction."""
        await self.add_all(conn, stream, [event])

    async def add_all(
        self, conn: AsyncConnection, stream: str, events: Sequence[Envelope[Any]]
    ) -> None:
        """Write events, in their order, inside the caller's transaction (one statement)."""
        if not events:
            return
        now = datetime.now(UTC)
        await conn.execute(
            insert(self.table),
            [
                {
                    "event_id": event.id,
                    "stream": stream,
                    "type": event.type,
                    "payload": _encoder.encode(event),
                    "created_at": now,
                }
                for event in events
            ],
        )

    def notify(self) -> None:
        """Tell the relay that committed events are waiting (call after the commit)."""
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def pending(
        self, conn: AsyncConnection, limit: int, *, lock: bool = False
    ) -> list[OutboxRow]:
        query = (
            select(
                self.table.c.seq,
                self.table.c.event_id,
                self.table.c.stream,
                self.table.c.type,
                self.table.c.payload,
            )
            .where(self.table.c.published_at.is_(None))
            .order_by(self.table.c.seq)
            .limit(limit)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        rows = (await conn.execute(query)).all()
        return [OutboxRow(r.seq, r.event_id, r.stream, r.type, bytes(r.payload)) for r in rows]

    async def mark_published(self, conn: AsyncConnection, seqs: Sequence[int]) -> None:
        if seqs:
            await conn.execute(
                update(self.table)
                .where(self.table.c.seq.in_(list(seqs)))
                .values(published_at=datetime.now(UTC))
            )

    async def purge(self, conn: AsyncConnection, older_than: timedelta) -> int:
        """Delete rows published longer ago than `older_than`; returns how many."""
        result = await conn.execute(
            delete(self.table).where(
                self.table.c.published_at.is_not(None),
                self.table.c.published_at < datetime.now(UTC) - older_than,
            )
        )
        return int(result.rowcount or 0)

    async def unpublished_count(self, conn: AsyncConnection) -> int:
        from sqlalchemy import func

        query = select(func.count()).where(self.table.c.published_at.is_(None))
        return int((await conn.execute(query)).scalar_one())
