"""Which stores are nearest a shopper: to a store they name, or to their postcode.

A postcode is placed at the store of its country whose postcode shares the most leading
characters with it (then the numerically closest). The postcodes of the Netherlands,
Belgium and Germany are regional from their first digit, so this finds the store of the
shopper's postal area without a gazetteer; a retailer with a geocoding service plugs it in
here. Distances are great-circle
kilometres (haversine), enough to order stores a customer would drive to.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from contracts.models import StockLocation

__all__ = ["distance_km", "nearest_stores", "store_for_postcode"]

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
