"""Returns: of an online order (online, or at a store) or of a store sale (by its receipt).

Intake checks eligibility and records the return, with its idempotent response, in one
transaction: the source is returnable (an order the customer has, a sale), within the return
window, and no line returns more than was bought minus what earlier returns took back (the
check and the insert hold a lock on the source, so two returns at once cannot both take
the last unit). Then a saga, durable like checkout's, settles it: refund, points,
restock (`services/orders/return_saga.py`).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import insert, select, text

from contracts.events import ORDERS_STREAM, ReturnStatusChanged, envelope
from contracts.models import Money, OrderLine, RecordedTransaction, Return, ReturnLine
from services.kit.errors import Conflict, Forbidden
from services.kit.storage import as_utc
from services.orders.errors import NotReturnable, ReturnWindowClosed, UnknownOrder, UnknownReturn
from services.orders.idempotency import KeyedResponse, earlier_response, fingerprint
from services.orders.leases import holder
from services.orders.ownership import is_operator, owns, principal_of, shop_customer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from contracts.models import ReturnRequest, SaleLine
    from services.kit.events import Outbox
    from services.kit.identity import Identity
    from services.kit.storage import Database
    from services.orders.downstream import Downstream
    from services.orders.return_saga import ReturnDriver
    from services.orders.store import OrderTables

__all__ = ["RETURN_LINES", "ReturnsService", "return_event", "return_view"]

_encoder = msgspec.json.Encoder()
RETURN_LINES = msgspec.json.Decoder(list[ReturnLine])
_order_lines = msgspec.json.Decoder(list[OrderLine])
#: The one rule for refunds of an online order: units are refunded only once the customer
#: has them (delivered, or collected at the store), at most as many as were delivered minus
#: those returned before. Both states are ends of the lifecycle (lifecycle.TRANSITIONS): an
#: order that can be returned can no longer be cancelled, and one that can be cancelled
#: (confirmed, posted, ready for pick-up, refunded whole by its cancellation) cannot be
#: returned. So a return and a cancellation never both refund an order, however they race:
#: each checks the status under the order's lock, and the two sets never meet.
RETURNABLE = frozenset({"delivered", "collected"})


class _Source(msgspec.Struct, kw_only=True):
    """What was bought: an order or a store sale, as the return needs it."""

    kind: str
    id: str
    customer: str
    bought_at: datetime
    #: sku → (quantity, unit price, the line's discount, location)
    lines: dict[str, tuple[int, Money, int, str]]
    member_id: str | None
    total: int
    points: int


class ReturnsService:
    def __init__(
        self,
        db: Database,
        tables: OrderTables,
        outbox: Outbox,
        downstream: Downstream,
        driver: ReturnDriver,
        *,
        window_days: int,
    ) -> None:
        self.db, self.t, self.outbox, self.ds, self.driver = db, tables, outbox, downstream, driver
        self.window = timedelta(days=window_days)

    # intake

    async def _order_source(
        self, conn: AsyncConnection, order_id: str, identity: Identity
    ) -> _Source:
        row = (
            await conn.execute(select(self.t.orders).where(self.t.orders.c.order_id == order_id))
        ).first()
        mine = row is not None and row.partner_id is None and owns(row, identity)
        if row is None or not (mine or identity.store_id is not None or is_operator(identity)):
            raise UnknownOrder(order_id)  # any store takes back online orders
        if row.status not in RETURNABLE:
            raise Conflict(
                f"order {order_id} is {row.status}: an order is returned once the customer "
                "has it (delivered or collected); cancel one that is not yet"
            )
        lines = _order_lines.decode(row.lines)
        return _Source(
            kind="order",
            id=order_id,
            customer=row.customer,
            bought_at=as_utc(row.created_at),
            lines={ln.sku: (ln.quantity, ln.unit_price, 0, ln.location_id or "") for ln in lines},
            member_id=row.member_id,
            total=row.total_amount,
            points=row.points,
        )

    async def _receipt_source(self, receipt: str, identity: Identity) -> _Source:
        if identity.store_id is None and not is_operator(identity):
            raise Forbidden("a store sale is returned at a store, by its till")
        tx: RecordedTransaction = await self.ds.receipt(receipt)
        if tx.transaction.kind != "sale":
            raise Conflict(f"{receipt} is not a sale")
        # A SKU rung up on several lines, at several prices, is one line here, worth what
        # was paid for all of them: at the highest unit price, the rest as its discount
        # (never negative, and the units' refunds together are exactly what they cost).
        by_sku: dict[str, list[SaleLine]] = {}
        for ln in tx.transaction.lines:
            by_sku.setdefault(ln.sku, []).append(ln)
        lines: dict[str, tuple[int, Money, int, str]] = {}
        for sku, rung in by_sku.items():
            qty = sum(ln.quantity for ln in rung)
            price = max((ln.unit_price for ln in rung), key=lambda money: money.amount)
            paid = sum(ln.quantity * ln.unit_price.amount - ln.discount for ln in rung)
            lines[sku] = (qty, price, qty * price.amount - paid, tx.transaction.store_id)
        return _Source(
            kind="receipt",
            id=receipt.lower(),
            customer=tx.transaction.member_id or "store-customer",
            bought_at=tx.transaction.occurred_at,
            lines=lines,
            member_id=tx.transaction.member_id,
            total=tx.total.amount,
            points=0,
        )

    async def _returned(self, conn: AsyncConnection, source_id: str) -> Counter[str]:
        rows = await conn.execute(
            select(self.t.returns.c.lines).where(self.t.returns.c.source_id == source_id)
        )
        taken: Counter[str] = Counter()
        for (raw,) in rows:
            for line in RETURN_LINES.decode(raw):
                taken[line.sku] += line.quantity
        return taken

    def _price(
        self, data: ReturnRequest, source: _Source, taken: Counter[str], store_id: str | None
    ) -> list[ReturnLine]:
        errors: list[dict[str, str]] = []
        asked: Counter[str] = Counter()
        for line in data.lines:
            asked[line.sku] += line.quantity
        out: list[ReturnLine] = []
        for n, line in enumerate(data.lines):
            bought = source.lines.get(line.sku)
            if bought is None:
                errors.append({"field": f"lines[{n}].sku", "message": "not in the purchase"})
                continue
            qty, price, discount, location = bought
            if asked[line.sku] > qty - taken[line.sku]:
                errors.append(
                    {
                        "field": f"lines[{n}].quantity",
                        "message": f"{qty} bought, {taken[line.sku]} returned before",
                    }
                )
                continue
            out.append(
                ReturnLine(
                    sku=line.sku,
                    quantity=line.quantity,
                    disposition=line.disposition,
                    unit_price=price,
                    discount=discount * line.quantity // qty,
                    location_id=store_id or location,
                )
            )
        if errors:
            raise NotReturnable("these lines cannot be returned", errors=errors)
        return out

    async def accept(self, data: ReturnRequest, key: str, identity: Identity) -> KeyedResponse:
        principal = "returns|" + principal_of(identity)
        digest = fingerprint(data)
        earlier = await self._earlier(principal, key, digest)
        if earlier is not None:
            return earlier
        receipt = await self._receipt_source(data.receipt, identity) if data.receipt else None
        return_id = f"ret-{uuid.uuid4().hex}"
        if receipt is None:
            return await self._record(data, key, principal, digest, return_id, None, identity)
        # A store sale's units are taken at the POS first, where the tills' returns are
        # counted under the sale's lock; given back if this return is not recorded after all.
        await self.ds.claim_receipt(receipt.id, return_id, data.lines)
        recorded: KeyedResponse | None = None
        try:
            recorded = await self._record(
                data, key, principal, digest, return_id, receipt, identity
            )
            return recorded
        finally:
            if recorded is None or recorded.replayed:  # refused, or another request's return
                await asyncio.shield(self.ds.release_claim(receipt.id, return_id))

    async def _record(
        self,
        data: ReturnRequest,
        key: str,
        principal: str,
        digest: str,
        return_id: str,
        receipt: _Source | None,
        identity: Identity,
    ) -> KeyedResponse:
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            source_id = data.order_id or (receipt.id if receipt else "")
            if not self.db.is_sqlite:  # SQLite: the single writer serializes intakes already
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": source_id}
                )
            again = await earlier_response(conn, self.t.idempotency, principal, key, digest)
            if again is not None:
                return again
            source = receipt or await self._order_source(conn, source_id, identity)
            if now - source.bought_at > self.window:
                raise ReturnWindowClosed(
                    f"the return window of {self.window.days} days has closed",
                    errors=[
                        {
                            "field": "order_id" if data.order_id else "receipt",
                            "message": "bought too long ago",
                        }
                    ],
                )
            taken = await self._returned(conn, source.id)
            lines = self._price(data, source, taken, identity.store_id)
            amount = sum(ln.quantity * ln.unit_price.amount - ln.discount for ln in lines)
            points_back = math.floor(source.points * amount / source.total) if source.total else 0
            row = {
                "return_id": return_id,
                "source_kind": source.kind,
                "source_id": source.id,
                "customer": source.customer,
                "store_id": identity.store_id,
                "status": "accepted",
                "stage": "refund",
                "lines": _encoder.encode(lines),
                "amount": amount,
                "currency": lines[0].unit_price.currency,
                "member_id": source.member_id,
                "points_back": points_back,
                "reason": data.reason,
                "lease_until": now + timedelta(seconds=self.driver.lease_s),
                "lease_holder": holder(),
                "created_at": now,
                "updated_at": now,
            }
            await conn.execute(insert(self.t.returns).values(**row))
            view = return_view(msgspec.convert(row, type=_Row, from_attributes=False))
            body = _encoder.encode(view)
            await conn.execute(
                insert(self.t.idempotency).values(
                    principal=principal,
                    key=key,
                    fingerprint=digest,
                    order_id=return_id,
                    status_code=201,
                    body=body,
                    created_at=now,
                )
            )
            await self.outbox.add(conn, ORDERS_STREAM, return_event(view))
        self.outbox.notify()
        self.driver.start(return_id)
        return KeyedResponse(201, body, False)

    async def _earlier(self, principal: str, key: str, digest: str) -> KeyedResponse | None:
        async with self.db.read() as conn:
            return await earlier_response(conn, self.t.idempotency, principal, key, digest)

    # reads

    async def get(self, return_id: str, identity: Identity) -> Return:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(self.t.returns).where(self.t.returns.c.return_id == return_id)
                )
            ).first()
        visible = row is not None and (
            is_operator(identity)
            or row.customer == shop_customer(identity)
            or (identity.store_id is not None and row.store_id == identity.store_id)
        )
        if row is None or not visible:
            raise UnknownReturn(return_id)
        return return_view(row)

    async def of_order(self, order_id: str, identity: Identity) -> list[Return]:
        """An order's returns, oldest first (operators and customer service)."""
        if not is_operator(identity):
            raise Forbidden("the returns of an order are listed for operators")
        r = self.t.returns.c
        async with self.db.read() as conn:
            query = (
                select(self.t.returns)
                .where(r.source_kind == "order", r.source_id == order_id)
                .order_by(r.created_at)
            )
            rows = (await conn.execute(query)).all()
        return [return_view(row) for row in rows]


class _Row(msgspec.Struct, kw_only=True):
    return_id: str
    source_kind: str
    source_id: str
    customer: str
    store_id: str | None
    status: str
    lines: bytes
    amount: int
    currency: str
    member_id: str | None
    points_back: int
    reason: str | None
    created_at: datetime
    updated_at: datetime


def return_view(row: Any) -> Return:
    return Return(
        return_id=row.return_id,
        status=row.status,
        customer=row.customer,
        lines=RETURN_LINES.decode(row.lines),
        refund=Money(row.amount, row.currency),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        order_id=row.source_id if row.source_kind == "order" else None,
        receipt=row.source_id if row.source_kind == "receipt" else None,
        store_id=row.store_id,
        member_id=row.member_id,
        points_returned=row.points_back,
        reason=row.reason,
    )


def return_event(view: Return) -> Any:
    return envelope(
        ReturnStatusChanged(
            return_id=view.return_id,
            status=view.status,
            customer=view.customer,
            order_id=view.order_id,
            receipt=view.receipt,
            store_id=view.store_id,
        ),
        source="orders",
        causation_id=view.return_id,
    )
