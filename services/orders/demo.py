"""The demo story for `make run` (DEMO): past orders of the demo customers in different
states, placed and moved through the orders service's own checkout and lifecycle, so that
stock, points and ERP postings add up as for any order:

    alice   shipped and delivered (she can return it)   SKU-000007
    alice   a pick-up at STORE-002, posted (the till marks it ready)   SKU-000012
    bob     posted (customer service may cancel it)     SKU-000031 x2
    bob     cancelled                                   SKU-000033

Each round places what is missing (idempotent keys of its own) and moves each order as far
as it can; an order ships once the ERP has booked it, so the story takes a few rounds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import func, select

from contracts.models import CheckoutRequest, OrderLineIn
from services.kit.errors import ServiceError
from services.kit.identity import Identity

if TYPE_CHECKING:
    from services.orders.logic import OrdersService

__all__ = ["DemoStory"]

log = logging.getLogger("retailmesh.orders")

_DESK = Identity(kind="service", consumer="orders-demo", sub="orders-demo")
#: key, customer, SKU, quantity, pick-up store, the status it ends in
_STORY = [
    ("demo-alice-delivered", "alice", "SKU-000007", 1, None, "delivered"),
    ("demo-alice-pickup", "alice", "SKU-000012", 1, "STORE-002", "posted"),
    ("demo-bob-posted", "bob", "SKU-000031", 2, None, "posted"),
    ("demo-bob-cancelled", "bob", "SKU-000033", 1, None, "cancelled"),
]
#: the moves from `posted` to each end
_MOVES = {"delivered": ["shipped", "delivered"], "posted": [], "cancelled": []}
#: the status each move starts from
_PREVIOUS = {"shipped": "posted", "delivered": "shipped"}


class DemoStory:
    def __init__(self, orders: OrdersService) -> None:
        self.orders = orders
        self.done = False

    async def wanted(self) -> bool:
        """Only on a first start: a mesh with orders already tells its own story."""
        async with self.orders.db.read() as conn:
            count = select(func.count()).select_from(self.orders.t.orders)
            return int((await conn.execute(count)).scalar_one()) == 0

    async def advance(self) -> None:
        if self.done:
            return
        finished = True
        for key, customer, sku, quantity, store, end in _STORY:
            try:
                finished &= await self._one(key, customer, sku, quantity, store, end)
            except ServiceError as exc:  # a service behind not up yet: the next round
                log.info("demo story waits: %s", exc)
                finished = False
        self.done = finished
        if finished:
            log.info("demo story told: the demo customers have past orders")

    async def _one(
        self, key: str, customer: str, sku: str, quantity: int, store: str | None, end: str
    ) -> bool:
        request = CheckoutRequest(
            lines=[OrderLineIn(sku=sku, quantity=quantity)],
            payment_reference=f"psp-{key}",
            fulfilment="pickup" if store else "ship",
            pickup_store_id=store or msgspec.UNSET,
        )
        who = Identity(kind="user", consumer=customer, sub=customer)
        placed = await self.orders.checkout(request, key, who)
        if placed.status != 201:
            return True  # refused (no stock): nothing more to tell about it
        order_id = msgspec.json.decode(placed.body)["order_id"]
        status = (await self.orders.get(order_id, _DESK)).status
        if end == "cancelled" and status in ("confirmed", "posted"):
            status = (await self.orders.transition(order_id, "cancelled", _DESK)).status
        for move in _MOVES[end]:
            if _PREVIOUS[move] == status:
                status = (await self.orders.transition(order_id, move, _DESK)).status
        return status == end
