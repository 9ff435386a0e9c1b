"""Booking postings in the ERP from an event consumer, many per call.

A consumer handles a batch of events at once; each handler calls `book(posting)`, and the
postings of the handlers running together go to the ERP in one `POST /postings/batch`.
Each handler still learns what became of its own posting, with the meaning an event
delivery needs (`services.kit.events.delivery`): booked (or booked before: a replay),
`RetryLater` when the ERP cannot take the batch now, `Undeliverable` when it refuses that
posting. Postings are idempotent by their id at the ERP, so a batch sent again after a
lost answer books nothing twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.postings import (
    MAX_BATCH_POSTINGS,
    BatchedPosting,
    OrderPosting,
    PostingBatch,
    PostingBatchResult,
    PostingReceipt,
    RefundPosting,
)
from services.kit.coalesce import Coalescer
from services.kit.events import RetryLater, Undeliverable, verdict
from services.kit.identity import IDENTITY_HEADER
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from services.kit.identity import Identity, IdentityCodec
    from services.kit.registry import ServiceClient

__all__ = ["ErpPostings"]

Posting = OrderPosting | RefundPosting
Outcome = BatchedPosting | RetryLater | Undeliverable


class ErpPostings:
    def __init__(
        self,
        erp: ServiceClient,
        codec: IdentityCodec,
        identity: Identity,
        max_batch: int = MAX_BATCH_POSTINGS,
    ) -> None:
        self.erp, self.codec, self.identity = erp, codec, identity
        self._batches: Coalescer[Posting, Outcome] = Coalescer(self._send, max_batch)

    @property
    def calls(self) -> int:
        """Batch calls made so far."""
        return self._batches.calls

    async def book(self, posting: Posting) -> PostingReceipt:
        """The posting's receipt, once the ERP has booked it (now or before)."""
        outcome = await self._batches.submit(posting)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome.receipt is None:
            detail = outcome.problem.detail if outcome.problem else ""
            raise Undeliverable(
                f"the ERP refused posting {posting.posting_id} ({outcome.status}): {detail}"
            )
        return outcome.receipt

    async def _send(self, postings: list[Posting]) -> list[Outcome]:
        try:
            return list(await self._call(postings))
        except RetryLater as exc:
            return [exc] * len(postings)
        except Undeliverable as exc:
            if len(postings) == 1:
                return [exc]
            # The ERP refused the batch as a whole (one posting breaks its schema, say):
            # each alone, so that only the one at fault goes to the dead letters.
            return [(await self._send([p]))[0] for p in postings]

    async def _call(self, postings: list[Posting]) -> list[BatchedPosting]:
        batch = PostingBatch(
            orders=[p for p in postings if isinstance(p, OrderPosting)],
            refunds=[p for p in postings if isinstance(p, RefundPosting)],
        )
        headers = {IDENTITY_HEADER: self.codec.sign(self.identity)}
        try:
            response = await self.erp.request(
                "POST", "/postings/batch", json=batch, headers=headers
            )
        except ServiceCallError as exc:
            raise RetryLater(f"ERP batch of {len(postings)} postings: {exc}") from None
        verdict(response, f"ERP batch of {len(postings)} postings", done=(200,))
        results = response.decode(PostingBatchResult).results
        if len(results) != len(postings):
            raise RetryLater(f"ERP batch: {len(results)} results for {len(postings)} postings")
        # the answer lists the batch's orders first, then its refunds: back to our order
        orders, refunds = iter(results[: len(batch.orders)]), iter(results[len(batch.orders) :])
        return [next(orders if isinstance(p, OrderPosting) else refunds) for p in postings]
