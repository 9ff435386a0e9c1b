"""The web shop's copy of the catalogue and the store list, refreshed from the ERP in the
background: product pages and searches read it and never call the ERP per request.

The whole catalogue is read page by page (a keyset walk of `/products`) every
`refresh_s`; a refresh that fails keeps the copy it has (stale beats down for a shop window)
and the failure shows in `/readyz` through the worker's liveness. Until the first copy
arrives, a request waits for it (one load, whoever asks), and is answered 503 when the ERP
cannot give it.

Written by hand: search by text and category with keyset pages over a few thousand
products is a sorted list and a filter; an engine (SQLite FTS, a search service) is what a
catalogue of millions would plug in here.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from typing import TYPE_CHECKING, TypeVar

import msgspec

from contracts.models import Product, ProductPage
from services.kit.errors import Unavailable
from services.kit.places import StoreDirectory, StoresUnavailable
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from contracts.models import StockLocation
    from services.kit.registry import ServiceClient

__all__ = ["CatalogueNotLoaded", "Showroom"]

log = logging.getLogger("retailmesh.web")
T = TypeVar("T")
_PAGE = 200


class CatalogueNotLoaded(Unavailable):
    slug, title = "catalogue-unavailable", "Catalogue unavailable"

    def __init__(self) -> None:
        super().__init__("the catalogue could not be read yet", headers={"Retry-After": "5"})


class Showroom:
    def __init__(self, erp: ServiceClient) -> None:
        self.erp = erp
        self._products: list[Product] = []  # active ones, by SKU
        self._skus: list[str] = []
        self._by_sku: dict[str, Product] = {}
        self.directory = StoreDirectory(erp)
        self._loaded = False
        self._loading: asyncio.Lock | None = None

    async def ready(self) -> None:
        """Wait for the first copy (loading it if nobody has yet)."""
        if self._loaded:
            return
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if not self._loaded:
                try:
                    await self.refresh()
                except (
                    ServiceCallError,
                    _ErpRefused,
                    StoresUnavailable,
                    msgspec.DecodeError,
                ) as exc:
                    log.warning("catalogue load failed: %s", exc)
                    raise CatalogueNotLoaded() from None

    async def refresh(self) -> None:
        """Read the whole catalogue and the stores; swap them in at once."""
        products: list[Product] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": _PAGE}
            if cursor is not None:
                params["cursor"] = cursor
            page = await self._get("/products", params, ProductPage)
            products += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        await self.directory.refresh()
        shown = sorted((p for p in products if p.active), key=lambda p: p.sku)
        self._products = shown
        self._skus = [p.sku for p in shown]
        self._by_sku = {p.sku: p for p in shown}
        self._loaded = True

    async def _get(self, path: str, params: dict[str, str | int], type_: type[T]) -> T:
        r = await self.erp.request("GET", path, params=params)
        if r.status != 200:
            raise _ErpRefused(f"ERP answered {r.status} to GET {path}")
        return msgspec.json.decode(r.body, type=type_)

    def product(self, sku: str) -> Product | None:
        return self._by_sku.get(sku)

    def stores(self) -> list[StockLocation]:
        return self.directory.loaded()

    def search(
        self, text: str | None, category: str | None, after: str | None, limit: int
    ) -> tuple[list[Product], str | None]:
        """Products matching every word of `text` (in the name or the SKU, any case) and the
        category, by SKU, after the cursor; and the cursor of the next page, if any."""
        words = text.lower().split() if text else []
        start = bisect.bisect_right(self._skus, after) if after else 0
        found: list[Product] = []
        for product in self._products[start:]:
            if category is not None and product.category != category:
                continue
            haystack = f"{product.name} {product.sku}".lower()
            if all(word in haystack for word in words):
                found.append(product)
                if len(found) > limit:
                    break
        if len(found) > limit:
            return found[:limit], found[limit - 1].sku
        return found, None


class _ErpRefused(Exception):
    pass
