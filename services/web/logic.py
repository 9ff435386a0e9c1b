"""Product pages for the web shop: the catalogue (the showroom's copy), the price, and what
is available to sell, composed from the inventory service's cache; never an ERP call per
request.

Ship availability is the `web` channel's ATS (the distribution centres); pick-up
availability is the `pickup` channel's ATS at each store. v1's quantity is the ship
quantity, so the two versions agree by construction.

Product pages read together share their calls to the inventory: the SKUs that pages want
at the same moment go in one bulk query per channel (`Coalescer`), so a flash sale's
thousands of page views a second make a few hundred inventory calls, each answer as fresh
as the inventory's own.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

import msgspec

from contracts.models import Availability, AvailabilityResult
from contracts.web import (
    PickupAvailability,
    ShipAvailability,
    WebProductPageV1,
    WebProductPageV2,
    WebProductV1,
    WebProductV2,
)
from services.kit.coalesce import Coalescer
from services.kit.errors import NotFound, Unavailable
from services.kit.places import nearest_stores, store_for_postcode
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from contracts.models import Product, StockLocation
    from services.kit.registry import ServiceClient
    from services.web.showroom import Showroom

__all__ = ["Place", "UnknownProduct", "UnknownStore", "WebShop"]

SHIP_CHANNEL = "web"
PICKUP_CHANNEL = "pickup"
#: SKUs of one inventory query (its bound)
_QUERY_SKUS = 100


class UnknownProduct(NotFound):
    slug, title = "unknown-product", "Unknown product"

    def __init__(self, sku: str) -> None:
        super().__init__(f"the shop sells no product {sku}", sku=sku)


class UnknownStore(NotFound):
    slug, title = "unknown-store", "Unknown store"

    def __init__(self, store_id: str) -> None:
        super().__init__(f"no store {store_id}", store_id=store_id)


class StockUnavailable(Unavailable):
    slug, title = "stock-unavailable", "Stock unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "2"})


class Place(msgspec.Struct, frozen=True, kw_only=True):
    """Where the shopper is: a store they name, or a postcode in a country."""

    store_id: str | None = None
    postcode: str | None = None
    country: str = "NL"
    #: how many stores to show pick-up availability for
    stores: int = 3


class WebShop:
    def __init__(self, showroom: Showroom, inventory: ServiceClient) -> None:
        self.showroom, self.inventory = showroom, inventory
        self._lookups = {
            channel: Coalescer(partial(self._fetch, channel), max_batch=1000)
            for channel in (SHIP_CHANNEL, PICKUP_CHANNEL)
        }

    async def product_v1(self, sku: str) -> WebProductV1:
        product = await self._product(sku)
        ship = await self._ats([sku], SHIP_CHANNEL)
        return _v1(product, ship)

    async def product_v2(self, sku: str, place: Place) -> WebProductV2:
        product = await self._product(sku)
        near = self._near(place)
        ship, pickup = await self._ship_and_pickup([sku], near)
        return self._v2(product, ship, pickup, near, place.stores)

    async def list_v1(
        self, text: str | None, category: str | None, after: str | None, limit: int
    ) -> WebProductPageV1:
        await self.showroom.ready()
        products, cursor = self.showroom.search(text, category, after, limit)
        ship = await self._ats([p.sku for p in products], SHIP_CHANNEL)
        return WebProductPageV1(items=[_v1(p, ship) for p in products], next_cursor=cursor)

    async def list_v2(
        self, text: str | None, category: str | None, after: str | None, limit: int, place: Place
    ) -> WebProductPageV2:
        await self.showroom.ready()
        products, cursor = self.showroom.search(text, category, after, limit)
        near = self._near(place)
        ship, pickup = await self._ship_and_pickup([p.sku for p in products], near)
        items = [self._v2(p, ship, pickup, near, place.stores) for p in products]
        return WebProductPageV2(items=items, next_cursor=cursor)

    async def _product(self, sku: str) -> Product:
        await self.showroom.ready()
        product = self.showroom.product(sku)
        if product is None:
            raise UnknownProduct(sku)
        return product

    def _near(self, place: Place) -> StockLocation | None:
        stores = self.showroom.stores()
        if place.store_id is not None:
            found = next((s for s in stores if s.id == place.store_id), None)
            if found is None:
                raise UnknownStore(place.store_id)
            return found
        if place.postcode is not None:
            return store_for_postcode(stores, place.postcode, place.country)
        return None

    async def _ship_and_pickup(
        self, skus: list[str], near: StockLocation | None
    ) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        if near is None:
            return await self._ats(skus, SHIP_CHANNEL), {}
        ship, pickup = await asyncio.gather(
            self._ats(skus, SHIP_CHANNEL), self._per_location(skus, PICKUP_CHANNEL)
        )
        return ship, pickup

    def _v2(
        self,
        product: Product,
        ship: dict[str, int],
        pickup: dict[tuple[str, str], int],
        near: StockLocation | None,
        count: int,
    ) -> WebProductV2:
        stores: Sequence[tuple[StockLocation, float]] = (
            nearest_stores(self.showroom.stores(), near, count) if near is not None else ()
        )
        quantity = ship.get(product.sku, 0)
        return WebProductV2(
            sku=product.sku,
            name=product.name,
            category=product.category,
            price=product.price,
            ship=ShipAvailability(quantity=quantity, in_stock=quantity > 0),
            pickup=[
                PickupAvailability(
                    store_id=store.id,
                    name=store.name,
                    distance_km=km,
                    quantity=(units := pickup.get((product.sku, store.id), 0)),
                    in_stock=units > 0,
                )
                for store, km in stores
            ],
            near=near.id if near is not None else None,
        )

    async def _ats(self, skus: list[str], channel: str) -> dict[str, int]:
        """The channel's ATS of each SKU (none for one the inventory does not know)."""
        found = await self._availability(skus, channel)
        return {sku: a.ats for sku, a in found.items()}

    async def _per_location(self, skus: list[str], channel: str) -> dict[tuple[str, str], int]:
        found = await self._availability(skus, channel)
        return {(sku, loc.location_id): loc.ats for sku, a in found.items() for loc in a.locations}

    async def _availability(self, skus: list[str], channel: str) -> dict[str, Availability]:
        lookup = self._lookups[channel]
        found = await asyncio.gather(*(lookup.submit(sku) for sku in skus))
        return {sku: a for sku, a in zip(skus, found, strict=True) if a is not None}

    async def _fetch(self, channel: str, batch: list[str]) -> list[Availability | None]:
        """One answer per SKU of `batch` (which repeats the hot ones): each distinct SKU
        asked once, up to 100 a query, the queries at once."""
        wanted = sorted(set(batch))
        chunks = [wanted[i : i + _QUERY_SKUS] for i in range(0, len(wanted), _QUERY_SKUS)]
        results = await asyncio.gather(*(self._query(chunk, channel) for chunk in chunks))
        known = {item.sku: item for result in results for item in result.items}
        return [known.get(sku) for sku in batch]

    async def _query(self, skus: list[str], channel: str) -> AvailabilityResult:
        try:
            r = await self.inventory.request(
                "POST", "/availability/query", json={"skus": skus, "channel": channel}
            )
        except ServiceCallError as exc:
            raise StockUnavailable(f"the inventory service does not answer: {exc}") from None
        if r.status != 200:
            raise StockUnavailable(f"the inventory service answered {r.status}")
        return r.decode(AvailabilityResult)


def _v1(product: Product, ship: dict[str, int]) -> WebProductV1:
    quantity = ship.get(product.sku, 0)
    return WebProductV1(
        sku=product.sku,
        name=product.name,
        category=product.category,
        price=product.price,
        quantity=quantity,
        in_stock=quantity > 0,
    )
