"""The orders service's own database: orders, their history, the saga's step log and the
idempotency keys of checkouts.

A saga's progress is the order's `stage` (the next step to run, or `compensate`), written
before and after every step together with a line in `order_saga_steps`; a restarted service
reads the stage and goes on from there. `lease_until` says a driver is working on the order,
so that a resumer (this process after a restart, or another replica) takes over only what
nobody drives.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

__all__ = ["OrderTables"]

_ID = BigInteger().with_variant(Integer(), "sqlite")


class OrderTables:
    def __init__(self, metadata: MetaData) -> None:
        self.orders = Table(
            "orders",
            metadata,
            Column("order_id", String(40), primary_key=True),
            Column("customer", String(200), nullable=False, index=True),
            #: a marketplace partner's order: the partner owns it (not a shop account)
            Column("partner_id", String(64), nullable=True, index=True),
            Column("channel", String(32), nullable=False),
            Column("fulfilment", String(8), nullable=False),
            Column("pickup_store_id", String(32), nullable=True, index=True),
            Column("status", String(20), nullable=False, index=True),
            #: the saga's next step (reserve, hold, confirm), `compensate`, or `done`
            Column("stage", String(12), nullable=False),
            Column("reason", String(400), nullable=True),
            #: a rejected order's problem: HTTP status and type slug
            Column("reject_status", Integer, nullable=True),
            Column("reject_slug", String(40), nullable=True),
            #: the lines, JSON (`OrderLine`s; locations filled in by the stock step)
            Column("lines", LargeBinary, nullable=False),
            Column("total_amount", BigInteger, nullable=False),
            Column("currency", String(3), nullable=False),
            Column("payment_reference", String(64), nullable=False),
            Column("member_id", String(40), nullable=True),
            Column("points", BigInteger, nullable=False, server_default="0"),
            #: the ERP booked the order (set by the poster, whatever the status is by then)
            Column("erp_posted", Boolean, nullable=False, server_default="0"),
            #: what its status sets off is done (confirmed/posted: the posting and the points;
            #: cancelled: the give-backs); the sweeper finds the rest from here alone
            Column("settled", Boolean, nullable=False, server_default="0"),
            Column("lease_until", DateTime(timezone=True), nullable=True, index=True),
            #: the process driving it (`leases.holder()`): a successor on the same host
            #: takes over a dead holder's lease at once
            Column("lease_holder", String(64), nullable=True),
            Column("pickup_failures", Integer, nullable=False, server_default="0"),
            Column("created_at", DateTime(timezone=True), nullable=False, index=True),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        self.history = Table(
            "order_history",
            metadata,
            Column("id", _ID, primary_key=True),
            Column("order_id", String(40), nullable=False, index=True),
            Column("status", String(20), nullable=False),
            Column("detail", String(400), nullable=True),
            Column("at", DateTime(timezone=True), nullable=False),
        )
        self.steps = Table(
            "order_saga_steps",
            metadata,
            Column("id", _ID, primary_key=True),
            Column("order_id", String(40), nullable=False, index=True),
            Column("step", String(16), nullable=False),
            #: started, done, failed, compensated
            Column("phase", String(12), nullable=False),
            Column("detail", String(400), nullable=True),
            Column("at", DateTime(timezone=True), nullable=False),
        )
        self.returns = Table(
            "order_returns",
            metadata,
            Column("return_id", String(40), primary_key=True),
            #: order or receipt, and its id
            Column("source_kind", String(8), nullable=False),
            Column("source_id", String(40), nullable=False, index=True),
            Column("customer", String(200), nullable=False, index=True),
            Column("store_id", String(32), nullable=True),
            Column("status", String(12), nullable=False),
            #: the saga's next step: refund, points, restock, or done
            Column("stage", String(12), nullable=False),
            Column("lines", LargeBinary, nullable=False),
            Column("amount", BigInteger, nullable=False),
            Column("currency", String(3), nullable=False),
            Column("member_id", String(40), nullable=True),
            Column("points_back", BigInteger, nullable=False, server_default="0"),
            Column("reason", String(200), nullable=True),
            Column("lease_until", DateTime(timezone=True), nullable=True, index=True),
            #: the process driving it (`leases.holder()`): a successor on the same host
            #: takes over a dead holder's lease at once
            Column("lease_holder", String(64), nullable=True),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        self.idempotency = Table(
            "order_idempotency",
            metadata,
            Column("principal", String(200), nullable=False),
            Column("key", String(255), nullable=False),
            Column("fingerprint", String(64), nullable=False),
            Column("order_id", String(40), nullable=False, index=True),
            #: the first response, once there is one (NULL while the first request runs)
            Column("status_code", Integer, nullable=True),
            Column("body", LargeBinary, nullable=True),
            Column("created_at", DateTime(timezone=True), nullable=False, index=True),
            PrimaryKeyConstraint("principal", "key", name="pk_order_idempotency"),
        )
