"""Canonical models and events of the retailmesh; imports nothing of ours."""

from contracts.events import (
    ERP_STREAM,
    Envelope,
    ErpEvent,
    OrderPostingBooked,
    RefundPostingBooked,
    StockAdjusted,
    envelope,
)
from contracts.models import (
    InventoryPosition,
    Money,
    PositionsQuery,
    PositionsResult,
    Product,
    ProductPage,
    SkuPositions,
    StockAdjustment,
    StockLocation,
)
from contracts.postings import (
    OrderPosting,
    PostingLine,
    PostingPage,
    PostingReceipt,
    PostingRecord,
    PostingTotals,
    RefundPosting,
)
from contracts.problems import PROBLEM_MEDIA_TYPE, FieldError, Problem

__all__ = [
    "ERP_STREAM",
    "PROBLEM_MEDIA_TYPE",
    "Envelope",
    "ErpEvent",
    "FieldError",
    "InventoryPosition",
    "Money",
    "OrderPosting",
    "OrderPostingBooked",
    "PositionsQuery",
    "PositionsResult",
    "PostingLine",
    "PostingPage",
    "PostingReceipt",
    "PostingRecord",
    "PostingTotals",
    "Problem",
    "Product",
    "ProductPage",
    "RefundPosting",
    "RefundPostingBooked",
    "SkuPositions",
    "StockAdjusted",
    "StockAdjustment",
    "StockLocation",
    "envelope",
]
