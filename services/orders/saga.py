"""The checkout saga, durable: reserve stock → hold points → confirm.

Before a step runs, the order's row says which step is next and a `started` line goes to
the step log; after it, a `done` line and the next stage are written in one transaction
(with the step's results: where the units are reserved). A refusal (`Refused`) writes
`failed` and the stage `compensate`: the steps before are undone in reverse (release the
points hold, release the reservations), each undo idempotent, and the order ends
`rejected` with the problem the client gets. The end (confirmed or rejected) is written with
the checkout's idempotent response in the same transaction.

A saga that cannot go on (`NotNow`: a service does not answer) stays at its stage; its lease
runs out and the resumer drives it again, as it does after a crash: every step carries an
idempotency key derived from the order and the step, so running it again changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from sqlalchemy import and_, bindparam, insert, or_, select, update

from contracts.models import Money, OrderLine
from services.kit.coalesce import Coalescer
from services.kit.failpoints import failpoint
from services.kit.periodic import Periodic
from services.kit.storage import as_utc
from services.orders.downstream import NotNow, Refused, SagaOrder
from services.orders.leases import gone, holder
from services.orders.lifecycle import move_all
from services.orders.tasks import OnePerId
from services.orders.views import problem_body, views_in

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.events import Outbox
    from services.kit.storage import Database
    from services.orders.downstream import Downstream
    from services.orders.gate import CheckoutGate
    from services.orders.store import OrderTables
    from services.orders.views import PickupCodes

__all__ = ["Driver", "Resumer", "SagaDriver", "saga_order"]

log = logging.getLogger("retailmesh.orders.saga")
_lines = msgspec.json.Decoder(list[OrderLine])
_encoder = msgspec.json.Encoder()


def saga_order(row: Any) -> SagaOrder:
    return SagaOrder(
        order_id=row.order_id,
        customer=row.customer,
        channel=row.channel,
        fulfilment=row.fulfilment,
        pickup_store_id=row.pickup_store_id,
        lines=_lines.decode(row.lines),
        total=Money(row.total_amount, row.currency),
        member_id=row.member_id,
        points=row.points,
        created_at=as_utc(row.created_at),
    )


class _Mark(msgspec.Struct, kw_only=True):
    order_id: str
    steps: list[dict[str, Any]]
    values: dict[str, Any]


class _Finish(msgspec.Struct, kw_only=True):
    order_id: str
    step: str
    #: confirmed or rejected
    status: str


class SagaDriver:
    def __init__(
        self,
        db: Database,
        tables: OrderTables,
        outbox: Outbox,
        downstream: Downstream,
        codes: PickupCodes,
        *,
        lease_s: float,
        retry_s: float,
        gate: CheckoutGate | None = None,
    ) -> None:
        self.db, self.t, self.outbox, self.ds, self.codes = db, tables, outbox, downstream, codes
        self.lease_s, self.retry_s = lease_s, retry_s
        self.gate = gate
        self._tasks = OnePerId("saga")
        self._marks: Coalescer[_Mark, None] = Coalescer(self._write_marks, max_batch=256)
        self._finishes: Coalescer[_Finish, None] = Coalescer(self._write_finishes, max_batch=256)

    def running(self, order_id: str) -> bool:
        return self._tasks.running(order_id)

    async def close(self) -> None:
        await self._tasks.close()

    async def drive(self, order_id: str, *, started: bool = False) -> None:
        """Drive the order's saga to its end, once at a time per order in this process.
        `started`: the current step's start is logged already (by the checkout that created
        the order)."""
        await self._tasks.join(order_id, lambda: self._drive(order_id, started))

    async def _load(self, conn: AsyncConnection, order_id: str) -> Any:
        query = select(self.t.orders).where(self.t.orders.c.order_id == order_id)
        return (await conn.execute(query)).one()

    async def _log(
        self, conn: AsyncConnection, order_id: str, step: str, phase: str, detail: str | None
    ) -> None:
        await conn.execute(
            insert(self.t.steps).values(
                order_id=order_id, step=step, phase=phase, detail=detail, at=datetime.now(UTC)
            )
        )

    async def _mark(
        self,
        order_id: str,
        step: str,
        phase: str,
        detail: str | None = None,
        then: str | None = None,
        **values: Any,
    ) -> None:
        """Log a step's phase (and, with `then`, the next step's start: one transaction for
        "after this one" and "before that one") and renew the driver's lease. Written when
        this returns; sagas marking at the same moment share one transaction."""
        now = datetime.now(UTC)
        steps = [{"order_id": order_id, "step": step, "phase": phase, "detail": detail, "at": now}]
        if then is not None:
            steps.append(
                {"order_id": order_id, "step": then, "phase": "started", "detail": None, "at": now}
            )
        values = {
            "lease_until": now + timedelta(seconds=self.lease_s),
            "lease_holder": holder(),
            "updated_at": now,
            **values,
        }
        await self._marks.submit(_Mark(order_id=order_id, steps=steps, values=values))

    async def _write_marks(self, marks: list[_Mark]) -> list[None]:
        """Many sagas' marks in one transaction: the step lines in one statement, the
        orders' updates in one per set of columns (SQLite takes one writer at a time, and
        under load each statement waited a turn of the event loop while holding it)."""
        o = self.t.orders
        by_columns: dict[tuple[str, ...], list[_Mark]] = {}
        for mark in marks:
            by_columns.setdefault(tuple(sorted(mark.values)), []).append(mark)
        async with self.db.write() as conn:
            await conn.execute(insert(self.t.steps), [row for m in marks for row in m.steps])
            for columns, group in by_columns.items():
                # bound as _<column>: a bind named like its column is reserved in SET
                statement = (
                    update(o)
                    .where(o.c.order_id == bindparam("_order_id"))
                    .values({c: bindparam("_" + c) for c in columns})
                )
                rows = [
                    {"_order_id": m.order_id, **{"_" + c: m.values[c] for c in columns}}
                    for m in group
                ]
                await conn.execute(statement, rows)
        return [None] * len(marks)

    async def _drive(self, order_id: str, started: bool = False) -> None:
        async with self.db.read() as conn:
            row = await self._load(conn, order_id)
        order = saga_order(row)
        stage: str = row.stage
        try:
            while stage not in ("done", "compensate"):
                if not started:
                    await self._mark(order_id, stage, "started")
                started = True  # from here each step's "done" logs the next one's start
                failpoint(f"orders.saga.{stage}.started")
                try:
                    stage = await self._run(order, stage)
                except Refused as refusal:
                    await self._mark(
                        order_id,
                        stage,
                        "failed",
                        refusal.detail[:400],
                        stage="compensate",
                        reason=refusal.detail[:400],
                        reject_status=refusal.status,
                        reject_slug=refusal.slug,
                    )
                    stage = "compensate"
            if stage == "compensate":
                await self._compensate(order)
        except NotNow as exc:
            log.warning("order %s waits at %s: %s", order_id, stage, exc)
            async with self.db.write() as conn:
                await self._log(conn, order_id, stage, "waiting", str(exc)[:400])
                await conn.execute(
                    update(self.t.orders)
                    .where(self.t.orders.c.order_id == order_id)
                    .values(lease_until=datetime.now(UTC) + timedelta(seconds=self.retry_s))
                )
            raise

    async def _run(self, order: SagaOrder, stage: str) -> str:
        """Run one step; record it done with the next stage, which it returns."""
        if stage == "reserve":
            for index, line in enumerate(order.lines):
                if self.gate is not None:
                    self.gate.sent(order.order_id, line.sku, line.quantity)
                location = await self.ds.reserve(order, index)
                order.lines[index] = msgspec.structs.replace(line, location_id=location)
            failpoint("orders.saga.reserve.called")
            after = "hold" if order.points or order.member_id else "confirm"
            await self._mark(
                order.order_id,
                stage,
                "done",
                then=after,
                stage=after,
                lines=_encoder.encode(order.lines),
            )
            return after
        if stage == "hold":
            if order.points:
                await self.ds.hold_points(order)
            else:
                await self.ds.check_member(order)
            failpoint("orders.saga.hold.called")
            await self._mark(order.order_id, stage, "done", then="confirm", stage="confirm")
            return "confirm"
        if stage == "confirm":
            for index in range(len(order.lines)):
                await self.ds.confirm_stock(order, index)
            if order.points:
                await self.ds.capture_points(order)
            failpoint("orders.saga.confirm.called")
            await self._finish(order.order_id, "confirm", "confirmed")
            failpoint("orders.saga.confirm.finished")
            return "done"
        raise AssertionError(f"unknown saga stage {stage}")

    async def _compensate(self, order: SagaOrder) -> None:
        await self._mark(order.order_id, "compensate", "started")
        failpoint("orders.saga.compensate.started")
        if order.points:
            await self.ds.release_points(order)
        for index in reversed(range(len(order.lines))):
            await self.ds.release_stock(order, index)
        failpoint("orders.saga.compensate.called")
        await self._finish(order.order_id, "compensate", "rejected")

    async def _finish(self, order_id: str, step: str, status: str) -> None:
        """The end of the saga, its history line, its event and the checkout's response,
        in one transaction (shared with the sagas ending at the same moment)."""
        await self._finishes.submit(_Finish(order_id=order_id, step=step, status=status))
        self.outbox.notify()

    async def _write_finishes(self, finishes: list[_Finish]) -> list[None]:
        o, i = self.t.orders.c, self.t.idempotency.c
        ids = [f.order_id for f in finishes]
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            rows = {
                r.order_id: r
                for r in await conn.execute(select(self.t.orders).where(o.order_id.in_(ids)))
            }
            await conn.execute(
                insert(self.t.steps),
                [
                    {
                        "order_id": f.order_id,
                        "step": f.step,
                        "phase": "done" if f.status == "confirmed" else "compensated",
                        "detail": None,
                        "at": now,
                    }
                    for f in finishes
                ],
            )
            for status in ("confirmed", "rejected"):
                ending = [rows[f.order_id] for f in finishes if f.status == status]
                if ending:
                    await move_all(
                        conn,
                        self.t,
                        self.outbox,
                        [(row, row.reason) for row in ending],
                        status,
                        stage="done",
                        lease_until=None,
                    )
            ended = {
                r.order_id: r
                for r in await conn.execute(select(self.t.orders).where(o.order_id.in_(ids)))
            }
            confirmed = [ended[f.order_id] for f in finishes if f.status == "confirmed"]
            views = await views_in(conn, self.t, confirmed, self.codes, True)
            responses = [
                {"_order_id": row.order_id, "_code": 201, "_body": _encoder.encode(view)}
                for row, view in zip(confirmed, views, strict=True)
            ]
            responses += [
                {
                    "_order_id": f.order_id,
                    "_code": ended[f.order_id].reject_status or 409,
                    "_body": problem_body(ended[f.order_id]),
                }
                for f in finishes
                if f.status != "confirmed"
            ]
            await conn.execute(
                update(self.t.idempotency)
                .where(i.order_id == bindparam("_order_id"))
                .values(status_code=bindparam("_code"), body=bindparam("_body")),
                responses,
            )
        return [None] * len(finishes)


class Driver(Protocol):
    lease_s: float

    def running(self, saga_id: str) -> bool: ...

    async def drive(self, saga_id: str) -> None: ...


class Resumer:
    """Drives the sagas nobody drives: those a crashed process left, those that waited for a
    service. Runs in every replica; a lease makes one of them take each saga. `table` is the
    sagas' table: its key, `stage` ("done" at the end) and `lease_until`."""

    def __init__(self, driver: Driver, db: Database, table: Table, interval_s: float) -> None:
        self.driver, self.db, self.table = driver, db, table
        self._worker = Periodic(f"{table.name} resumer", interval_s, self.sweep)
        self.name, self.liveness = self._worker.name, self._worker.liveness

    def stop(self) -> None:
        self._worker.stop()

    async def run(self) -> None:
        await self._worker.run()

    async def sweep(self) -> int:
        """Take over every saga whose lease ran out, or whose holder is certainly dead (a
        crashed predecessor on this host: no need to wait its lease out); returns how many
        ended."""
        now = datetime.now(UTC)
        c = self.table.c
        key = next(iter(self.table.primary_key.columns))
        lapsed = or_(c.lease_until.is_(None), c.lease_until < now)
        async with self.db.read() as conn:
            held = select(c.lease_holder).where(c.stage != "done", ~lapsed).distinct()
            dead = [h for (h,) in await conn.execute(held) if gone(h)]
            free = and_(
                c.stage != "done", or_(lapsed, c.lease_holder.in_(dead)) if dead else lapsed
            )
            ids = [r[0] for r in await conn.execute(select(key).where(free).limit(200))]
        ended = 0
        limit = asyncio.Semaphore(16)  # sagas waiting on a slow service do not queue the rest

        async def take(saga_id: str) -> None:
            nonlocal ended
            if self.driver.running(saga_id):
                return
            async with limit:
                async with self.db.write() as conn:
                    claimed = await conn.execute(
                        update(self.table)
                        .where(key == saga_id, free)
                        .values(
                            lease_until=datetime.now(UTC) + timedelta(seconds=self.driver.lease_s),
                            lease_holder=holder(),
                        )
                    )
                if claimed.rowcount != 1:
                    return  # another replica took it
                try:
                    await self.driver.drive(saga_id)
                    ended += 1
                except NotNow:
                    pass

        await asyncio.gather(*(take(saga_id) for saga_id in ids))
        return ended
