"""Orders: checkout with an Idempotency-Key, reads with ownership, lifecycle moves, and what
a confirmed or cancelled order sets off (the ERP posting, the cancellation).

Idempotency (draft-ietf-httpapi-idempotency-key-header): a key is scoped to the caller. The
first request with a key stores the key, a fingerprint of its body and the order it creates,
in the same transaction as the order; its response is stored when the saga ends. A replay
gets that response; the same key with another body is 422; the same key while the first
request still runs is 409.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import and_, or_, select, update

from contracts.models import CheckoutRequest, Money, Order, OrderLine
from services.kit.catalogue import CatalogueUnavailable
from services.kit.errors import Forbidden, Unavailable
from services.kit.failpoints import failpoint
from services.kit.storage import as_utc
from services.orders.creation import Created, Creations, NewOrder
from services.orders.downstream import NotNow
from services.orders.errors import (
    BadOrder,
    IdempotencyInFlight,
    IllegalTransition,
    SagaStalled,
    UnknownOrder,
    WrongPickupCode,
)
from services.orders.idempotency import KeyedResponse, KeyLookups, fingerprint
from services.orders.leases import holder
from services.orders.lifecycle import can_move, move
from services.orders.ownership import (
    check_customer,
    customer_for,
    is_operator,
    owns,
    partner_problems,
    principal_of,
    shop_customer,
)
from services.orders.rules import CheckoutRules
from services.orders.views import view_in

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.catalogue import Catalogue
    from services.kit.events import Outbox
    from services.kit.identity import Identity
    from services.kit.storage import Database
    from services.orders.downstream import Downstream
    from services.orders.gate import CheckoutGate
    from services.orders.saga import SagaDriver
    from services.orders.store import OrderTables
    from services.orders.views import PickupCodes

__all__ = ["OrdersService"]

log = logging.getLogger("retailmesh.orders")
_encoder = msgspec.json.Encoder()
MAX_PICKUP_FAILURES = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OrdersService:
    def __init__(
        self,
        db: Database,
        tables: OrderTables,
        outbox: Outbox,
        catalogue: Catalogue,
        driver: SagaDriver,
        downstream: Downstream,
        codes: PickupCodes,
        rules: CheckoutRules,
        gate: CheckoutGate,
    ) -> None:
        self.db, self.t, self.outbox = db, tables, outbox
        self.catalogue, self.driver, self.ds, self.codes = catalogue, driver, downstream, codes
        self.rules, self.gate = rules, gate
        self.keys = KeyLookups(db, tables.idempotency)
        self.creations = Creations(db, tables, outbox)

    # checkout

    async def _price(
        self, data: CheckoutRequest, partner_id: str | None
    ) -> tuple[list[OrderLine], Money]:
        errors = self.rules.problems(
            data.channel,
            [line.quantity for line in data.lines],
            data.fulfilment,
            data.pickup_store_id or None,
        )
        seen: set[str] = set()
        lines: list[OrderLine] = []
        for n, line in enumerate(data.lines):
            if line.sku in seen:
                errors.append({"field": f"lines[{n}].sku", "message": "the SKU is on two lines"})
                continue
            seen.add(line.sku)
            try:
                product = await self.catalogue.product(line.sku)
            except CatalogueUnavailable as exc:
                raise Unavailable(str(exc), headers={"Retry-After": "5"}) from None
            if product is None or not product.active:
                errors.append({"field": f"lines[{n}].sku", "message": f"{line.sku} is not sold"})
                continue
            lines.append(OrderLine(sku=line.sku, quantity=line.quantity, unit_price=product.price))
        if not errors and len({line.unit_price.currency for line in lines}) > 1:
            errors.append({"field": "lines", "message": "the lines are priced in two currencies"})
        if data.redeem and data.member_id and data.redeem.member_id != data.member_id:
            errors.append({"field": "member_id", "message": "not the redemption's member"})
        errors += partner_problems(data, partner_id)
        if errors:
            raise BadOrder("the order cannot be taken as it is", errors=errors)
        total = sum(line.quantity * line.unit_price.amount for line in lines)
        return lines, Money(total, lines[0].unit_price.currency)

    async def checkout(self, data: CheckoutRequest, key: str, identity: Identity) -> KeyedResponse:
        check_customer(identity)
        principal = principal_of(identity)
        digest = fingerprint(data)
        earlier = await self._earlier(principal, key, digest)
        if earlier is not None:
            return earlier
        lines, total = await self._price(data, identity.partner_id)
        order_id = f"ord-{uuid.uuid4().hex}"
        await self.gate.admit(order_id, data)
        try:
            return await self._checkout(data, key, identity, order_id, lines, total, digest)
        finally:
            self.gate.done(order_id)

    async def _checkout(
        self,
        data: CheckoutRequest,
        key: str,
        identity: Identity,
        order_id: str,
        lines: list[OrderLine],
        total: Money,
        digest: str,
    ) -> KeyedResponse:
        principal = principal_of(identity)
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "order_id": order_id,
            "customer": customer_for(data, identity),
            "partner_id": identity.partner_id,
            "channel": data.channel,
            "fulfilment": data.fulfilment,
            "pickup_store_id": data.pickup_store_id or None,
            "status": "pending",
            "stage": "reserve",
            "lines": _encoder.encode(lines),
            "total_amount": total.amount,
            "currency": total.currency,
            "payment_reference": data.payment_reference,
            "member_id": data.redeem.member_id if data.redeem else data.member_id,
            "points": data.redeem.points if data.redeem else 0,
            "erp_posted": False,
            "lease_until": now + timedelta(seconds=self.driver.lease_s),
            "lease_holder": holder(),
            "pickup_failures": 0,
            "created_at": now,
            "updated_at": now,
        }
        created = Created(
            order_id=order_id,
            customer=values["customer"],
            channel=data.channel,
            fulfilment=data.fulfilment,
            pickup_store_id=data.pickup_store_id or None,
        )
        key_row = {
            "principal": principal,
            "key": key,
            "fingerprint": digest,
            "order_id": order_id,
            "created_at": now,
        }
        if not await self.creations.create(NewOrder(key=key_row, order=values, created=created)):
            # the same key raced in from another request: answer as that one's replay
            earlier = await self._earlier(principal, key, digest)
            if earlier is None:  # taken by a key purged since (a day old): ask again
                raise IdempotencyInFlight
            return earlier
        self.outbox.notify()
        failpoint("orders.checkout.created")
        try:
            await self.driver.drive(order_id, started=True)
        except NotNow:
            raise SagaStalled(order_id) from None
        result = await self._earlier(principal, key, digest)
        assert result is not None
        return KeyedResponse(result.status, result.body, False)

    async def _earlier(self, principal: str, key: str, digest: str) -> KeyedResponse | None:
        return await self.keys.earlier(principal, key, digest)

    async def purge_keys(self, ttl: timedelta, now: datetime | None = None) -> int:
        """Forget keys older than `ttl` whose first response is stored (the draft lets a
        server expire keys; a key in flight is kept until its saga ends)."""
        i = self.t.idempotency.c
        cutoff = (now or datetime.now(UTC)) - ttl
        async with self.db.write() as conn:
            result = await conn.execute(
                self.t.idempotency.delete().where(i.created_at < cutoff, i.status_code.is_not(None))
            )
        return int(result.rowcount or 0)

    # reads

    def _visible(self, row: Any, identity: Identity) -> bool:
        if is_operator(identity):
            return True
        if identity.store_id is not None and row.pickup_store_id == identity.store_id:
            return True
        if row.fulfilment == "ship" and "orders:fulfil" in identity.scopes:
            return True  # the warehouse that ships it
        return owns(row, identity)

    async def _row(self, conn: AsyncConnection, order_id: str, identity: Identity) -> Any:
        row = (
            await conn.execute(select(self.t.orders).where(self.t.orders.c.order_id == order_id))
        ).first()
        if row is None or not self._visible(row, identity):
            raise UnknownOrder(order_id)  # the same answer for "not yours": nothing to probe
        return row

    def _for_customer(self, row: Any, identity: Identity) -> bool:
        return owns(row, identity)

    async def get(self, order_id: str, identity: Identity) -> Order:
        async with self.db.read() as conn:
            row = await self._row(conn, order_id, identity)
            return await view_in(conn, self.t, row, self.codes, self._for_customer(row, identity))

    async def _page(
        self, where: Any, cursor: str | None, limit: int, identity: Identity
    ) -> tuple[list[Order], str | None]:
        o = self.t.orders.c
        query = select(self.t.orders).where(where)
        if cursor:
            micros, _, oid = cursor.partition("~")
            when = _EPOCH + timedelta(microseconds=int(micros))
            query = query.where(
                or_(o.created_at < when, and_(o.created_at == when, o.order_id < oid))
            )
        query = query.order_by(o.created_at.desc(), o.order_id.desc()).limit(limit + 1)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
            items = [
                await view_in(conn, self.t, r, self.codes, self._for_customer(r, identity))
                for r in rows[:limit]
            ]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        next_cursor: str | None = None
        if last is not None:
            at = (as_utc(last.created_at) - _EPOCH) // timedelta(microseconds=1)
            next_cursor = f"{at}~{last.order_id}"
        return items, next_cursor

    async def mine(
        self, identity: Identity, cursor: str | None, limit: int
    ) -> tuple[list[Order], str | None]:
        o = self.t.orders.c
        if identity.partner_id:
            where = o.partner_id == identity.partner_id
        else:
            where = and_(o.customer == shop_customer(identity), o.partner_id.is_(None))
        return await self._page(where, cursor, limit, identity)

    async def of_customer(
        self, customer: str, identity: Identity, cursor: str | None, limit: int
    ) -> tuple[list[Order], str | None]:
        """Any customer's orders: operators and customer service only."""
        if not is_operator(identity):
            raise Forbidden("another customer's orders are listed for operators")
        return await self._page(self.t.orders.c.customer == customer, cursor, limit, identity)

    async def for_store(
        self, store_id: str, status: str | None, identity: Identity, cursor: str | None, limit: int
    ) -> tuple[list[Order], str | None]:
        if not is_operator(identity) and identity.store_id != store_id:
            raise Forbidden(f"this caller may not see the orders of {store_id}")
        o = self.t.orders.c
        where = o.pickup_store_id == store_id
        if status is not None:
            where = and_(where, o.status == status)
        return await self._page(where, cursor, limit, identity)

    # lifecycle

    async def transition(
        self, order_id: str, target: str, identity: Identity, code: str | None = None
    ) -> Order:
        async with self.db.write() as conn:
            row = await self._row(conn, order_id, identity)
            self._authorize(row, target, identity)
            if (
                not can_move(row.status, target)
                or (target in ("ready_for_pickup", "collected") and row.fulfilment != "pickup")
                or (target in ("shipped", "delivered") and row.fulfilment != "ship")
            ):
                raise IllegalTransition(order_id, row.status, target)
            wrong: WrongPickupCode | None = None
            if target == "collected":
                if row.pickup_failures >= MAX_PICKUP_FAILURES:
                    raise WrongPickupCode("too many wrong codes: an operator must hand it over")
                if not self.codes.check(order_id, code or ""):
                    await conn.execute(
                        update(self.t.orders)
                        .where(self.t.orders.c.order_id == order_id)
                        .values(pickup_failures=self.t.orders.c.pickup_failures + 1)
                    )
                    wrong = WrongPickupCode("the pick-up code does not match this order")
            if wrong is None and not await move(conn, self.t, self.outbox, row, target):
                raise IllegalTransition(order_id, row.status, target)
        if wrong is not None:
            raise wrong  # after the commit: the failure is counted
        self.outbox.notify()
        return await self.get(order_id, identity)

    def _authorize(self, row: Any, target: str, identity: Identity) -> None:
        if is_operator(identity):
            return
        if target == "cancelled":
            if row.partner_id is None and owns(row, identity):
                return
        elif target in ("ready_for_pickup", "collected"):
            if identity.store_id is not None and identity.store_id == row.pickup_store_id:
                return
        elif target in ("shipped", "delivered") and "orders:fulfil" in identity.scopes:
            return
        raise Forbidden(f"this caller may not mark the order {target}")
