"""The store's till: its sales upload, its pick-up counter, stock here and nearby, returns of
online orders and members at the till. Every call is the till's store's own: the store comes
from the till's identity (its JWT's `store_id`), never from the request, and the services
behind are called as the till, so their store checks apply in both modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from contracts.models import AvailabilityResult, LoyaltyAccount, ReturnRequest
from contracts.store import StoreStock, TillMember
from contracts.web import PickupAvailability
from services.kit.errors import Forbidden, NotFound, Unavailable
from services.kit.identity import IDENTITY_HEADER
from services.kit.places import nearest_stores
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from contracts.models import MemberLookup, OrderReturnRequest, TransactionBatch
    from services.kit.identity import Identity
    from services.kit.places import StoreDirectory
    from services.kit.registry import ServiceClient, ServiceResponse

__all__ = ["StoreDesk", "UnknownSku", "till_store"]

#: a batch of 500 transactions is booked before the answer: as long as the gateway gives POS
UPLOAD_TIMEOUT_S = 30.0
PICKUP_CHANNEL = "pickup"


class UnknownSku(NotFound):
    slug, title = "unknown-sku", "Unknown SKU"

    def __init__(self, sku: str) -> None:
        super().__init__(f"no product with SKU {sku}", sku=sku)


def till_store(identity: Identity) -> str:
    """The store of the calling till; 403 for a caller that is not a store's."""
    if identity.store_id is None:
        raise Forbidden("the store API is for a store's tills (a JWT with a store_id)")
    return identity.store_id


class StoreDesk:
    def __init__(
        self,
        pos: ServiceClient,
        orders: ServiceClient,
        inventory: ServiceClient,
        loyalty: ServiceClient,
        directory: StoreDirectory,
    ) -> None:
        self.pos, self.orders, self.inventory, self.loyalty = pos, orders, inventory, loyalty
        self.directory = directory

    def upload(self, till: str, batch: TransactionBatch) -> Awaitable[ServiceResponse]:
        return self.pos.request(
            "POST",
            "/transactions/batches",
            json=batch,
            headers={IDENTITY_HEADER: till},
            timeout=UPLOAD_TIMEOUT_S,
        )

    def pickups(
        self, till: str, store_id: str, status: str | None, cursor: str | None, limit: int
    ) -> Awaitable[ServiceResponse]:
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if cursor is not None:
            params["cursor"] = cursor
        return self.orders.request(
            "GET", f"/stores/{store_id}/orders", params=params, headers={IDENTITY_HEADER: till}
        )

    def ready(self, till: str, order_id: str) -> Awaitable[ServiceResponse]:
        return self.orders.request(
            "POST", f"/orders/{order_id}/ready", headers={IDENTITY_HEADER: till}
        )

    def collect(self, till: str, order_id: str, code: str) -> Awaitable[ServiceResponse]:
        return self.orders.request(
            "POST",
            f"/orders/{order_id}/collect",
            json={"pickup_code": code},
            headers={IDENTITY_HEADER: till},
        )

    def take_return(
        self, till: str, key: str, data: OrderReturnRequest
    ) -> Awaitable[ServiceResponse]:
        request = ReturnRequest(order_id=data.order_id, lines=data.lines, reason=data.reason)
        return self.orders.request(
            "POST",
            "/returns",
            json=request,
            headers={IDENTITY_HEADER: till, "Idempotency-Key": key},
        )

    async def member(self, till: str, lookup: MemberLookup) -> TillMember | ServiceResponse:
        """The member's id and tier, or the loyalty service's refusal as it is."""
        r = await self.loyalty.request(
            "POST", "/members/lookup", json=lookup, headers={IDENTITY_HEADER: till}
        )
        if r.status != 200:
            return r
        account = r.decode(LoyaltyAccount)
        return msgspec.convert({"member_id": account.member_id, "tier": account.tier}, TillMember)

    async def stock(self, store_id: str, sku: str, count: int) -> StoreStock | ServiceResponse:
        """The SKU's pick-up ATS at this store and the nearest ones, or the inventory's
        refusal (an unknown SKU) as it is."""
        here = await self.directory.store(store_id)
        try:
            r = await self.inventory.request(
                "POST", "/availability/query", json={"skus": [sku], "channel": PICKUP_CHANNEL}
            )
        except ServiceCallError as exc:
            raise Unavailable(f"the inventory service does not answer: {exc}") from None
        if r.status != 200:
            return r
        result = r.decode(AvailabilityResult)
        if sku in result.unknown_skus:
            raise UnknownSku(sku)
        at = {loc.location_id: loc.ats for a in result.items for loc in a.locations}
        near = nearest_stores(self.directory.loaded(), here, count) if here is not None else []
        return StoreStock(
            sku=sku,
            stores=[
                PickupAvailability(
                    store_id=store.id,
                    name=store.name,
                    distance_km=km,
                    quantity=at.get(store.id, 0),
                    in_stock=at.get(store.id, 0) > 0,
                )
                for store, km in near
            ],
        )
