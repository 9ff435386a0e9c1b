"""The ERP's catalogue, kept in process: prices for checkout, known SKUs for till intake.

Orders are priced by the ERP's catalogue, never by the client; a till's lines must name
SKUs the catalogue knows. A product is kept for
`ttl_s` and, when the ERP fails or refuses (429/5xx), served up to `stale_s` old, so that a
checkout does not depend on the ERP answering right now: the order's posting waits in the
outbox for the ERP anyway. Concurrent misses for one SKU share one fetch.

Written by hand (not aiocache): the stale-if-error fallback and "unknown SKU" as a cached
answer are the whole of it, and neither fits a caching decorator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from contracts.models import Product
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from services.kit.registry import ServiceClient

__all__ = ["Catalogue", "CatalogueUnavailable"]


class CatalogueUnavailable(Exception):
    """No price fresh enough and the ERP does not answer."""


class Catalogue:
    def __init__(self, erp: ServiceClient, *, ttl_s: float = 60.0, stale_s: float = 86_400.0):
        self.erp, self.ttl_s, self.stale_s = erp, ttl_s, stale_s
        self._entries: dict[str, tuple[Product | None, float]] = {}
        self._fetching: dict[str, asyncio.Future[Product | None]] = {}

    async def product(self, sku: str) -> Product | None:
        """The product, or None for a SKU the ERP does not know."""
        entry = self._entries.get(sku)
        now = time.monotonic()
        if entry is not None and now - entry[1] < self.ttl_s:
            return entry[0]
        inflight = self._fetching.get(sku)
        if inflight is not None:
            return await asyncio.shield(inflight)
        future: asyncio.Future[Product | None] = asyncio.get_running_loop().create_future()
        self._fetching[sku] = future
        try:
            product = await self._fetch(sku, entry, now)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        else:
            future.set_result(product)
            return product
        finally:
            del self._fetching[sku]

    async def unknown(self, skus: Iterable[str], concurrency: int = 16) -> set[str]:
        """The SKUs of `skus` the catalogue certainly does not know. One the ERP cannot be
        asked about now (and that is not cached) counts as known: the ERP itself refuses
        it later, rather than a store's sales waiting on the ERP."""
        limit = asyncio.Semaphore(concurrency)

        async def missing(sku: str) -> bool:
            async with limit:
                try:
                    return await self.product(sku) is None
                except CatalogueUnavailable:
                    return False

        wanted = sorted(set(skus))
        found = await asyncio.gather(*(missing(sku) for sku in wanted))
        return {sku for sku, gone in zip(wanted, found, strict=True) if gone}

    async def _fetch(
        self, sku: str, entry: tuple[Product | None, float] | None, now: float
    ) -> Product | None:
        try:
            response = await self.erp.request("GET", f"/products/{sku}", timeout=5.0)
        except ServiceCallError:
            response = None
        if response is not None and response.status == 200:
            product = response.decode(Product)
            self._entries[sku] = (product, now)
            return product
        if response is not None and response.status == 404:
            self._entries[sku] = (None, now)
            return None
        if entry is not None and now - entry[1] < self.stale_s:
            return entry[0]
        status = "no answer" if response is None else str(response.status)
        raise CatalogueUnavailable(f"the ERP's catalogue does not answer ({status})")
