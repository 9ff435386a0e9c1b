"""Goodwill grants, once per agent and `Idempotency-Key`: the first request with a key
records what it grants (the customer, the points, the reason); the same request again is a
replay (granted once, recorded as a replay), and another request under the same key is
refused (422), not granted quietly nor recorded as a grant that did not happen."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, DateTime, MetaData, String, Table, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError

if TYPE_CHECKING:
    from contracts.care import Goodwill
    from services.kit.storage import Database

__all__ = ["GrantKeys"]


class GrantKeys:
    def __init__(self, metadata: MetaData) -> None:
        self.table = Table(
            "care_grants",
            metadata,
            Column("agent", String(200), nullable=False),
            Column("key_hash", String(64), nullable=False),
            Column("fingerprint", String(64), nullable=False),
            #: the loyalty ledger's source id of the grant
            Column("source_id", String(64), nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            UniqueConstraint("agent", "key_hash", name="uq_care_grants_key"),
        )
        self.db: Database | None = None

    async def claim(
        self, agent: str, key: str, customer: str, grant: Goodwill
    ) -> tuple[str, bool] | None:
        """(the ledger source id, whether this is the first request with the key); None
        when the key was used for another grant."""
        assert self.db is not None
        key_hash = hashlib.sha256(f"{agent}\n{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(f"{customer}\n{grant.points}\n{grant.reason}".encode())
        source_id = "goodwill-" + key_hash[:40]
        row: dict[str, object] = {
            "agent": agent,
            "key_hash": key_hash,
            "fingerprint": fingerprint.hexdigest(),
            "source_id": source_id,
            "created_at": datetime.now(UTC),
        }
        try:
            async with self.db.write() as conn:
                await conn.execute(self.table.insert().values(**row))
            return source_id, True
        except IntegrityError:
            pass
        c = self.table.c
        async with self.db.read() as conn:
            query = select(c.fingerprint, c.source_id).where(
                c.agent == agent, c.key_hash == key_hash
            )
            earlier = (await conn.execute(query)).one()
        if earlier.fingerprint != row["fingerprint"]:
            return None
        return str(earlier.source_id), False
