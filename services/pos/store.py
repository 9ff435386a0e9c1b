"""The POS system's own database: every till transaction once, by its till-minted id."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from contracts.models import MAX_GAPS, TillTransaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["PosTables"]

_transaction = msgspec.json.Decoder(TillTransaction)


class PosTables:
    def __init__(self, metadata: MetaData) -> None:
        self.transactions = Table(
            "pos_transactions",
            metadata,
            Column("transaction_id", String(36), primary_key=True),
            Column("store_id", String(32), nullable=False),
            Column("till_id", String(32), nullable=False),
            Column("sequence", BigInteger, nullable=False),
            Column("kind", String(8), nullable=False),
            Column("occurred_at", DateTime(timezone=True), nullable=False),
            Column("received_at", DateTime(timezone=True), nullable=False),
            Column("fingerprint", LargeBinary, nullable=False),
            Column("body", LargeBinary, nullable=False),
            #: a return's sale (its receipt)
            Column("original_transaction_id", String(36), nullable=True, index=True),
            #: the day summary that posted it to the ERP (summary posting mode)
            Column("summary_id", String(64), nullable=True, index=True),
            #: what the ERP said of its posting (transaction posting mode): "booked", or
            #: "refused" (a dead letter for an operator); until then the sweep finds it here,
            #: whatever happened to its event
            Column("erp_outcome", String(8), nullable=True),
            UniqueConstraint("store_id", "till_id", "sequence", name="uq_pos_till_sequence"),
        )

        #: units of a sale returned outside the tills (by receipt, through the orders
        #: service), counted with the tills' returns
        self.claims = Table(
            "pos_return_claims",
            metadata,
            Column("claim_id", String(64), primary_key=True),
            Column("sku", String(32), primary_key=True),
            Column("sale_id", String(36), nullable=False, index=True),
            Column("quantity", BigInteger, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )

    async def returned(self, conn: AsyncConnection, sale_id: str) -> Counter[str]:
        """Units of a sale taken back so far: by the tills' returns and by claims."""
        taken: Counter[str] = Counter()
        for earlier in await self.returns_of(conn, sale_id):
            for line in _transaction.decode(earlier.body).lines:
                taken[line.sku] += line.quantity
        for _claim_id, sku, quantity in await self.claimed(conn, sale_id):
            taken[sku] += quantity
        return taken

    async def claimed(self, conn: AsyncConnection, sale_id: str) -> list[Any]:
        """(claim_id, sku, quantity) of the claims on a sale."""
        c = self.claims.c
        query = select(c.claim_id, c.sku, c.quantity).where(c.sale_id == sale_id)
        return list((await conn.execute(query)).all())

    async def existing(self, conn: AsyncConnection, ids: list[str]) -> dict[str, bytes]:
        rows = (
            await conn.execute(
                select(self.transactions.c.transaction_id, self.transactions.c.fingerprint).where(
                    self.transactions.c.transaction_id.in_(ids)
                )
            )
        ).all()
        return {r.transaction_id: bytes(r.fingerprint) for r in rows}

    async def used_sequences(
        self, conn: AsyncConnection, store_id: str, keys: list[tuple[str, int]]
    ) -> set[tuple[str, int]]:
        if not keys:
            return set()
        tills = sorted({t for t, _ in keys})
        rows = (
            await conn.execute(
                select(self.transactions.c.till_id, self.transactions.c.sequence).where(
                    self.transactions.c.store_id == store_id,
                    self.transactions.c.till_id.in_(tills),
                    self.transactions.c.sequence.in_(sorted({s for _, s in keys})),
                )
            )
        ).all()
        return {(r.till_id, r.sequence) for r in rows}

    async def record_outcomes(
        self, conn: AsyncConnection, outcomes: Sequence[tuple[str, str]]
    ) -> None:
        """What the ERP said of each (transaction id, "booked" or "refused")."""
        await conn.execute(
            update(self.transactions)
            .where(self.transactions.c.transaction_id == bindparam("tid"))
            .values(erp_outcome=bindparam("said")),
            [{"tid": tid, "said": said} for tid, said in outcomes],
        )

    async def unbooked(
        self, conn: AsyncConnection, received_before: datetime, limit: int
    ) -> list[tuple[str, bytes]]:
        """(id, body) of transactions not booked by the ERP, received before the time."""
        t = self.transactions.c
        rows = await conn.execute(
            select(t.transaction_id, t.body)
            .where(t.erp_outcome.is_(None), t.summary_id.is_(None), t.received_at < received_before)
            .order_by(t.received_at)
            .limit(limit)
        )
        return [(r.transaction_id, bytes(r.body)) for r in rows]

    async def insert(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        if rows:
            await conn.execute(insert(self.transactions), rows)

    async def get(self, conn: AsyncConnection, transaction_id: str) -> Any:
        return (
            await conn.execute(
                select(self.transactions).where(
                    self.transactions.c.transaction_id == transaction_id
                )
            )
        ).first()

    async def returns_of(self, conn: AsyncConnection, transaction_id: str) -> list[Any]:
        t = self.transactions.c
        query = (
            select(self.transactions)
            .where(t.original_transaction_id == transaction_id, t.kind == "return")
            .order_by(t.received_at)
        )
        return list((await conn.execute(query)).all())

    async def by_day(
        self,
        conn: AsyncConnection,
        store_id: str,
        day: datetime,
        after: tuple[str, int] | None,
        limit: int,
    ) -> list[Any]:
        """Up to `limit` of the store's transactions of the day, by till and sequence, the
        first after `after` (a till and a sequence number there)."""
        start = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
        end = start + timedelta(days=1)
        t = self.transactions.c
        query = select(self.transactions).where(
            t.store_id == store_id, and_(t.occurred_at >= start, t.occurred_at < end)
        )
        if after is not None:
            till, sequence = after
            query = query.where(
                or_(t.till_id > till, and_(t.till_id == till, t.sequence > sequence))
            )
        query = query.order_by(t.till_id, t.sequence).limit(limit)
        return list((await conn.execute(query)).all())

    async def unsummarized(self, conn: AsyncConnection, store_id: str, day: datetime) -> list[Any]:
        start = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
        t = self.transactions.c
        query = select(self.transactions).where(
            t.store_id == store_id,
            t.summary_id.is_(None),
            t.occurred_at >= start,
            t.occurred_at < start + timedelta(days=1),
        )
        if conn.dialect.name != "sqlite":
            # two closes at once (PostgreSQL): the second waits, then finds them summarized
            query = query.with_for_update()
        return list((await conn.execute(query)).all())

    async def summaries(self, conn: AsyncConnection, store_id: str, prefix: str) -> int:
        t = self.transactions.c
        query = select(func.count(func.distinct(t.summary_id))).where(
            t.store_id == store_id, t.summary_id.like(prefix + "%")
        )
        return int((await conn.execute(query)).scalar_one())

    async def mark_summarized(self, conn: AsyncConnection, ids: list[str], summary_id: str) -> None:
        await conn.execute(
            update(self.transactions)
            .where(self.transactions.c.transaction_id.in_(ids))
            .values(summary_id=summary_id)
        )

    async def gaps(self, conn: AsyncConnection, store_id: str) -> list[tuple[str, int, int]]:
        """(till, first missing, last missing) between each till's lowest and highest."""
        seq = self.transactions.c.sequence
        previous = func.lag(seq).over(partition_by=self.transactions.c.till_id, order_by=seq)
        inner = (
            select(self.transactions.c.till_id, seq.label("seq"), previous.label("prev"))
            .where(self.transactions.c.store_id == store_id)
            .subquery()
        )
        rows = (
            await conn.execute(
                select(inner.c.till_id, inner.c.prev, inner.c.seq)
                .where(inner.c.seq - inner.c.prev > 1)
                .order_by(inner.c.till_id, inner.c.seq)
                .limit(MAX_GAPS)
            )
        ).all()
        return [(r.till_id, int(r.prev) + 1, int(r.seq) - 1) for r in rows]
