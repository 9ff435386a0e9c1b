"""The reference ERP's journal: postings booked in a caller's transaction, one or many.

Each posting is booked as if it came alone: idempotent by its id (the same content again
is a replay, other content a conflict), its amounts and references checked, a document
number, the stock of an order posting moved, and an event with the positions as they
stood right after it. Many postings take a handful of statements in all, not per posting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from contracts.events import (
    ERP_STREAM,
    Envelope,
    OrderPostingBooked,
    PositionAfter,
    RefundPostingBooked,
    envelope,
)
from contracts.models import Money
from contracts.postings import (
    OrderPosting,
    PostingLine,
    PostingReceipt,
    PostingRecord,
    RefundPosting,
)
from services.erp.errors import ErpError, InvalidPosting, PostingConflict

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.erp.store import ErpTables
    from services.kit.events import Outbox

__all__ = ["Item", "Journal", "check_refs", "content_digest", "receipt"]

_encoder = msgspec.json.Encoder()

#: a posting to book: its kind, the posting, its amount (an order's total, a refund's amount)
Item = tuple[str, OrderPosting | RefundPosting, Money]


class Fresh(NamedTuple):
    """A posting of a batch that is booked now (not a replay, not refused)."""

    at: int
    kind: str
    posting: OrderPosting | RefundPosting
    amount: Money
    fingerprint: bytes


def content_digest(value: msgspec.Struct) -> bytes:
    return hashlib.sha256(_encoder.encode(value)).digest()


class Journal:
    def __init__(self, tables: ErpTables, outbox: Outbox) -> None:
        self.t, self.outbox = tables, outbox

    async def book(
        self, conn: AsyncConnection, items: Sequence[Item]
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
        fresh: list[Fresh] = []
        replays: dict[int, str] = {}
        for index, (kind, posting, amount) in enumerate(items):
            fingerprint = content_digest(posting)
            earlier = booked.get(posting.posting_id)
            outcome: ErpError | None = None
            try:
                if earlier is not None:
                    if earlier != fingerprint:
                        raise PostingConflict(posting.posting_id)
                    replays[index] = posting.posting_id
                else:
                    check_amounts(posting.lines, amount)
                    refs = [(line.sku, line.location_id) for line in posting.lines]
                    check_refs(refs, known_skus, known_locations)
                    booked[posting.posting_id] = fingerprint
                    fresh.append(Fresh(index, kind, posting, amount, fingerprint))
            except ErpError as exc:
                outcome = exc
            outcomes.append(outcome)
        records = await self._numbered(conn, fresh)
        await self.t.insert_postings(
            conn, [(r, f.fingerprint) for r, f in zip(records, fresh, strict=True)]
        )
        await self.outbox.add_all(conn, ERP_STREAM, await self._moved(conn, records))
        for record, f in zip(records, fresh, strict=True):
            outcomes[f.at] = (receipt(record), True)
        if replays:
            found = await self.t.postings_by_id(conn, sorted(set(replays.values())))
            by_id = {r.posting_id: r for r in found}
            for index, posting_id in replays.items():
                outcomes[index] = (receipt(by_id[posting_id]), False)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _numbered(self, conn: AsyncConnection, fresh: Sequence[Fresh]) -> list[PostingRecord]:
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


def check_refs(
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


def check_amounts(lines: Sequence[PostingLine], amount: Money) -> None:
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


def receipt(record: PostingRecord) -> PostingReceipt:
    return PostingReceipt(
        posting_id=record.posting_id,
        kind=record.kind,
        order_id=record.order_id,
        document_number=record.document_number,
        booked_at=record.booked_at,
    )
