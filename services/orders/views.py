"""What clients see of an order, and the pick-up codes.

A pick-up code is derived from the order id with a key of the service (an HMAC), so it is
stored nowhere: the customer sees it on their order, the store checks it at the counter.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select

from contracts.models import MAX_HISTORY, Money, Order, OrderLine, OrderStatusEntry
from services.kit.errors import problem_title, problem_type
from services.kit.storage import as_utc

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.orders.store import OrderTables

__all__ = ["PickupCodes", "problem_body", "view_in", "views_in"]

_lines = msgspec.json.Decoder(list[OrderLine])


class PickupCodes:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def code(self, order_id: str) -> str:
        digest = hmac.new(self._key, order_id.encode(), hashlib.sha256).digest()
        return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"

    def check(self, order_id: str, code: str) -> bool:
        return hmac.compare_digest(self.code(order_id).encode(), code.encode())


async def view_in(
    conn: AsyncConnection, t: OrderTables, row: Any, codes: PickupCodes, for_customer: bool
) -> Order:
    return (await views_in(conn, t, [row], codes, for_customer))[0]


async def views_in(
    conn: AsyncConnection,
    t: OrderTables,
    rows: Sequence[Any],
    codes: PickupCodes,
    for_customer: bool,
) -> list[Order]:
    """Orders as clients see them, their histories read in one query."""
    h = t.history.c
    history: dict[str, list[OrderStatusEntry]] = {row.order_id: [] for row in rows}
    found = await conn.execute(
        select(h.order_id, h.status, h.detail, h.at)
        .where(h.order_id.in_(list(history)))
        .order_by(h.id)
    )
    for line in found:
        history[line.order_id].append(
            OrderStatusEntry(status=line.status, at=as_utc(line.at), detail=line.detail)
        )
    # the newest lines, within the published bound (each status is entered once: never cut)
    return [_view(row, codes, for_customer, history[row.order_id][-MAX_HISTORY:]) for row in rows]


def _view(
    row: Any, codes: PickupCodes, for_customer: bool, history: list[OrderStatusEntry]
) -> Order:
    show_code = for_customer and row.fulfilment == "pickup" and row.status not in ("rejected",)
    return Order(
        order_id=row.order_id,
        status=row.status,
        customer=row.customer,
        channel=row.channel,
        fulfilment=row.fulfilment,
        lines=_lines.decode(row.lines),
        total=Money(row.total_amount, row.currency),
        payment_reference=row.payment_reference,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        pickup_store_id=row.pickup_store_id,
        member_id=row.member_id,
        partner_id=row.partner_id,
        points_redeemed=row.points,
        reason=row.reason if row.status == "rejected" else None,
        pickup_code=codes.code(row.order_id) if show_code else None,
        history=history,
    )


def problem_body(row: Any) -> bytes:
    """A rejected checkout's problem+json (stored as the key's first response)."""
    status = row.reject_status or 409
    return msgspec.json.encode(
        {
            "type": problem_type(row.reject_slug or "rejected"),
            "title": problem_title(row.reject_slug or "rejected"),
            "status": status,
            "detail": row.reason or "the order was rejected",
            "order_id": row.order_id,
        }
    )
