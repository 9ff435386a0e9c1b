"""The loyalty system's own database: members, an append-only points ledger, holds."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = ["LoyaltyTables"]


class LoyaltyTables:
    def __init__(self, metadata: MetaData) -> None:
        self.members = Table(
            "loyalty_members",
            metadata,
            Column("member_id", String(40), primary_key=True),
            Column("tier", String(8), nullable=False),
            Column("customer_sub", String(200), nullable=True, index=True),
            Column("card_hash", String(64), nullable=True, unique=True),
            Column("email_hash", String(64), nullable=True, unique=True),
            #: for customer service: the address masked, and sealed (services/loyalty/vault.py)
            Column("email_masked", String(320), nullable=True),
            Column("email_sealed", LargeBinary, nullable=True),
            #: the ledger's sum, kept with it in the same transaction
            Column("balance", BigInteger, nullable=False, server_default="0"),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )
        self.ledger = Table(
            "loyalty_ledger",
            metadata,
            Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
            Column("member_id", String(40), nullable=False, index=True),
            Column("kind", String(8), nullable=False),
            Column("points", BigInteger, nullable=False),
            Column("source_id", String(128), nullable=False),
            #: the money the entry is about (earn, reverse), in minor units
            Column("amount", BigInteger, nullable=True),
            #: an adjustment's author (`user:ops`, `service:orders`) and reason: the audit
            Column("actor", String(120), nullable=True),
            Column("reason", String(200), nullable=True),
            Column("created_at", DateTime(timezone=True), nullable=False),
            UniqueConstraint("member_id", "kind", "source_id", name="uq_loyalty_entry_source"),
        )
        self.holds = Table(
            "loyalty_holds",
            metadata,
            Column("hold_id", String(64), primary_key=True),
            Column("member_id", String(40), nullable=False, index=True),
            Column("points", BigInteger, nullable=False),
            Column("status", String(10), nullable=False),
            Column("expires_at", DateTime(timezone=True), nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )
