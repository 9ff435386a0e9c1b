"""The ERP adapter protocol and the reference backend behind it.

A connector to a real ERP implements `ErpBackend`. The reference backend keeps its data in
its own database and behaves like a cloud ERP: `ERP_LATENCY_MS` slows every call,
`ERP_RATE_LIMIT_RPS` answers 429 past that rate, `ERP_FAILURE_RATE` fails that share of calls
with 503.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import IntegrityError

from contracts.events import (
    ERP_STREAM,
    StockAdjusted,
    envelope,
)
from contracts.models import (
    InventoryPosition,
    Money,
    PositionsResult,
    Product,
    SkuPositions,
    StockAdjustment,
    StockLocation,
)
from contracts.postings import (
    BatchedPosting,
    OrderPosting,
    PostingBatch,
    PostingBatchResult,
    PostingReceipt,
    PostingRecord,
    PostingTotals,
    RefundPosting,
)
from services.erp.booking import Item, Journal, check_refs, content_digest
from services.erp.errors import (
    ErpError,
    ErpRateLimited,
    ErpUnavailable,
    PostingConflict,
    UnknownPosting,
    UnknownSku,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.erp.store import ErpTables
    from services.kit.events import Outbox
    from services.kit.storage import Database

__all__ = ["CloudConditions", "ErpBackend", "ReferenceErpBackend"]


class ErpBackend(Protocol):
    async def product(self, sku: str) -> Product: ...

    async def products(self, after: str | None, limit: int) -> list[Product]: ...

    async def locations(self) -> list[StockLocation]: ...

    async def positions(self, skus: list[str]) -> PositionsResult: ...

    async def adjust(self, adjustment: StockAdjustment) -> tuple[InventoryPosition, bool]: ...

    async def post_order(self, posting: OrderPosting) -> tuple[PostingReceipt, bool]: ...

    async def post_refund(self, posting: RefundPosting) -> tuple[PostingReceipt, bool]: ...

    async def post_batch(self, batch: PostingBatch) -> PostingBatchResult: ...

    async def posting(self, posting_id: str) -> PostingRecord: ...

    async def postings(
        self,
        *,
        order_id: str | None,
        sku: str | None,
        kind: str | None,
        after: str | None,
        limit: int,
    ) -> list[PostingRecord]: ...

    async def totals(self, sku: str) -> PostingTotals: ...


class CloudConditions:
    """Latency, a token-bucket rate limit and random failures, as a cloud ERP has them."""

    def __init__(
        self,
        latency_ms: float = 0.0,
        rate_limit_rps: float = 0.0,
        failure_rate: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.latency_s = latency_ms / 1000
        self.rate = rate_limit_rps
        self.failure_rate = failure_rate
        self._tokens = rate_limit_rps
        self._stamp = time.monotonic()
        self._rng = rng or random.Random()
        self.calls = 0
        self.refused = 0

    async def enter(self) -> None:
        """Called at the start of every backend operation."""
        self.calls += 1
        if self.rate > 0:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                self.refused += 1
                raise ErpRateLimited(retry_after=max(1, math.ceil((1 - self._tokens) / self.rate)))
            self._tokens -= 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.failure_rate and self._rng.random() < self.failure_rate:
            raise ErpUnavailable


class ReferenceErpBackend:
    def __init__(
        self, db: Database, tables: ErpTables, outbox: Outbox, conditions: CloudConditions
    ) -> None:
        self.db, self.t, self.outbox, self.conditions = db, tables, outbox, conditions
        self.journal = Journal(tables, outbox)

    async def product(self, sku: str) -> Product:
        await self.conditions.enter()
        async with self.db.read() as conn:
            product = await self.t.product(conn, sku)
        if product is None:
            raise UnknownSku(sku)
        return product

    async def products(self, after: str | None, limit: int) -> list[Product]:
        await self.conditions.enter()
        async with self.db.read() as conn:
            return await self.t.products_page(conn, after, limit)

    async def locations(self) -> list[StockLocation]:
        await self.conditions.enter()
        async with self.db.read() as conn:
            return await self.t.locations_all(conn)

    async def positions(self, skus: list[str]) -> PositionsResult:
        await self.conditions.enter()
        wanted = list(dict.fromkeys(skus))
        async with self.db.read() as conn:
            known = await self.t.known_skus(conn, wanted)
            rows = await self.t.positions_of(conn, [s for s in wanted if s in known])
        by_sku: dict[str, list[InventoryPosition]] = {s: [] for s in wanted if s in known}
        for pos in rows:
            by_sku[pos.sku].append(pos)
        return PositionsResult(
            items=[SkuPositions(sku=s, positions=p) for s, p in by_sku.items()],
            unknown_skus=[s for s in wanted if s not in known],
        )

    async def adjust(self, adjustment: StockAdjustment) -> tuple[InventoryPosition, bool]:
        """Book a stock adjustment once per id; returns (position after, created)."""
        await self.conditions.enter()
        try:
            return await self._adjust(adjustment)
        except IntegrityError:
            return await self._adjust(adjustment)

    async def _adjust(self, adjustment: StockAdjustment) -> tuple[InventoryPosition, bool]:
        fingerprint = content_digest(adjustment)
        async with self.db.write() as conn:
            earlier = await self.t.adjustment(conn, adjustment.adjustment_id)
            if earlier is not None:
                if earlier[0] != fingerprint:
                    raise PostingConflict(adjustment.adjustment_id)
                return earlier[1], False
            await self._check_known(conn, [(adjustment.sku, adjustment.location_id)])
            after = await self.t.move_stock(
                conn, adjustment.sku, adjustment.location_id, adjustment.delta
            )
            await self.t.insert_adjustment(conn, adjustment.adjustment_id, fingerprint, after)
            await self.outbox.add(
                conn,
                ERP_STREAM,
                envelope(
                    StockAdjusted(
                        sku=after.sku,
                        location_id=after.location_id,
                        delta=adjustment.delta,
                        on_hand=after.on_hand,
                        reason=adjustment.reason,
                        version=after.version,
                    ),
                    source="erp",
                    causation_id=adjustment.adjustment_id,
                ),
            )
        self.outbox.notify()
        return after, True

    async def post_order(self, posting: OrderPosting) -> tuple[PostingReceipt, bool]:
        return await self._post("order", posting, posting.total)

    async def post_refund(self, posting: RefundPosting) -> tuple[PostingReceipt, bool]:
        return await self._post("refund", posting, posting.amount)

    async def _post(
        self, kind: str, posting: OrderPosting | RefundPosting, amount: Money
    ) -> tuple[PostingReceipt, bool]:
        """Book a posting once per posting id; returns (receipt, created)."""
        await self.conditions.enter()
        return await self._post_once(kind, posting, amount)

    async def _book(
        self, kind: str, posting: OrderPosting | RefundPosting, amount: Money
    ) -> tuple[PostingReceipt, bool]:
        async with self.db.write() as conn:
            (booked,) = await self.journal.book(conn, [(kind, posting, amount)])
        self.outbox.notify()
        if isinstance(booked, ErpError):
            raise booked
        return booked

    async def _post_once(
        self, kind: str, posting: OrderPosting | RefundPosting, amount: Money
    ) -> tuple[PostingReceipt, bool]:
        try:
            return await self._book(kind, posting, amount)
        except IntegrityError:
            # Two posters raced with the same id (PostgreSQL, several replicas): the loser
            # now finds the winner's posting and answers as a replay or a conflict.
            return await self._book(kind, posting, amount)

    async def post_batch(self, batch: PostingBatch) -> PostingBatchResult:
        """Book each posting of the batch as if it came alone, all in one transaction (a
        refused posting writes nothing, so it leaves the others as they are)."""
        await self.conditions.enter()
        items: list[Item] = [
            *(("order", p, p.total) for p in batch.orders),
            *(("refund", p, p.amount) for p in batch.refunds),
        ]
        outcomes: list[tuple[PostingReceipt, bool] | ErpError]
        try:
            async with self.db.write() as conn:
                outcomes = await self.journal.book(conn, items)
        except IntegrityError:
            # A replica booked one of them meanwhile (PostgreSQL): the whole transaction is
            # undone; book them one by one, each finding the winner's posting as a replay.
            outcomes = []
            for item in items:
                try:
                    outcomes.append(await self._post_once(*item))
                except ErpError as exc:
                    outcomes.append(exc)
        self.outbox.notify()
        results = [
            BatchedPosting(
                posting_id=posting.posting_id,
                status=outcome.status,  # type: ignore[arg-type]
                problem=outcome.problem(),
            )
            if isinstance(outcome, ErpError)
            else BatchedPosting(
                posting_id=posting.posting_id,
                status=201 if outcome[1] else 200,
                receipt=outcome[0],
            )
            for (_, posting, _), outcome in zip(items, outcomes, strict=True)
        ]
        return PostingBatchResult(
            results=results,
            booked=sum(r.status == 201 for r in results),
            replayed=sum(r.status == 200 for r in results),
            refused=sum(r.status >= 400 for r in results),
        )

    async def _check_known(self, conn: AsyncConnection, refs: list[tuple[str, str]]) -> None:
        known_skus = await self.t.known_skus(conn, sorted({s for s, _ in refs}))
        known_locations = await self.t.known_locations(conn, sorted({loc for _, loc in refs}))
        check_refs(refs, known_skus, known_locations)

    async def posting(self, posting_id: str) -> PostingRecord:
        await self.conditions.enter()
        async with self.db.read() as conn:
            records = await self.t.postings_by_id(conn, [posting_id])
        if not records:
            raise UnknownPosting(posting_id)
        return records[0]

    async def postings(
        self,
        *,
        order_id: str | None,
        sku: str | None,
        kind: str | None,
        after: str | None,
        limit: int,
    ) -> list[PostingRecord]:
        await self.conditions.enter()
        async with self.db.read() as conn:
            ids = await self.t.posting_ids(
                conn, order_id=order_id, sku=sku, kind=kind, after=after, limit=limit
            )
            return await self.t.postings_by_id(conn, ids)

    async def totals(self, sku: str) -> PostingTotals:
        await self.conditions.enter()
        async with self.db.read() as conn:
            if not await self.t.known_skus(conn, [sku]):
                raise UnknownSku(sku)
            by_kind = await self.t.totals(conn, sku)
        orders = by_kind.get("order", (0, 0))
        refunds = by_kind.get("refund", (0, 0))
        return PostingTotals(
            sku=sku,
            order_postings=orders[0],
            ordered_units=orders[1],
            refund_postings=refunds[0],
            refunded_units=refunds[1],
        )
