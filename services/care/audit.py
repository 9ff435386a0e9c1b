"""The audit of customer service: every lookup and action by an agent (who, when, which
customer, why, and what came of it), in the care service's own database, readable by
supervisors. Written before the answer leaves: an agent never sees what was not recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, select

from contracts.care import AuditEntry
from services.kit.storage import as_utc

if TYPE_CHECKING:
    from services.kit.storage import Database

__all__ = ["AuditLog"]


class AuditLog:
    def __init__(self, metadata: MetaData) -> None:
        self.table = Table(
            "care_audit",
            metadata,
            Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
            Column("at", DateTime(timezone=True), nullable=False),
            Column("agent", String(200), nullable=False),
            Column("action", String(16), nullable=False),
            Column("customer", String(200), nullable=True, index=True),
            Column("subject", String(64), nullable=True),
            Column("reason", String(200), nullable=False),
            Column("outcome", String(40), nullable=False),
        )
        self.db: Database | None = None

    async def record(
        self,
        agent: str,
        action: str,
        reason: str,
        outcome: str,
        *,
        customer: str | None = None,
        subject: str | None = None,
    ) -> None:
        assert self.db is not None
        async with self.db.write() as conn:
            await conn.execute(
                self.table.insert().values(
                    at=datetime.now(UTC),
                    agent=agent,
                    action=action,
                    customer=customer,
                    subject=subject,
                    reason=reason,
                    outcome=outcome,
                )
            )

    async def read(
        self, customer: str | None, before: int | None, limit: int
    ) -> tuple[list[AuditEntry], int | None]:
        """Newest first; the cursor is the last entry's id."""
        assert self.db is not None
        c = self.table.c
        query = select(self.table).order_by(c.id.desc()).limit(limit + 1)
        if customer is not None:
            query = query.where(c.customer == customer)
        if before is not None:
            query = query.where(c.id < before)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        items = [
            AuditEntry(
                at=as_utc(r.at),
                agent=r.agent,
                action=r.action,
                customer=r.customer,
                subject=r.subject,
                reason=r.reason,
                outcome=r.outcome,
            )
            for r in rows[:limit]
        ]
        return items, (rows[limit - 1].id if len(rows) > limit else None)
