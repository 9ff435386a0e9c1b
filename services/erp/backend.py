"""The ERP adapter protocol and the reference backend behind it.

A connector to a real ERP implements `ErpBackend`. The reference backend keeps its data in
its own database and behaves like a cloud ERP: `ERP_LATENCY_MS` slows every call,
`ERP_RATE_LIMIT_RPS` answers 429 past that rate, `ERP_FAILURE_RATE` fails that share of calls
with 503.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import msgspec
from sqlalchemy.exc import IntegrityError

from contracts.events import (
    ERP_STREAM,
    Envelope,
    OrderPostingBooked,
    PositionAfter,
    RefundPostingBooked,
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
    PostingLine,
    PostingReceipt,
    PostingRecord,
    PostingTotals,
    RefundPosting,
)
from services.erp.errors import (
    ErpError,
    ErpRateLimited,
    ErpUnavailable,
    InvalidPosting,
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

_encoder = msgspec.json.Encoder()

#: a posting to book: its kind, the posting, its amount (an order's total, a refund's amount)
_Item = tuple[str, OrderPosting | RefundPosting, Money]


class _Fresh(NamedTuple):
    """A posting of a batch that is booked now (not a replay, not refused)."""

    at: int
    kind: str
    posting: OrderPosting | RefundPosting
    amount: Money
    fingerprint: bytes


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


def _fingerprint(value: msgspec.Struct) -> bytes:
    return hashlib.sha256(_encoder.encode(value)).digest()


class ReferenceErpBackend:
    def __init__(
        self, db: Database, tables: ErpTables, outbox: Outbox, conditions: CloudConditions
    ) -> None:
        self.db, self.t, self.outbox, self.conditions = db, tables, outbox, conditions

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
        fingerprint = _fingerprint(adjustment)
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
            (booked,) = await self._book_all(conn, [(kind, posting, amount)])
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
        items: list[_Item] = [
            *(("order", p, p.total) for p in batch.orders),
            *(("refund", p, p.amount) for p in batch.refunds),
        ]
        outcomes: list[tuple[PostingReceipt, bool] | ErpError]
        try:
            async with self.db.write() as conn:
                outcomes = await self._book_all(conn, items)
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

    async def _book_all(
        self, conn: AsyncConnection, items: Sequence[_Item]
    ) -> list[tuple[PostingReceipt, bool] | ErpError]:
        """Book postings in `conn`'s transaction, in their order, each as if it came alone:
        (receipt, created), or the error that refuses it (found before anything is written).
        A handful of statements for the whole lot, not a handful per posting."""
        booked = await self.t.fingerprints(conn, [p.posting_id for _, p, _ in items])
        lines = [line for _, p, _ in items for line in p.lines]
        known_skus = await self.t.known_skus(conn, sorted({line.sku for line in lines}))
        known_locations = await self.t.known_locations(
            conn, sorted({line.location_id for line in lines})
        )
        outcomes: list[tuple[PostingReceipt, bool] | ErpError | None] = []
        fresh: list[_Fresh] = []
        replays: dict[int, str] = {}
        for index, (kind, posting, amount) in enumerate(items):
            fingerprint = _fingerprint(posting)
            earlier = booked.get(posting.posting_id)
            outcome: ErpError | None = None
            try:
                if earlier is not None:
                    if earlier != fingerprint:
                        raise PostingConflict(posting.posting_id)
                    replays[index] = posting.posting_id
                else:
                    _check_amounts(posting.lines, amount)
                    refs = [(line.sku, line.location_id) for line in posting.lines]
                    _check_refs(refs, known_skus, known_locations)
                    booked[posting.posting_id] = fingerprint
                    fresh.append(_Fresh(index, kind, posting, amount, fingerprint))
            except ErpError as exc:
                outcome = exc
            outcomes.append(outcome)
        records = await self._numbered(conn, fresh)
        await self.t.insert_postings(
            conn, [(r, f.fingerprint) for r, f in zip(records, fresh, strict=True)]
        )
        await self.outbox.add_all(conn, ERP_STREAM, await self._moved(conn, records))
        for record, f in zip(records, fresh, strict=True):
            outcomes[f.at] = (_receipt(record), True)
        if replays:
            found = await self.t.postings_by_id(conn, sorted(set(replays.values())))
            by_id = {r.posting_id: r for r in found}
            for index, posting_id in replays.items():
                outcomes[index] = (_receipt(by_id[posting_id]), False)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _numbered(
        self, conn: AsyncConnection, fresh: Sequence[_Fresh]
    ) -> list[PostingRecord]:
        """The records of the postings to book, with their document numbers."""
        first: dict[str, int] = {}
        for kind in ("order", "refund"):
            count = sum(1 for f in fresh if f.kind == kind)
            if count:
                first[kind] = await self.t.next_numbers(conn, kind, count)
        now = datetime.now(UTC)
        records = []
        for f in fresh:
            number = first[f.kind]
            first[f.kind] += 1
            records.append(
                PostingRecord(
                    posting_id=f.posting.posting_id,
                    kind=f.kind,  # type: ignore[arg-type]
                    order_id=f.posting.order_id,
                    document_number=f"{'SO' if f.kind == 'order' else 'CR'}-{number:08d}",
                    booked_at=now,
                    occurred_at=f.posting.occurred_at.astimezone(UTC),
                    amount=f.amount,
                    lines=list(f.posting.lines),
                )
            )
        return records

    async def _moved(
        self, conn: AsyncConnection, records: Sequence[PostingRecord]
    ) -> list[Envelope[Any]]:
        """Move the stock of the order postings; the event of each posting, with the
        positions as they stood right after it (as if booked one after the other)."""
        moves = [
            (line.sku, line.location_id, -line.quantity)
            for r in records
            if r.kind == "order"
            for line in r.lines
        ]
        final = await self.t.move_stock_many(conn, moves)
        # walk forward from where each position stood before the first of these moves
        state = {pair: [on_hand, version] for pair, (on_hand, version) in final.items()}
        for sku, location, delta in moves:
            state[(sku, location)][0] -= delta
            state[(sku, location)][1] -= 1
        events: list[Envelope[Any]] = []
        for record in records:
            event: OrderPostingBooked | RefundPostingBooked
            if record.kind == "order":
                after: dict[tuple[str, str], PositionAfter] = {}
                for line in record.lines:
                    position = state[(line.sku, line.location_id)]
                    position[0] -= line.quantity
                    position[1] += 1
                    after[(line.sku, line.location_id)] = PositionAfter(
                        sku=line.sku,
                        location_id=line.location_id,
                        on_hand=position[0],
                        version=position[1],
                    )
                event = OrderPostingBooked(
                    posting_id=record.posting_id,
                    order_id=record.order_id,
                    lines=record.lines,
                    total=record.amount,
                    positions=list(after.values()),
                )
            else:
                event = RefundPostingBooked(
                    posting_id=record.posting_id,
                    order_id=record.order_id,
                    lines=record.lines,
                    amount=record.amount,
                )
            events.append(envelope(event, source="erp", causation_id=record.posting_id))
        return events

    async def _check_known(self, conn: AsyncConnection, refs: list[tuple[str, str]]) -> None:
        known_skus = await self.t.known_skus(conn, sorted({s for s, _ in refs}))
        known_locations = await self.t.known_locations(conn, sorted({loc for _, loc in refs}))
        _check_refs(refs, known_skus, known_locations)

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


def _check_refs(
    refs: Sequence[tuple[str, str]], known_skus: set[str], known_locations: set[str]
) -> None:
    skus = sorted({s for s, _ in refs})
    locations = sorted({loc for _, loc in refs})
    errors = [
        {"field": "sku", "message": f"unknown SKU {s}"} for s in skus if s not in known_skus
    ] + [
        {"field": "location_id", "message": f"unknown location {loc}"}
        for loc in locations
        if loc not in known_locations
    ]
    if errors:
        raise InvalidPosting("the posting names SKUs or locations the ERP does not know", errors)


def _check_amounts(lines: Sequence[PostingLine], amount: Money) -> None:
    currency = amount.currency
    errors = [
        {"field": f"lines[{n}].unit_price.currency", "message": f"expected {currency}"}
        for n, line in enumerate(lines)
        if line.unit_price.currency != currency
    ]
    total = sum(line.quantity * line.unit_price.amount - line.discount for line in lines)
    if not errors and total != amount.amount:
        errors.append(
            {"field": "amount", "message": f"lines add up to {total}, not {amount.amount}"}
        )
    if errors:
        raise InvalidPosting("the posting's amounts do not add up", errors)


def _receipt(record: PostingRecord) -> PostingReceipt:
    return PostingReceipt(
        posting_id=record.posting_id,
        kind=record.kind,
        order_id=record.order_id,
        document_number=record.document_number,
        booked_at=record.booked_at,
    )
