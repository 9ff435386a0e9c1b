"""What a confirmed or cancelled order sets off, run by the `orders-erp` consumer of the
orders' own events (so each is retried until done, and every call again is a replay):

confirmed   the ERP posting (idempotent by the order id), the move to posted, and the
            member's points
cancelled   reservations and redeemed points back, earned points taken back, and a refund
            posting with a restock if the ERP had booked the order

Every order records whether what its status set off is done (`settled`), so the events are
not the only memory of it: the sweep finds, from the database alone, orders whose effects
are overdue (their event lost with Redis's data, or a dead letter) and drives them again;
every step is idempotent at its target, so a sweep racing the consumer does no harm.

And the repair after a loss of Redis: open orders' reservations put back, by the operator
or by the watch that notices Redis came back empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, or_, select, update

from contracts.models import MAX_REFUSED, RebuildReport
from services.kit.coalesce import Coalescer
from services.kit.events import RetryLater, Undeliverable
from services.kit.failpoints import failpoint
from services.kit.storage import as_utc
from services.orders.downstream import Refused
from services.orders.lifecycle import move_all
from services.orders.saga import saga_order

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.events import Outbox
    from services.kit.storage import Database
    from services.orders.downstream import Downstream
    from services.orders.store import OrderTables

__all__ = ["OrderEffects", "RedisLossWatch"]

log = logging.getLogger("retailmesh.orders")


class OrderEffects:
    def __init__(
        self, db: Database, tables: OrderTables, outbox: Outbox, downstream: Downstream
    ) -> None:
        self.db, self.t, self.outbox, self.ds = db, tables, outbox, downstream
        # the consumer books many orders at once: their writes share transactions
        self._posted: Coalescer[str, Any] = Coalescer(self._write_posted, max_batch=256)
        self._settles: Coalescer[tuple[str, str], None] = Coalescer(
            self._write_settled, max_batch=256
        )

    async def _load(self, order_id: str) -> Any:
        async with self.db.read() as conn:
            return await self._current(conn, order_id)

    async def post_to_erp(self, order_id: str) -> None:
        """Book a confirmed order in the ERP (idempotent by order id), mark it posted, and
        credit its member's points. Raising leaves the event to be retried, and every call
        again is a replay."""
        row = await self._load(order_id)
        if row is None:
            return
        order = saga_order(row)
        if not row.erp_posted:
            if row.status == "cancelled" and not await self.ds.is_posted(order):
                return  # cancelled before it was ever booked: nothing to post, nothing to undo
            await self.ds.post_order(order)
            failpoint("orders.post.called")
            row = await self._posted.submit(order_id)
            self.outbox.notify()
        if row.status != "cancelled" and order.member_id:
            await self.ds.earn_points(order)
            row = await self._load(order_id)
        if row.status == "cancelled":
            # cancelled while this was on its way: undo what it just did
            await self.undo_cancelled(order_id)
            return
        await self._settled(order_id, row.status)

    async def _write_posted(self, ids: list[str]) -> list[Any]:
        """Booked in the ERP: the orders move to posted (or, moved on meanwhile, just say
        so), many in one transaction; their rows as they are then."""
        o = self.t.orders.c
        unique = list(dict.fromkeys(ids))
        async with self.db.write() as conn:
            rows = await self._rows(conn, unique)
            present = [rows[i] for i in unique if i in rows]
            moved = await move_all(
                conn, self.t, self.outbox, [(r, None) for r in present], "posted", erp_posted=True
            )
            stayed = [r.order_id for r, done in zip(present, moved, strict=True) if not done]
            if stayed:
                await conn.execute(
                    update(self.t.orders)
                    .where(o.order_id == bindparam("_order_id"))
                    .values(erp_posted=True),
                    [{"_order_id": i} for i in stayed],
                )
            rows = await self._rows(conn, unique)
        return [rows.get(i) for i in ids]

    async def _rows(self, conn: AsyncConnection, ids: list[str]) -> dict[str, Any]:
        query = select(self.t.orders).where(self.t.orders.c.order_id.in_(ids))
        return {row.order_id: row for row in await conn.execute(query)}

    async def _settled(self, order_id: str, status: str) -> None:
        """Record that `status`'s effects are done, unless the order moved on meanwhile."""
        await self._settles.submit((order_id, status))

    async def _write_settled(self, settled: list[tuple[str, str]]) -> list[None]:
        o = self.t.orders.c
        async with self.db.write() as conn:
            await conn.execute(
                update(self.t.orders)
                .where(o.order_id == bindparam("_order_id"), o.status == bindparam("_status"))
                .values(settled=True),
                [{"_order_id": order_id, "_status": status} for order_id, status in settled],
            )
        return [None] * len(settled)

    async def _current(self, conn: AsyncConnection, order_id: str) -> Any:
        query = select(self.t.orders).where(self.t.orders.c.order_id == order_id)
        return (await conn.execute(query)).first()

    async def undo_cancelled(self, order_id: str) -> None:
        """A cancelled order gives back what it holds: its reservations, its points, and, if
        the ERP booked it, its stock and money through a cancellation posting."""
        row = await self._load(order_id)
        if row is None:
            return
        order = saga_order(row)
        for index in range(len(order.lines)):
            await self.ds.release_stock(order, index)
        if order.points:
            await self.ds.recredit_points(order)
        if order.member_id:
            await self.ds.reverse_points(order, f"{order.order_id}.cancel", order.total.amount)
        if row.erp_posted:
            await self.ds.post_cancellation(order, as_utc(row.updated_at))
        await self._settled(order_id, "cancelled")

    async def sweep(self, overdue_s: float) -> int:
        """Drive again the orders whose effects are overdue by `overdue_s`: confirmed or
        posted without their posting or points, cancelled without their give-backs. A
        service still away leaves them for the next sweep. Returns how many settled."""
        o = self.t.orders.c
        cutoff = datetime.now(UTC) - timedelta(seconds=overdue_s)
        overdue = and_(
            o.settled.is_(False),
            o.status.in_(("confirmed", "posted", "cancelled")),
            o.updated_at < cutoff,
        )
        async with self.db.read() as conn:
            query = select(o.order_id, o.status).where(overdue).order_by(o.updated_at).limit(200)
            rows = (await conn.execute(query)).all()
        if rows:
            log.warning("sweep: %d orders have overdue effects; driving them again", len(rows))
        limit = asyncio.Semaphore(8)
        done = 0

        async def drive(order_id: str, status: str) -> None:
            nonlocal done
            async with limit:
                try:
                    if status == "cancelled":
                        await self.undo_cancelled(order_id)
                    else:
                        await self.post_to_erp(order_id)
                    done += 1
                except RetryLater as exc:
                    log.info("sweep: %s waits: %s", order_id, exc)
                except Undeliverable as exc:
                    log.error("sweep: %s needs an operator: %s", order_id, exc)

        await asyncio.gather(*(drive(r.order_id, r.status) for r in rows))
        return done

    async def rebuild_reservations(self) -> RebuildReport:
        """Reserve again, through the reservations API, the lines of every order that holds
        stock not yet booked by the ERP: the durable record of what is reserved is here,
        the reservations themselves live in Redis. Each call is the saga's own (same id,
        same content), so what Redis still has is left as it is; a confirmed order's
        reservations are confirmed again, so they do not lapse."""
        o = self.t.orders.c
        holding = or_(
            and_(o.status == "pending", o.stage.in_(("hold", "confirm"))),
            and_(o.status == "confirmed", o.erp_posted.is_(False)),
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(select(self.t.orders).where(holding))).all()
        made = 0
        refused: list[str] = []
        for row in rows:
            order = saga_order(row)
            for index in range(len(order.lines)):
                try:
                    await self.ds.reserve(order, index)
                    if row.status == "confirmed":
                        await self.ds.confirm_stock(order, index)
                except Refused as exc:
                    log.error("rebuild: %s.%d: %s", order.order_id, index, exc.detail)
                    refused.append(f"{order.order_id}.{index}")
                    continue
                made += 1
        if len(refused) > MAX_REFUSED:
            log.error("rebuild: %d lines refused; the report names the first", len(refused))
        return RebuildReport(orders=len(rows), reservations=made, refused=refused[:MAX_REFUSED])


class RedisLossWatch:
    """Notices that Redis came back without its data (a restart without persistence, a
    failover to an empty replica) and puts the open orders' reservations back at once.

    A marker key says "the reservations of the open orders are in this Redis". The check
    sets it only where it is missing: the one check (of all replicas) that sets it rebuilds,
    and a failed rebuild takes the marker away again so the next check retries. On a fresh
    instance the first check rebuilds nothing."""

    def __init__(
        self, redis: Any, marker: str, rebuild: Callable[[], Awaitable[RebuildReport]]
    ) -> None:
        self.redis, self.marker, self.rebuild = redis, marker, rebuild
        self.rebuilds = 0

    async def check(self) -> None:
        if not await self.redis.set(self.marker, "1", nx=True):
            return
        try:
            report = await self.rebuild()
        except BaseException:
            await self.redis.delete(self.marker)
            raise
        self.rebuilds += 1
        if report.orders:
            log.warning(
                "Redis had lost the reservations: %d orders' %d reservations put back (%d refused)",
                report.orders,
                report.reservations,
                len(report.refused),
            )
