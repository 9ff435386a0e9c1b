"""An order's lifecycle: which status may follow which, and the one way to move it.

    pending ──► confirmed ──► posted ──► ready_for_pickup ──► collected
       │            │            ├─────► shipped ──► delivered
       ▼            ▼            ▼              │
    rejected    cancelled ◄──────┴──────────────┘ (from ready_for_pickup too)

Every move is a conditional update (the status it leaves must still be the status it has),
a history line and an `OrderStatusChanged` event in the outbox, all in one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update

from contracts.events import ORDERS_STREAM, OrderStatusChanged, envelope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.events import Outbox
    from services.orders.store import OrderTables

__all__ = ["TRANSITIONS", "can_move", "move", "record_creation"]

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "rejected"}),
    "confirmed": frozenset({"posted", "cancelled"}),
    "posted": frozenset({"ready_for_pickup", "shipped", "cancelled"}),
    "ready_for_pickup": frozenset({"collected", "cancelled"}),
    "shipped": frozenset({"delivered"}),
    "collected": frozenset(),
    "delivered": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
}


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def _event(row: Any, status: str, previous: str | None, detail: str | None) -> Any:
    return envelope(
        OrderStatusChanged(
            order_id=row.order_id,
            status=status,
            previous=previous,
            customer=row.customer,
            channel=row.channel,
            fulfilment=row.fulfilment,
            pickup_store_id=row.pickup_store_id,
            detail=detail,
        ),
        source="orders",
        causation_id=row.order_id,
    )


async def record_creation(
    conn: AsyncConnection, t: OrderTables, outbox: Outbox, row: Any, at: datetime
) -> None:
    await conn.execute(
        insert(t.history).values(order_id=row.order_id, status="pending", detail=None, at=at)
    )
    await outbox.add(conn, ORDERS_STREAM, _event(row, "pending", None, None))


async def move(
    conn: AsyncConnection,
    t: OrderTables,
    outbox: Outbox,
    row: Any,
    target: str,
    detail: str | None = None,
    **values: Any,
) -> bool:
    """Move `row` (as last read) to `target`; False when its status changed meanwhile or the
    move is not allowed. The caller notifies the outbox after its commit."""
    if not can_move(row.status, target):
        return False
    if target == "cancelled":
        values["settled"] = False  # its give-backs are still to do
    now = datetime.now(UTC)
    result = await conn.execute(
        update(t.orders)
        .where(t.orders.c.order_id == row.order_id, t.orders.c.status == row.status)
        .values(status=target, updated_at=now, **values)
    )
    if result.rowcount != 1:
        return False
    await conn.execute(
        insert(t.history).values(order_id=row.order_id, status=target, detail=detail, at=now)
    )
    await outbox.add(conn, ORDERS_STREAM, _event(row, target, row.status, detail))
    return True
