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

from sqlalchemy import bindparam, insert, select, update

from contracts.events import ORDERS_STREAM, OrderStatusChanged, envelope

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.events import Outbox
    from services.orders.store import OrderTables

__all__ = ["TRANSITIONS", "can_move", "move", "move_all", "record_creation"]

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
    conn: AsyncConnection, t: OrderTables, outbox: Outbox, created: Sequence[tuple[Any, datetime]]
) -> None:
    """The first history line and event of new orders (each with its time)."""
    await conn.execute(
        insert(t.history),
        [
            {"order_id": row.order_id, "status": "pending", "detail": None, "at": at}
            for row, at in created
        ],
    )
    await outbox.add_all(
        conn, ORDERS_STREAM, [_event(row, "pending", None, None) for row, _ in created]
    )


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
    return (await move_all(conn, t, outbox, [(row, detail)], target, **values))[0]


async def move_all(
    conn: AsyncConnection,
    t: OrderTables,
    outbox: Outbox,
    moves: Sequence[tuple[Any, str | None]],
    target: str,
    **values: Any,
) -> list[bool]:
    """`move` for many rows (each with its history detail) to one target, one statement per
    table; which of them moved."""
    # each order once (with its first detail), and only where the move is allowed
    unique: dict[str, tuple[Any, str | None]] = {}
    for row, detail in moves:
        if can_move(row.status, target):
            unique.setdefault(row.order_id, (row, detail))
    allowed = list(unique.values())
    if not allowed:
        return [False] * len(moves)
    if target == "cancelled":
        values["settled"] = False
    now = datetime.now(UTC)
    o = t.orders.c
    await conn.execute(
        update(t.orders)
        .where(o.order_id == bindparam("_order_id"), o.status == bindparam("_status"))
        .values(status=target, updated_at=now, **values),
        [{"_order_id": row.order_id, "_status": row.status} for row, _ in allowed],
    )
    # an executemany's row count is not per row on every driver: what moved is what now has
    # this move's status and time
    query = select(o.order_id).where(
        o.order_id.in_([row.order_id for row, _ in allowed]),
        o.status == target,
        o.updated_at == now,
    )
    moved_ids = set((await conn.execute(query)).scalars())
    moved = [(row, detail) for row, detail in allowed if row.order_id in moved_ids]
    if moved:
        await conn.execute(
            insert(t.history),
            [
                {"order_id": row.order_id, "status": target, "detail": detail, "at": now}
                for row, detail in moved
            ],
        )
        await outbox.add_all(
            conn, ORDERS_STREAM, [_event(row, target, row.status, detail) for row, detail in moved]
        )
    return [row.order_id in moved_ids for row, _ in moves]
