"""What a recorded till transaction sets off, through the outbox (never inline calls):

erp      a posting per transaction (sale → order posting, return → refund posting),
         idempotent at the ERP by the transaction id, retried until it is booked
stock    the ERP's posting moves the store's stock and publishes the new positions,
         which the available-to-sell service applies (so stock moves once)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from contracts.events import Envelope, PosEvent, TillTransactionRecorded
from contracts.models import Money, OrderPosting, PostingLine, RefundPosting
from services.kit.identity import IDENTITY_HEADER, Identity

if TYPE_CHECKING:
    from services.kit.identity import IdentityCodec
    from services.kit.registry import ServiceClient

__all__ = ["POS_DECODER", "ErpPoster", "PostingFailed"]

POS_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Envelope[PosEvent])
_POSTER = Identity(kind="service", consumer="pos", scopes=frozenset({"erp:post"}))


class PostingFailed(Exception):
    """The ERP did not book it this time; the consumer retries, then dead-letters."""


class ErpPoster:
    def __init__(self, erp: ServiceClient, codec: IdentityCodec) -> None:
        self.erp, self.codec = erp, codec

    async def __call__(self, envelope: Envelope[Any]) -> None:
        tx = envelope.data
        if not isinstance(tx, TillTransactionRecorded):
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
        headers = {IDENTITY_HEADER: self.codec.sign(_POSTER)}
        if envelope.correlation_id:
            headers["x-request-id"] = envelope.correlation_id
        response = await self.erp.request("POST", path, json=posting, headers=headers)
        if response.status != 201:
            raise PostingFailed(f"ERP answered {response.status}: {response.body[:300]!r}")
