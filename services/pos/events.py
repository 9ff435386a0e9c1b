"""What a recorded till transaction sets off, through the outbox (never inline calls):

erp      a posting per transaction (sale → order posting, return → refund posting),
         idempotent at the ERP by the transaction id, retried until it is booked: while
         the ERP answers 429/5xx or not at all, for `retry_for_s` (days), honouring its
         Retry-After; only a posting the ERP calls wrong (another 4xx) is a dead letter
stock    the ERP's posting moves the store's stock and publishes the new positions,
         which the available-to-sell service applies (so stock moves once)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from contracts.events import Envelope, PosEvent, StoreDaySummarized, TillTransactionRecorded
from contracts.models import Money, OrderPosting, PostingLine, RefundPosting
from services.kit.events import RetryLater, verdict
from services.kit.identity import IDENTITY_HEADER, Identity
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from services.kit.identity import IdentityCodec
    from services.kit.registry import ServiceClient

__all__ = ["POS_DECODER", "ErpPoster"]

POS_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Envelope[PosEvent])
_POSTER = Identity(kind="service", consumer="pos", scopes=frozenset({"erp:post"}))


class ErpPoster:
    """Posts to the ERP per transaction (`mode` "transaction") or per store day summary
    ("daily_summary"); the other kind of event is not this mode's business."""

    def __init__(self, erp: ServiceClient, codec: IdentityCodec, mode: str = "transaction") -> None:
        self.erp, self.codec, self.mode = erp, codec, mode

    async def _post(self, path: str, posting: Any, correlation_id: str | None) -> None:
        headers = {IDENTITY_HEADER: self.codec.sign(_POSTER)}
        if correlation_id:
            headers["x-request-id"] = correlation_id
        try:
            response = await self.erp.request("POST", path, json=posting, headers=headers)
        except ServiceCallError as exc:
            raise RetryLater(f"ERP posting {posting.posting_id}: {exc}") from None
        # A busy or absent ERP is waited out (days if need be); a posting it calls wrong is
        # a dead letter at once, for an operator.
        verdict(response, f"ERP posting {posting.posting_id}", done=(201,))

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
            path = "/postings/orders"
            posting = OrderPosting(
                posting_id=tx.transaction_id,
                order_id=tx.transaction_id,
                lines=lines,
                total=Money(tx.total.amount, tx.total.currency),
                occurred_at=tx.occurred_at,
            )
        else:
            path = "/postings/refunds"
            posting = RefundPosting(
                posting_id=tx.transaction_id,
                order_id=tx.original_transaction_id or tx.transaction_id,
                lines=lines,
                amount=Money(tx.total.amount, tx.total.currency),
                occurred_at=tx.occurred_at,
            )
        await self._post(path, posting, envelope.correlation_id)

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
                await self._post("/postings/orders", posting, envelope.correlation_id)
            else:
                posting = RefundPosting(
                    posting_id=posting_id,
                    order_id=posting_id,
                    lines=posted,
                    amount=amount,
                    occurred_at=occurred,
                )
                await self._post("/postings/refunds", posting, envelope.correlation_id)
