"""What a recorded till transaction sets off, through the outbox (never inline calls):

erp      a posting per transaction (sale → order posting, return → refund posting),
         idempotent at the ERP by the transaction id, retried until it is booked: while
         the ERP answers 429/5xx or not at all, for `retry_for_s` (days), honouring its
         Retry-After; only a posting the ERP calls wrong (another 4xx) is a dead letter
stock    the ERP's posting moves the store's stock and publishes the new positions,
         which the available-to-sell service applies (so stock moves once)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from contracts.events import (
    Envelope,
    PosEvent,
    StoreDaySummarized,
    TillTransactionRecorded,
    envelope,
)
from contracts.models import Money, TillTransaction
from contracts.postings import OrderPosting, PostingLine, RefundPosting
from services.kit.events import RetryLater, Undeliverable
from services.pos.intake import recorded

if TYPE_CHECKING:
    from services.kit.erp_postings import ErpPostings
    from services.kit.storage import Database
    from services.pos.store import PosTables

__all__ = ["POS_DECODER", "ErpPoster", "PostingSweep"]

log = logging.getLogger("retailmesh.pos")
_transaction = msgspec.json.Decoder(TillTransaction)

#: records what the ERP said of a transaction's posting: "booked" or "refused"
Outcome = Callable[[str, str], Awaitable[None]]

POS_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Envelope[PosEvent])


class ErpPoster:
    """Posts to the ERP per transaction (`mode` "transaction") or per store day summary
    ("daily_summary"); the other kind of event is not this mode's business."""

    def __init__(
        self, postings: ErpPostings, mode: str = "transaction", outcome: Outcome | None = None
    ) -> None:
        self.postings, self.mode, self.outcome = postings, mode, outcome

    async def __call__(self, envelope: Envelope[Any]) -> None:
        event = envelope.data
        if isinstance(event, StoreDaySummarized):
            if self.mode == "daily_summary":
                await self._summary(event, envelope)
            return
        tx = event
        if not isinstance(tx, TillTransactionRecorded) or self.mode != "transaction":
            return
        lines = [
            PostingLine(
                sku=line.sku,
                location_id=tx.store_id,
                quantity=line.quantity,
                unit_price=line.unit_price,
                discount=line.discount,
            )
            for line in tx.lines
        ]
        posting: OrderPosting | RefundPosting
        if tx.kind == "sale":
            posting = OrderPosting(
                posting_id=tx.transaction_id,
                order_id=tx.transaction_id,
                lines=lines,
                total=Money(tx.total.amount, tx.total.currency),
                occurred_at=tx.occurred_at,
            )
        else:
            posting = RefundPosting(
                posting_id=tx.transaction_id,
                order_id=tx.original_transaction_id or tx.transaction_id,
                lines=lines,
                amount=Money(tx.total.amount, tx.total.currency),
                occurred_at=tx.occurred_at,
            )
        # A busy or absent ERP is waited out (days if need be); a posting it calls wrong is
        # a dead letter at once, for an operator.
        try:
            await self.postings.book(posting)
        except Undeliverable:
            await self._record(tx.transaction_id, "refused")
            raise
        await self._record(tx.transaction_id, "booked")

    async def _record(self, transaction_id: str, outcome: str) -> None:
        if self.outcome is not None:
            await self.outcome(transaction_id, outcome)

    async def _summary(self, summary: StoreDaySummarized, envelope: Envelope[Any]) -> None:
        """One order posting for the summary's sales, one refund posting for its returns,
        each idempotent by the summary's id."""
        for kind, lines in (("sales", summary.sales), ("returns", summary.returns)):
            if not lines:
                continue
            posted = [
                PostingLine(
                    sku=line.sku,
                    location_id=summary.store_id,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    discount=line.discount,
                )
                for line in lines
            ]
            amount = Money(
                sum(p.quantity * p.unit_price.amount - p.discount for p in posted),
                summary.currency,
            )
            posting_id = f"{summary.summary_id}.{kind}"
            occurred = envelope.occurred_at
            if kind == "sales":
                posting: OrderPosting | RefundPosting = OrderPosting(
                    posting_id=posting_id,
                    order_id=posting_id,
                    lines=posted,
                    total=amount,
                    occurred_at=occurred,
                )
                await self.postings.book(posting)
            else:
                posting = RefundPosting(
                    posting_id=posting_id,
                    order_id=posting_id,
                    lines=posted,
                    amount=amount,
                    occurred_at=occurred,
                )
                await self.postings.book(posting)


class PostingSweep:
    """Posts again what the ERP has not booked `overdue_s` after it came in: a transaction
    whose event was lost with Redis's data, or whose consumer group was. The record of
    what is booked is the POS database, not the stream; postings are idempotent by the
    transaction id, so a sweep racing the consumer books nothing twice."""

    def __init__(
        self, db: Database, tables: PosTables, poster: ErpPoster, overdue_s: float
    ) -> None:
        self.db, self.t, self.poster, self.overdue_s = db, tables, poster, overdue_s

    async def run_once(self) -> int:
        """Post the overdue transactions; returns how many the ERP booked."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.overdue_s)
        async with self.db.read() as conn:
            rows = await self.t.unbooked(conn, cutoff, 500)
        if not rows:
            return 0
        log.warning("sweep: %d till transactions are not booked yet; posting them again", len(rows))
        limit = asyncio.Semaphore(8)
        booked = 0

        async def post(tid: str, body: bytes) -> None:
            nonlocal booked
            event = envelope(
                recorded(tid, _transaction.decode(body)), source="pos", causation_id=tid
            )
            async with limit:
                try:
                    await self.poster(event)
                    booked += 1
                except RetryLater as exc:
                    log.info("sweep: %s waits: %s", tid, exc)
                except Undeliverable as exc:
                    log.error("sweep: the ERP refused %s: %s", tid, exc)

        await asyncio.gather(*(post(tid, body) for tid, body in rows))
        return booked
