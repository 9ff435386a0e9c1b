"""Positions read through a Redis cache that shields the ERP.

A SKU's positions come from Redis. A missing or expired entry is fetched from the ERP once,
however many readers want it: readers in this process wait on one future, and replicas take
a short Redis lock per SKU (the others wait for the winner's write). Entries are refreshed
early with probabilistic early expiration (XFetch, Vattani et al. 2015): a reader refreshes
in the background with a probability that grows as expiry nears and as fetches get slower,
so hot SKUs rarely expire under load; one that does is still served, for `revalidate_s`
past its freshness, while one refresh runs (stale-while-revalidate, RFC 5861: a hit whose
Cache-Status ttl is negative). When the ERP fails, entries are served past their freshness
up to `stale_max_s` and marked (RFC 9211 Cache-Status).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Literal

import msgspec

from contracts.models import PositionsQuery, PositionsResult
from services.inventory.errors import PositionsUnavailable
from services.kit.registry import ServiceCallError
from services.kit.rng import rng

if TYPE_CHECKING:
    from services.inventory.store import AtsStore
    from services.kit.registry import ServiceClient

__all__ = ["CacheStatus", "Entry", "PositionCache", "Source"]

#: what wrote a SKU's cached positions last: a fetch from the ERP, or a stock event
Source = Literal["erp-fetch", "event"]


class Entry(msgspec.Struct, frozen=True):
    """A SKU's cached positions: on hand and version per location, and reservations."""

    source: Source
    known: bool
    fetched_at: float
    delta: float
    on_hand: dict[str, int]
    versions: dict[str, int]
    reserved: dict[str, int]


class CacheStatus(msgspec.Struct, frozen=True):
    """How an answer was served (RFC 9211): `hit`, `fwd=miss`, or a stale serve."""

    hit: bool
    age: float
    ttl: float
    stale: bool = False
    collapsed: bool = False
    #: served past its freshness while a refresh runs (stale-while-revalidate)
    revalidating: bool = False

    def header(self, name: str = "retailmesh-ats") -> str:
        parts = [name]
        parts.append("hit" if self.hit else "fwd=miss")
        if self.collapsed:
            parts.append("collapsed")
        parts.append(f"ttl={math.floor(self.ttl)}")
        if self.stale:
            parts.append('detail="stale-if-error"')
        elif self.revalidating:
            parts.append('detail="stale-while-revalidate"')
        return "; ".join(parts)


def _entry(pos: dict[bytes, bytes], res: dict[bytes, bytes]) -> Entry | None:
    if b"_fetched" not in pos:
        return None
    on_hand: dict[str, int] = {}
    versions: dict[str, int] = {}
    for key, value in pos.items():
        if key.startswith(b"oh:"):
            on_hand[key[3:].decode()] = int(value)
        elif key.startswith(b"v:"):
            versions[key[2:].decode()] = int(value)
    return Entry(
        source="event" if pos.get(b"_source") == b"event" else "erp-fetch",
        known=pos.get(b"_known") == b"1",
        fetched_at=float(pos[b"_fetched"]),
        delta=float(pos.get(b"_delta", b"0")),
        on_hand=on_hand,
        versions=versions,
        # never below 0 (the reservation script counts so too): a counter that lost its key
        # while purges went on must not read as extra stock
        reserved={k.decode(): max(0, int(v)) for k, v in res.items()},
    )


class PositionCache:
    def __init__(
        self,
        store: AtsStore,
        erp: ServiceClient,
        *,
        refresh_s: float,
        stale_max_s: float,
        revalidate_s: float,
        lock_ms: int,
        beta: float,
        stats: Counter[str],
    ) -> None:
        self.store, self.erp = store, erp
        self.refresh_s, self.stale_max_s = refresh_s, stale_max_s
        self.revalidate_s, self.lock_ms, self.beta = revalidate_s, lock_ms, beta
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._refreshing: set[str] = set()
        #: shared with the service: reads, misses, fetches and reservations in one view
        self.stats = stats
        #: reads served per SKU by this replica (for the operators' cache view)
        self.hits: Counter[str] = Counter()

    async def entries(self, skus: list[str]) -> dict[str, tuple[Entry, CacheStatus]]:
        """Each SKU's entry, fetched from the ERP only where none is fresh enough."""
        now = time.time()
        out: dict[str, tuple[Entry, CacheStatus]] = {}
        found = {sku: await self._read(sku, now) for sku in skus}
        usable_s = self.refresh_s + self.revalidate_s
        stale_or_missing = [
            sku for sku, e in found.items() if e is None or now - e.fetched_at >= usable_s
        ]
        fetch_error: Exception | None = None
        collapsed: set[str] = set()
        if stale_or_missing:
            try:
                collapsed = await self._load(stale_or_missing)
            except PositionsUnavailable as exc:
                fetch_error = exc
            now = time.time()
            for sku in stale_or_missing:
                found[sku] = await self._read(sku, now)
        for sku in skus:
            self.hits[sku] += 1
            entry = found[sku]
            if entry is None:
                self.stats["unavailable"] += 1
                raise fetch_error or PositionsUnavailable(f"no positions for {sku}")
            age = now - entry.fetched_at
            ttl = self.refresh_s - age
            if sku not in stale_or_missing:
                self.stats["hit"] += 1
                revalidating = age >= self.refresh_s
                out[sku] = (entry, CacheStatus(True, age, ttl, revalidating=revalidating))
                if revalidating:
                    self.stats["revalidating"] += 1
                    self._refresh_in_background(sku)
                else:
                    self._maybe_refresh_early(sku, entry, now)
                continue
            if age >= self.refresh_s:  # the fetch failed: stale-if-error, for a while
                if age >= self.stale_max_s:
                    self.stats["unavailable"] += 1
                    raise PositionsUnavailable(
                        f"the ERP does not answer and the positions of {sku} are "
                        f"{int(age)}s old (more than {int(self.stale_max_s)}s)"
                    )
                self.stats["stale"] += 1
                out[sku] = (entry, CacheStatus(True, age, ttl, stale=True))
                continue
            self.stats["miss"] += 1
            out[sku] = (entry, CacheStatus(False, age, ttl, collapsed=sku in collapsed))
        return out

    async def peek(self, sku: str) -> Entry | None:
        """The SKU's entry as cached now, without a fetch (the operators' view)."""
        _, pos, res = await self.store.read(sku, time.time())
        return _entry(pos, res)

    async def _read(self, sku: str, now: float) -> Entry | None:
        expired, pos, res = await self.store.read(sku, now)
        if expired:
            self.stats["reservations_expired"] += expired
        return _entry(pos, res)

    def _maybe_refresh_early(self, sku: str, entry: Entry, now: float) -> None:
        # XFetch: refresh when now - delta * beta * ln(rand) passes the expiry.
        expiry = entry.fetched_at + self.refresh_s
        jitter = -max(entry.delta, 0.001) * self.beta * math.log(rng.random() or 1e-12)
        if now + jitter >= expiry and sku not in self._inflight and sku not in self._refreshing:
            self.stats["early_refresh"] += 1
            self._refresh_in_background(sku)

    async def close(self) -> None:
        """Stop the refreshes running in the background."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def _refresh_in_background(self, sku: str) -> None:
        if sku in self._inflight or sku in self._refreshing:
            return  # one refresh per SKU at a time
        self._refreshing.add(sku)
        task = asyncio.create_task(self._refresh_quietly(sku))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_quietly(self, sku: str) -> None:
        # On failure the entry stays; a reader past its freshness will try again.
        try:
            with contextlib.suppress(PositionsUnavailable):
                await self._load([sku])
        finally:
            self._refreshing.discard(sku)

    # single flight

    async def _load(self, skus: list[str]) -> set[str]:
        """Make sure these SKUs were fetched after now; returns those that waited on another
        fetch (collapsed) rather than fetching themselves."""
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[None]] = []
        mine: list[str] = []
        collapsed: set[str] = set()
        for sku in skus:
            future = self._inflight.get(sku)
            if future is not None:
                self.stats["waiters"] += 1
                waiting.append(future)
                collapsed.add(sku)
            else:
                self._inflight[sku] = loop.create_future()
                mine.append(sku)
        error: Exception | None = None
        if mine:
            try:
                collapsed |= await self._fetch_across_replicas(mine)
            except PositionsUnavailable as exc:
                error = exc
            finally:
                for sku in mine:
                    future = self._inflight.pop(sku)
                    if error is not None:
                        future.set_exception(error)
                        future.exception()  # consumed here; waiters see it through gather
                    else:
                        future.set_result(None)
        results = await asyncio.gather(*waiting, return_exceptions=True)
        error = error or next((r for r in results if isinstance(r, Exception)), None)
        if error is not None:
            raise error
        return collapsed

    async def _fetch_across_replicas(self, skus: list[str]) -> set[str]:
        started = time.time()
        redis = self.store.redis
        locked: list[str] = []
        others: list[str] = []
        for sku in skus:
            if await redis.set(self.store.lock_key(sku), "1", nx=True, px=self.lock_ms):
                locked.append(sku)
            else:
                others.append(sku)
        try:
            for batch in (locked[i : i + 100] for i in range(0, len(locked), 100)):
                await self._fetch(batch)
        finally:
            if locked:
                await redis.delete(*[self.store.lock_key(s) for s in locked])
        # Another replica holds the lock: wait for its write, or for its lock to lapse.
        deadline = started + self.lock_ms / 1000 + 0.5
        pending = set(others)
        while pending and time.time() < deadline:
            for sku in list(pending):
                _, pos, _ = await self.store.read(sku, time.time())
                if b"_fetched" in pos and float(pos[b"_fetched"]) >= started - 0.001:
                    pending.discard(sku)
            if pending:
                await asyncio.sleep(0.02)
        if pending:  # the other replica failed: fetch what it left
            await self._fetch(sorted(pending))
        return set(others) - pending

    async def _fetch(self, skus: list[str]) -> None:
        if not skus:
            return
        self.stats["erp_fetches"] += 1
        began = time.time()
        try:
            response = await self.erp.request(
                "POST", "/inventory/query", json=PositionsQuery(skus=skus), timeout=5.0
            )
        except ServiceCallError as exc:
            self.stats["erp_errors"] += 1
            raise PositionsUnavailable(f"the ERP did not answer: {exc}") from None
        if response.status != 200:
            self.stats["erp_errors"] += 1
            if response.status == 429:
                self.stats["erp_429"] += 1
            raise PositionsUnavailable(f"the ERP answered {response.status}")
        result = response.decode(PositionsResult)
        fetched_at = time.time()
        delta = fetched_at - began
        ttl = int(self.stale_max_s + self.refresh_s) + 60
        for item in result.items:
            await self.store.write(
                item.sku,
                fetched_at,
                delta,
                [(p.location_id, p.on_hand, p.version) for p in item.positions],
                ttl,
            )
        for sku in result.unknown_skus:
            await self.store.write(sku, fetched_at, delta, None, ttl)
