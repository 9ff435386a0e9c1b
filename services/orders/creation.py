"""Orders written at checkout, many in one transaction.

Each checkout writes its idempotency key, its order, the order's first history line and
event, and its saga's first step before the saga starts. SQLite takes one writer at a time,
and under load each statement of a transaction waited a turn of the event loop while
holding it; checkouts arriving together now share one transaction (one statement per table).
The same key twice in a batch (a client's retries racing) is written once: the others hear
at once that it is taken. A key taken by an earlier transaction fails the whole one: the
batch is then written one order at a time, and only that order hears of its conflict.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from services.kit.coalesce import Coalescer
from services.orders.lifecycle import record_creation

if TYPE_CHECKING:
    from services.kit.events import Outbox
    from services.kit.storage import Database
    from services.orders.store import OrderTables

__all__ = ["Created", "Creations", "NewOrder"]


class Created(msgspec.Struct, kw_only=True):
    """What the creation event tells of a new order."""

    order_id: str
    customer: str
    channel: str
    fulfilment: str
    pickup_store_id: str | None


class NewOrder(msgspec.Struct, kw_only=True):
    #: the order_idempotency row and the orders row
    key: dict[str, Any]
    order: dict[str, Any]
    created: Created


class Creations:
    def __init__(
        self, db: Database, tables: OrderTables, outbox: Outbox, max_batch: int = 256
    ) -> None:
        self.db, self.t, self.outbox = db, tables, outbox
        self._batches: Coalescer[NewOrder, bool] = Coalescer(self._write, max_batch)

    async def create(self, new: NewOrder) -> bool:
        """Write the order (committed when this returns True); False when its key was taken
        by another request, and nothing was written."""
        return await self._batches.submit(new)

    async def _write(self, batch: list[NewOrder]) -> list[bool]:
        first: dict[tuple[Any, Any], int] = {}
        for n, new in enumerate(batch):
            first.setdefault((new.key["principal"], new.key["key"]), n)
        unique = [batch[n] for n in sorted(first.values())]
        try:
            await self._insert(unique)
            written = {id(new) for new in unique}
        except IntegrityError:
            written = set()
            for new in unique:
                with contextlib.suppress(IntegrityError):
                    await self._insert([new])
                    written.add(id(new))
        return [id(new) in written for new in batch]

    async def _insert(self, batch: list[NewOrder]) -> None:
        async with self.db.write() as conn:
            await conn.execute(insert(self.t.idempotency), [new.key for new in batch])
            await conn.execute(insert(self.t.orders), [new.order for new in batch])
            await record_creation(
                conn,
                self.t,
                self.outbox,
                [(new.created, new.order["created_at"]) for new in batch],
            )
            await conn.execute(
                insert(self.t.steps),
                [
                    {
                        "order_id": new.created.order_id,
                        "step": "reserve",
                        "phase": "started",
                        "detail": None,
                        "at": new.order["created_at"],
                    }
                    for new in batch
                ],
            )
