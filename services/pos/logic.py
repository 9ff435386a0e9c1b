"""Store sales captured at tills, possibly offline, synced in batches exactly once.

A batch answers per transaction: accepted, duplicate (the same id with the same content,
already stored), or rejected with the reason (the same id with other content, a sequence
number the till already used, amounts that do not add up). Accepted transactions and their
events are written in one database transaction, so a crash after the commit loses no event
and a crash before it stores nothing: the till sends again and gets the same answers.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from contracts.events import (
    POS_STREAM,
    SaleLinePosted,
    StoreDaySummarized,
    envelope,
)
from contracts.models import (
    BatchResult,
    DayClose,
    Money,
    RecordedTransaction,
    SequenceGap,
    TillTransaction,
    TransactionBatch,
    TransactionOutcome,
    TransactionPage,
)
from services.kit.errors import Conflict
from services.pos.errors import NotYourStore, UnknownTransaction
from services.pos.intake import IntakeRules, Rejected, check, check_return, recorded, total

if TYPE_CHECKING:
    from services.kit.catalogue import Catalogue
    from services.kit.events import Outbox
    from services.kit.identity import Identity
    from services.kit.storage import Database
    from services.pos.store import PosTables

__all__ = ["IntakeRules", "PosService", "Rejected", "check_store"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TillTransaction)


def check_store(identity: Identity, store_id: str) -> None:
    """Tills act for their own store only (the `store_id` the gateway vouches for)."""
    if identity.is_admin or identity.kind == "service":
        return
    if identity.store_id != store_id:
        raise NotYourStore(store_id)


class PosService:
    def __init__(
        self,
        db: Database,
        tables: PosTables,
        outbox: Outbox,
        posting_mode: str = "transaction",
        rules: IntakeRules | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.db, self.t, self.outbox, self.posting_mode = db, tables, outbox, posting_mode
        self.rules = rules or IntakeRules()
        self.catalogue = catalogue

    async def ingest(
        self, batch: TransactionBatch, identity: Identity, correlation_id: str | None = None
    ) -> BatchResult:
        for tx in batch.transactions:
            check_store(identity, tx.store_id)  # before anything is stored
        unknown: set[str] = set()
        if self.catalogue is not None:  # cached reads, outside the write transaction
            skus = {line.sku for tx in batch.transactions for line in tx.lines}
            unknown = await self.catalogue.unknown(skus)
        for _ in range(3):
            try:
                return await self._ingest(batch, correlation_id, unknown)
            except IntegrityError:
                # Two uploads of the same transactions raced (several replicas on
                # PostgreSQL): again, and the loser now sees duplicates.
                continue
        return await self._ingest(batch, correlation_id, unknown)

    async def _ingest(
        self, batch: TransactionBatch, correlation_id: str | None, unknown: set[str]
    ) -> BatchResult:
        outcomes: list[TransactionOutcome] = []
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            ids = [tx.transaction_id.lower() for tx in batch.transactions]
            stored = await self.t.existing(conn, ids)
            used: dict[str, set[tuple[str, int]]] = {}
            for store_id in {tx.store_id for tx in batch.transactions}:
                used[store_id] = await self.t.used_sequences(
                    conn,
                    store_id,
                    [
                        (tx.till_id, tx.sequence)
                        for tx in batch.transactions
                        if tx.store_id == store_id
                    ],
                )
            rows: list[dict[str, Any]] = []
            seen: dict[str, bytes] = {}
            # sales accepted from this batch, and units returned by it, per sale: a return
            # may follow its sale in the same batch
            pending: dict[str, TillTransaction] = {}
            returned_now: defaultdict[str, Counter[str]] = defaultdict(Counter)
            for tx in batch.transactions:
                tid = tx.transaction_id.lower()
                body = _encoder.encode(tx)
                fingerprint = hashlib.sha256(body).digest()
                earlier = stored.get(tid) or seen.get(tid)
                if earlier is not None:
                    if earlier == fingerprint:
                        outcomes.append(TransactionOutcome(transaction_id=tid, status="duplicate"))
                    else:
                        outcomes.append(
                            TransactionOutcome(
                                transaction_id=tid,
                                status="rejected",
                                reason="this id was stored with other content",
                            )
                        )
                    continue
                if (tx.till_id, tx.sequence) in used[tx.store_id]:
                    outcomes.append(
                        TransactionOutcome(
                            transaction_id=tid,
                            status="rejected",
                            reason=f"sequence {tx.sequence} of till {tx.till_id} is taken",
                        )
                    )
                    continue
                try:
                    check(tx, self.rules, now, unknown)
                    if tx.kind == "return":
                        await self._check_return(conn, tx, pending, returned_now)
                except Rejected as refusal:
                    outcomes.append(
                        TransactionOutcome(
                            transaction_id=tid,
                            status="rejected",
                            reason=refusal.reason,
                            code=refusal.code,
                        )
                    )
                    continue
                if tx.kind == "sale":
                    pending[tid] = tx
                else:
                    sale_id = (tx.original_transaction_id or "").lower()
                    for line in tx.lines:
                        returned_now[sale_id][line.sku] += line.quantity
                used[tx.store_id].add((tx.till_id, tx.sequence))
                seen[tid] = fingerprint
                rows.append(
                    {
                        "transaction_id": tid,
                        "store_id": tx.store_id,
                        "till_id": tx.till_id,
                        "sequence": tx.sequence,
                        "kind": tx.kind,
                        "occurred_at": tx.occurred_at,
                        "received_at": now,
                        "fingerprint": fingerprint,
                        "body": body,
                        "original_transaction_id": (tx.original_transaction_id or "").lower()
                        or None,
                    }
                )
                await self.outbox.add(
                    conn,
                    POS_STREAM,
                    envelope(
                        recorded(tid, tx),
                        source="pos",
                        correlation_id=correlation_id,
                        causation_id=tid,
                    ),
                )
                outcomes.append(TransactionOutcome(transaction_id=tid, status="accepted"))
            await self.t.insert(conn, rows)
        self.outbox.notify()
        return BatchResult(
            accepted=sum(o.status == "accepted" for o in outcomes),
            duplicates=sum(o.status == "duplicate" for o in outcomes),
            rejected=sum(o.status == "rejected" for o in outcomes),
            results=outcomes,
        )

    async def _check_return(
        self,
        conn: Any,
        tx: TillTransaction,
        pending: dict[str, TillTransaction],
        returned_now: dict[str, Counter[str]],
    ) -> None:
        """Check a return against its sale under the sale's lock (PostgreSQL; SQLite has one
        writer), so two returns of one sale racing from two replicas cannot both pass."""
        sale_id = (tx.original_transaction_id or "").lower()
        if not self.db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": sale_id})
        sale = pending.get(sale_id)
        if sale is None:
            row = await self.t.get(conn, sale_id)
            sale = _decoder.decode(row.body) if row is not None else None
        returned = Counter(returned_now.get(sale_id, Counter()))
        returned.update(await self.t.returned(conn, sale_id))  # tills' returns and claims
        check_return(tx, sale, returned)

    def _recorded(self, row: Any) -> RecordedTransaction:
        tx = _decoder.decode(row.body)
        received = (
            row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=UTC)
        )
        return RecordedTransaction(transaction=tx, total=total(tx), received_at=received)

    async def get(self, transaction_id: str, identity: Identity) -> RecordedTransaction:
        async with self.db.read() as conn:
            row = await self.t.get(conn, transaction_id.lower())
        if row is None:
            raise UnknownTransaction(transaction_id)
        check_store(identity, row.store_id)
        return self._recorded(row)

    async def returns_of(
        self, transaction_id: str, identity: Identity
    ) -> list[RecordedTransaction]:
        """The returns rung up at tills against a sale (its receipt)."""
        sale = await self.get(transaction_id, identity)  # 404, or 403 for another store's
        async with self.db.read() as conn:
            rows = await self.t.returns_of(conn, sale.transaction.transaction_id.lower())
        return [self._recorded(r) for r in rows]

    async def by_day(
        self, store_id: str, day: datetime, identity: Identity, cursor: str | None, limit: int
    ) -> TransactionPage:
        """A page of the store's transactions of the day; `next_cursor` while there are more
        (one more row is read to know)."""
        check_store(identity, store_id)
        after = None
        if cursor is not None:
            till, _, sequence = cursor.rpartition("~")
            after = (till, int(sequence))
        async with self.db.read() as conn:
            rows = await self.t.by_day(conn, store_id, day, after, limit + 1)
        items = [self._recorded(r) for r in rows[:limit]]
        last = items[-1].transaction if len(rows) > limit else None
        return TransactionPage(
            items=items, next_cursor=f"{last.till_id}~{last.sequence}" if last else None
        )

    async def gaps(self, store_id: str, identity: Identity) -> list[SequenceGap]:
        check_store(identity, store_id)
        async with self.db.read() as conn:
            found = await self.t.gaps(conn, store_id)
        return [SequenceGap(till_id=t, first_missing=a, last_missing=b) for t, a, b in found]

    # summary posting mode

    async def close_day(
        self, store_id: str, day: date, identity: Identity, correlation_id: str | None = None
    ) -> DayClose:
        """Summarize the store's transactions of the day not summarized yet, one summary per
        currency, each an event for the ERP poster. Closing again later picks up what came
        in since (a till that synced late); closing with nothing new summarizes nothing."""
        check_store(identity, store_id)
        if self.posting_mode != "daily_summary":
            raise Conflict("this POS posts every transaction to the ERP: no day to close")
        stamp = f"{store_id}.{day:%Y%m%d}."
        async with self.db.write() as conn:
            rows = await self.t.unsummarized(conn, store_id, datetime.combine(day, time(), UTC))
            groups: dict[str, list[TillTransaction]] = defaultdict(list)
            by_id: dict[str, list[str]] = defaultdict(list)
            for row in rows:
                tx = _decoder.decode(row.body)
                currency = tx.lines[0].unit_price.currency
                groups[currency].append(tx)
                by_id[currency].append(row.transaction_id)
            made = await self.t.summaries(conn, store_id, stamp)
            ids: list[str] = []
            for currency in sorted(groups):
                made += 1
                summary_id = f"{stamp}{made}"
                await self.t.mark_summarized(conn, by_id[currency], summary_id)
                txs = groups[currency]
                event = StoreDaySummarized(
                    summary_id=summary_id,
                    store_id=store_id,
                    day=day.isoformat(),
                    transactions=len(txs),
                    sales=_summed(tx for tx in txs if tx.kind == "sale"),
                    returns=_summed(tx for tx in txs if tx.kind == "return"),
                    currency=currency,
                )
                await self.outbox.add(
                    conn,
                    POS_STREAM,
                    envelope(
                        event, source="pos", correlation_id=correlation_id, causation_id=summary_id
                    ),
                )
                ids.append(summary_id)
        self.outbox.notify()
        return DayClose(
            store_id=store_id, day=day.isoformat(), transactions=len(rows), summary_ids=ids
        )


def _summed(txs: Any) -> list[SaleLinePosted]:
    """Lines of many transactions summed per SKU and unit price (discounts summed too)."""
    units: dict[tuple[str, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for tx in txs:
        for line in tx.lines:
            key = (line.sku, line.unit_price.amount, line.unit_price.currency)
            units[key][0] += line.quantity
            units[key][1] += line.discount
    return [
        SaleLinePosted(sku=sku, quantity=qty, unit_price=Money(amount, currency), discount=discount)
        for (sku, amount, currency), (qty, discount) in sorted(units.items())
    ]
