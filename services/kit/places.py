"""Which stores are nearest a shopper or a till: to a store, or to a postcode; and the
store list itself, read from the ERP (`StoreDirectory`).

A postcode is placed at the store of its country whose postcode shares the most leading
characters with it (then the numerically closest). The postcodes of the Netherlands,
Belgium and Germany are regional from their first digit, so this finds the store of the
shopper's postal area without a gazetteer; a retailer with a geocoding service plugs it in
here. Distances are great-circle
kilometres (haversine), enough to order stores a customer would drive to.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

import msgspec

from contracts.models import StockLocation
from services.kit.errors import Unavailable
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from services.kit.registry import ServiceClient

__all__ = [
    "StoreDirectory",
    "StoresUnavailable",
    "distance_km",
    "nearest_stores",
    "store_for_postcode",
]

_EARTH_RADIUS_KM = 6371.0


def distance_km(a: StockLocation, b: StockLocation) -> float:
    assert a.latitude is not None and a.longitude is not None
    assert b.latitude is not None and b.longitude is not None
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _placed(stores: Sequence[StockLocation]) -> list[StockLocation]:
    return [s for s in stores if s.latitude is not None and s.longitude is not None]


def _normal(postcode: str) -> str:
    return "".join(postcode.split()).upper()


def _number(postcode: str) -> int:
    digits = ""
    for char in postcode:
        if not char.isdigit():
            break
        digits += char
    return int(digits[:4].ljust(4, "0")) if digits else 0


def store_for_postcode(
    stores: Sequence[StockLocation], postcode: str, country: str
) -> StockLocation | None:
    """The store of `country` whose postcode shares the longest start with `postcode`, then
    whose leading digits are closest, then the lowest id; None when the country has no
    placed store."""
    wanted = _normal(postcode)
    best: tuple[int, int, str] | None = None
    chosen = None
    for store in _placed(stores):
        if store.country != country or not store.postcode:
            continue
        theirs = _normal(store.postcode)
        shared = 0
        while shared < min(len(wanted), len(theirs)) and wanted[shared] == theirs[shared]:
            shared += 1
        rank = (-shared, abs(_number(wanted) - _number(theirs)), store.id)
        if best is None or rank < best:
            best, chosen = rank, store
    return chosen


def nearest_stores(
    stores: Sequence[StockLocation], origin: StockLocation, count: int
) -> list[tuple[StockLocation, float]]:
    """Up to `count` placed stores, nearest `origin` first (the origin itself at 0 km)."""
    if origin.latitude is None or origin.longitude is None:
        return []
    ranked = sorted((distance_km(origin, s), s.id, s) for s in _placed(stores))
    return [(s, round(d, 1)) for d, _, s in ranked[:count]]


class StoresUnavailable(Unavailable):
    slug, title = "stores-unavailable", "Store list unavailable"

    def __init__(self) -> None:
        super().__init__("the store list could not be read yet", headers={"Retry-After": "5"})


class StoreDirectory:
    """The ERP's stores, read on first use and again on `refresh()` (a periodic worker's
    job); a refresh that fails keeps the list it has."""

    def __init__(self, erp: ServiceClient) -> None:
        self.erp = erp
        self._stores: list[StockLocation] | None = None
        self._loading = asyncio.Lock()

    async def stores(self) -> list[StockLocation]:
        if self._stores is None:
            async with self._loading:
                if self._stores is None:
                    try:
                        await self.refresh()
                    except (ServiceCallError, msgspec.DecodeError):
                        raise StoresUnavailable() from None
        assert self._stores is not None
        return self._stores

    def loaded(self) -> list[StockLocation]:
        """The list as last read (empty before the first read)."""
        return self._stores or []

    async def refresh(self) -> None:
        r = await self.erp.request("GET", "/locations")
        if r.status != 200:
            raise StoresUnavailable()
        locations = r.decode(list[StockLocation])
        self._stores = [s for s in locations if s.kind == "store"]

    async def store(self, store_id: str) -> StockLocation | None:
        return next((s for s in await self.stores() if s.id == store_id), None)
