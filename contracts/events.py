"""Canonical events and their envelope.

Events are facts in the past tense. Each stream carries one tagged union, decoded by one
module-level decoder. Never forbid unknown fields on events; a new field gets a default; an
existing field's type never changes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec

from contracts.models import Money
from contracts.postings import PostingLine

__all__ = [
    "ERP_STREAM",
    "ORDERS_STREAM",
    "POS_STREAM",
    "STREAMS",
    "Envelope",
    "ErpEvent",
    "OrderEvent",
    "OrderPostingBooked",
    "OrderStatusChanged",
    "PosEvent",
    "PositionAfter",
    "RefundPostingBooked",
    "ReturnStatusChanged",
    "SaleLinePosted",
    "StockAdjusted",
    "StoreDaySummarized",
    "TillTransactionRecorded",
    "envelope",
]

T = TypeVar("T")

ERP_STREAM = "events.erp"


class Envelope(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One envelope for every event on every stream."""

    id: str
    type: str
    version: int = 1
    occurred_at: datetime
    source: str
    correlation_id: str | None = None
    causation_id: str | None = None
    data: T


class PositionAfter(msgspec.Struct, frozen=True, kw_only=True):
    """A position as the ERP booked it: on hand and its version (which only grows)."""

    sku: str
    location_id: str
    on_hand: int
    version: int


class StockAdjusted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """On-hand stock of a SKU at a location changed in the ERP."""

    sku: str
    location_id: str
    delta: int
    on_hand: int
    reason: str
    #: the position's version after the change (0 from producers that do not know it)
    version: int = 0


class OrderPostingBooked(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The ERP booked a sale; its lines left stock at their locations."""

    posting_id: str
    order_id: str
    lines: list[PostingLine]
    total: Money
    #: the positions the lines moved, after the booking
    positions: list[PositionAfter] = []


class RefundPostingBooked(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The ERP booked a refund."""

    posting_id: str
    order_id: str
    lines: list[PostingLine]
    amount: Money


ErpEvent = StockAdjusted | OrderPostingBooked | RefundPostingBooked

POS_STREAM = "events.pos"


class TillTransactionRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A store accepted a sale or a return from a till: its lines left (or came back to)
    the store's stock."""

    transaction_id: str
    kind: str
    store_id: str
    till_id: str
    sequence: int
    occurred_at: datetime
    lines: list[SaleLinePosted]
    total: Money
    member_id: str | None = None
    original_transaction_id: str | None = None
    #: of a sale, what was paid in money (cash, card, gift card), up to the total: what
    #: points are earned on (not loyalty points or vouchers used as tenders)
    paid: Money | None = None


class SaleLinePosted(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    quantity: int
    unit_price: Money
    discount: int = 0


class StoreDaySummarized(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A store closed (part of) a day: its transactions not summarized before, summed per
    SKU and price, for one summary posting per kind (stores configured to post summaries)."""

    summary_id: str
    store_id: str
    day: str
    transactions: int
    sales: list[SaleLinePosted]
    returns: list[SaleLinePosted]
    currency: str


PosEvent = TillTransactionRecorded | StoreDaySummarized

ORDERS_STREAM = "events.orders"


class OrderStatusChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An order moved from one status to the next (or was created, `previous` None)."""

    order_id: str
    status: str
    previous: str | None
    customer: str
    channel: str
    fulfilment: str
    pickup_store_id: str | None = None
    detail: str | None = None


class ReturnStatusChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A return was accepted, or refunded (its refund booked, points and stock settled)."""

    return_id: str
    status: str
    customer: str
    order_id: str | None = None
    receipt: str | None = None
    store_id: str | None = None


OrderEvent = OrderStatusChanged | ReturnStatusChanged

#: stream → the union of facts it carries (one decoder per stream)
STREAMS: dict[str, Any] = {
    ERP_STREAM: ErpEvent,
    POS_STREAM: PosEvent,
    ORDERS_STREAM: OrderEvent,
}


def envelope(
    data: T,
    *,
    source: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: str | None = None,
) -> Envelope[T]:
    """Wrap a fact in the envelope, stamping an id and the time."""
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=type(data).__name__,
        occurred_at=datetime.now(UTC),
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        data=data,
    )
