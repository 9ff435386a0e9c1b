"""A return's saga, after its intake (`services/orders/returns.py`):

    refund    a refund posting in the ERP (idempotent by the return id)
    points    take back what the returned part earned; give back redeemed points pro rata
    restock   returned units in sellable condition go back into stock (an ERP receipt,
              which reaches the ATS as a stock event); damaged ones do not

Each step is logged before and after, forward-only and idempotent: a step that cannot run
now (`NotNow`: the ERP is down) waits, and the resumer drives it again.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from contracts.events import ORDERS_STREAM
from services.kit.failpoints import failpoint
from services.kit.storage import as_utc
from services.orders.downstream import NotNow
from services.orders.leases import holder
from services.orders.returns import RETURN_LINES, return_event, return_view
from services.orders.tasks import OnePerId

if TYPE_CHECKING:
    from services.kit.events import Outbox
    from services.kit.storage import Database
    from services.orders.downstream import Downstream
    from services.orders.store import OrderTables

__all__ = ["ReturnDriver"]

log = logging.getLogger("retailmesh.orders.returns")


class ReturnDriver:
    """Drives a return's saga: refund → points → restock, each step logged before and after."""

    def __init__(
        self,
        db: Database,
        tables: OrderTables,
        outbox: Outbox,
        downstream: Downstream,
        *,
        lease_s: float,
        retry_s: float,
    ) -> None:
        self.db, self.t, self.outbox, self.ds = db, tables, outbox, downstream
        self.lease_s, self.retry_s = lease_s, retry_s
        self._tasks = OnePerId("return")

    def running(self, return_id: str) -> bool:
        return self._tasks.running(return_id)

    async def close(self) -> None:
        await self._tasks.close()

    def start(self, return_id: str) -> None:
        """Drive it in the background (the intake answered already)."""
        self._tasks.start(return_id, lambda: self._quietly(return_id))

    async def _quietly(self, return_id: str) -> None:
        with contextlib.suppress(NotNow):  # logged; the resumer comes back to it
            await self._drive(return_id)

    async def drive(self, return_id: str) -> None:
        await self._tasks.join(return_id, lambda: self._drive(return_id))

    async def _mark(self, return_id: str, step: str, phase: str, **values: Any) -> None:
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            await conn.execute(
                insert(self.t.steps).values(
                    order_id=return_id, step=step, phase=phase, detail=None, at=now
                )
            )
            await conn.execute(
                update(self.t.returns)
                .where(self.t.returns.c.return_id == return_id)
                .values(
                    lease_until=now + timedelta(seconds=self.lease_s),
                    lease_holder=holder(),
                    updated_at=now,
                    **values,
                )
            )

    async def _drive(self, return_id: str) -> None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(self.t.returns).where(self.t.returns.c.return_id == return_id)
                )
            ).one()
        stage: str = row.stage
        lines = RETURN_LINES.decode(row.lines)
        try:
            while stage != "done":
                await self._mark(return_id, stage, "started")
                failpoint(f"orders.return.{stage}.started")
                if stage == "refund":
                    await self.ds.post_refund(
                        return_id,
                        row.source_id,
                        lines,
                        row.amount,
                        row.currency,
                        as_utc(row.created_at),
                    )
                    after = "points"
                elif stage == "points":
                    if row.member_id:
                        await self.ds.reverse_for(
                            row.member_id, return_id, row.source_id, row.amount
                        )
                        if row.points_back:
                            await self.ds.credit(
                                row.member_id,
                                f"{return_id}.points",
                                row.points_back,
                                f"return {return_id}",
                            )
                    after = "restock"
                else:
                    for index, line in enumerate(lines):
                        if line.disposition == "restock":
                            await self.ds.restock(
                                f"{return_id}.{index}", line.sku, line.location_id, line.quantity
                            )
                    after = "done"
                failpoint(f"orders.return.{stage}.called")
                if after == "done":
                    await self._finish(return_id)
                else:
                    await self._mark(return_id, stage, "done", stage=after)
                stage = after
        except NotNow as exc:
            log.warning("return %s waits at %s: %s", return_id, stage, exc)
            async with self.db.write() as conn:
                await conn.execute(
                    update(self.t.returns)
                    .where(self.t.returns.c.return_id == return_id)
                    .values(lease_until=datetime.now(UTC) + timedelta(seconds=self.retry_s))
                )
            raise

    async def _finish(self, return_id: str) -> None:
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            await conn.execute(
                insert(self.t.steps).values(
                    order_id=return_id, step="restock", phase="done", detail=None, at=now
                )
            )
            await conn.execute(
                update(self.t.returns)
                .where(self.t.returns.c.return_id == return_id)
                .values(stage="done", status="refunded", lease_until=None, updated_at=now)
            )
            row = (
                await conn.execute(
                    select(self.t.returns).where(self.t.returns.c.return_id == return_id)
                )
            ).one()
            await self.outbox.add(conn, ORDERS_STREAM, return_event(return_view(row)))
        self.outbox.notify()
