"""Loyalty consumes store sales: a member's purchase earns points, a return takes back what
the returned part earned. Both are idempotent by the till transaction id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contracts.events import TillTransactionRecorded

if TYPE_CHECKING:
    from contracts.events import Envelope
    from services.loyalty.logic import LoyaltyService

__all__ = ["accrue"]


async def accrue(loyalty: LoyaltyService, envelope: Envelope[Any]) -> None:
    tx = envelope.data
    if not isinstance(tx, TillTransactionRecorded) or tx.member_id is None:
        return
    if tx.kind == "sale":
        # on what was paid in money (older events, without `paid`: their total)
        paid = tx.total.amount if tx.paid is None else min(tx.paid.amount, tx.total.amount)
        await loyalty.earn(tx.member_id, tx.transaction_id, paid)
    elif tx.original_transaction_id is not None:
        await loyalty.reverse(
            tx.member_id, tx.transaction_id, tx.original_transaction_id, tx.total.amount
        )
