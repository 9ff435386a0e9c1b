"""ERP journal postings: one at a time, or many in one batch call.

A posting is idempotent by its `posting_id`: the same posting again answers the first
receipt, the same id with other content is refused. A batch books each posting on its own
terms, as if it had come alone (a refused one does not stop the others), and answers one
result per posting; real ERPs take journals the same way (OData `$batch`, batch journals).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contracts.bounds import Count, Timestamp
from contracts.models import (
    MAX_PAGE,
    LocationId,
    MinorUnits,
    Money,
    Page,
    PostingId,
    Quantity,
    Sku,
    UtcTime,
)
from contracts.problems import Problem

__all__ = [
    "MAX_BATCH_POSTINGS",
    "MAX_POSTING_LINES",
    "BatchedPosting",
    "OrderPosting",
    "PostingBatch",
    "PostingBatchResult",
    "PostingLine",
    "PostingPage",
    "PostingReceipt",
    "PostingRecord",
    "PostingTotals",
    "RefundPosting",
]

#: postings of one kind in one batch call
MAX_BATCH_POSTINGS = 500
#: lines of one posting
MAX_POSTING_LINES = 500
#: the ERP's own number of a booked posting (`SO-00000001`, `CR-00000001`)
DocumentNumber = Annotated[str, msgspec.Meta(max_length=32)]


class PostingLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sku: Sku
    location_id: LocationId
    quantity: Quantity
    unit_price: Money
    #: the line's discount in minor units; the line is worth quantity x unit price - discount
    discount: MinorUnits = 0


class OrderPosting(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A sale booked in the ERP; `posting_id` makes the posting idempotent."""

    posting_id: PostingId
    order_id: PostingId
    lines: Annotated[list[PostingLine], msgspec.Meta(min_length=1, max_length=MAX_POSTING_LINES)]
    total: Money
    occurred_at: UtcTime


class RefundPosting(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A refund booked in the ERP; `posting_id` makes the posting idempotent."""

    posting_id: PostingId
    order_id: PostingId
    lines: Annotated[list[PostingLine], msgspec.Meta(min_length=1, max_length=MAX_POSTING_LINES)]
    amount: Money
    occurred_at: UtcTime


class PostingReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What the ERP answers to a posting, the same for the first call and every replay."""

    posting_id: PostingId
    kind: Literal["order", "refund"]
    order_id: PostingId
    document_number: DocumentNumber
    booked_at: Timestamp


class PostingRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A booked posting as the ERP holds it."""

    posting_id: PostingId
    kind: Literal["order", "refund"]
    order_id: PostingId
    document_number: DocumentNumber
    booked_at: Timestamp
    occurred_at: Timestamp
    amount: Money
    lines: Annotated[list[PostingLine], msgspec.Meta(max_length=MAX_POSTING_LINES)]


class PostingPage(Page, frozen=True, kw_only=True):
    items: Annotated[list[PostingRecord], msgspec.Meta(max_length=MAX_PAGE)]


class PostingTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Units and postings booked for one SKU, orders and refunds apart."""

    sku: Sku
    order_postings: Count
    ordered_units: Count
    refund_postings: Count
    refunded_units: Count


class PostingBatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Order and refund postings booked in one call, each on its own terms."""

    orders: Annotated[list[OrderPosting], msgspec.Meta(max_length=MAX_BATCH_POSTINGS)] = []
    refunds: Annotated[list[RefundPosting], msgspec.Meta(max_length=MAX_BATCH_POSTINGS)] = []


class BatchedPosting(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What became of one posting of a batch: `status` is what the posting alone would have
    been answered (201 booked, 200 a replay of a booked one, 409 its id is taken by other
    content, 422 it is invalid); the receipt for the first two, the problem for the others."""

    posting_id: PostingId
    status: Literal[200, 201, 409, 422]
    receipt: PostingReceipt | None = None
    problem: Problem | None = None


class PostingBatchResult(msgspec.Struct, frozen=True, kw_only=True):
    """One result per posting: the batch's orders first, then its refunds, in their order."""

    results: Annotated[list[BatchedPosting], msgspec.Meta(max_length=2 * MAX_BATCH_POSTINGS)]
    booked: Count
    replayed: Count
    refused: Count
