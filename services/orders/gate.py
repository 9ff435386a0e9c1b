"""The checkout gate: in a rush on one SKU, an order the stock cannot cover is refused at
once, and a rush beyond what this process takes on is shed, both before anything is written.

Every checkout writes its order before its saga reserves the stock, and on SQLite writes
queue one at a time; in a flash sale the refused would wait behind every accepted order's
saga to hear "out of stock". The gate counts, per SKU, the units of checkouts admitted in
this process whose reservation has not been sent yet (`waiting`). While some are waiting,
a new checkout asks the inventory for the SKU's available to sell (one read shared by all
who ask at the same time) and is refused (409 out-of-stock, no order) when what is left
after the waiting ones cannot cover it.

Why it never refuses what the stock could cover: a unit is subtracted only while its
reservation has not been sent, so it cannot be in the read as well; a reservation sent in
the meantime may be in neither, which admits too many (their sagas then refuse them, the
slow way), never too few. When nothing waits, the saga decides and records the refused
order, as it always did. Pick-ups reserve at a store, which a channel's read does not
show: they pass the stock check.

Shedding: at most `max_in_flight` checkouts run their sagas at once in this process; the
next answers 503 with Retry-After at once, instead of queueing toward the gateway's
timeout (a 504 the client cannot tell from a lost order).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

from services.orders.errors import CheckoutBusy, OutOfStock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from contracts.models import CheckoutRequest

__all__ = ["CheckoutGate"]


class CheckoutGate:
    """`read_ats(skus, channel)`: the available to sell of those SKUs (None: no answer)."""

    def __init__(
        self,
        read_ats: Callable[[list[str], str], Awaitable[dict[str, int] | None]],
        *,
        max_in_flight: int,
        retry_after_s: int = 1,
    ) -> None:
        self.read_ats = read_ats
        self.max_in_flight, self.retry_after_s = max_in_flight, retry_after_s
        self.in_flight = 0
        #: units per SKU admitted whose reservation is not sent yet
        self.waiting: Counter[str] = Counter()
        self._admitted: dict[str, dict[str, int]] = {}
        self._reads: dict[tuple[str, ...], asyncio.Future[dict[str, int] | None]] = {}

    async def admit(self, order_id: str, data: CheckoutRequest) -> None:
        """Let this checkout run its saga, or refuse it (OutOfStock) or shed it (CheckoutBusy)."""
        wanted: Counter[str] = Counter()
        for line in data.lines:
            wanted[line.sku] += line.quantity
        if data.fulfilment == "ship" and any(self.waiting[sku] for sku in wanted):
            ats = await self._shared_read(sorted(wanted), data.channel)
            # from here to the admission nothing awaits: `waiting` is read as it is now
            short = [
                sku
                for sku, units in wanted.items()
                if ats is not None and sku in ats and ats[sku] - self.waiting[sku] < units
            ]
            if short:
                raise OutOfStock(
                    f"not enough {', '.join(short)} left: the rest is being checked out"
                )
        if self.in_flight >= self.max_in_flight:
            raise CheckoutBusy(
                f"{self.in_flight} checkouts are running here; try again shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.in_flight += 1
        self.waiting.update(wanted)
        self._admitted[order_id] = dict(wanted)

    def sent(self, order_id: str, sku: str, units: int) -> None:
        """The order's reservation of `units` of `sku` is about to be sent."""
        admitted = self._admitted.get(order_id)
        if admitted is None or admitted.get(sku, 0) < units:
            return  # a saga resumed after a restart, or counted already
        admitted[sku] -= units
        self._unwait(sku, units)

    def done(self, order_id: str) -> None:
        """The checkout answered (whatever the answer): what it still counted is freed."""
        admitted = self._admitted.pop(order_id, None)
        if admitted is None:
            return
        self.in_flight -= 1
        for sku, units in admitted.items():
            self._unwait(sku, units)

    def _unwait(self, sku: str, units: int) -> None:
        self.waiting[sku] -= units
        if self.waiting[sku] <= 0:
            del self.waiting[sku]

    async def _shared_read(self, skus: list[str], channel: str) -> dict[str, int] | None:
        """One read for everybody asking for the same SKUs at the same time (single flight)."""
        key = (channel, *skus)
        future = self._reads.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._reads[key] = future
            try:
                future.set_result(await self.read_ats(skus, channel))
            except Exception:  # no answer: the gate lets the saga decide
                future.set_result(None)
            finally:
                del self._reads[key]
        return await asyncio.shield(future)
