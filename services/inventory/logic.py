"""Available to sell: positions read through a Redis cache that shields the ERP, and
reservations that can never oversell.

Reads: a SKU's positions come from Redis. A missing or expired entry is fetched from the
ERP once, however many readers want it: readers in this process wait on one future, and
replicas take a short Redis lock per SKU (the others wait for the winner's write). Entries
are refreshed early with probabilistic early expiration (XFetch, Vattani et al. 2015):
a reader refreshes in the background with a probability that grows as expiry nears and as
fetches get slower, so hot SKUs rarely expire under load; one that does is still served,
for `revalidate_s` past its freshness, while one refresh runs (stale-while-revalidate,
RFC 5861: a hit whose Cache-Status ttl is negative). When the ERP fails, entries are served
past their freshness up to `stale_max_s` and marked (RFC 9211 Cache-Status).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from contracts.models import (
    Availability,
    LocationAvailability,
    PositionsQuery,
    PositionsResult,
    Reservation,
    ReservationRequest,
)
from services.inventory.errors import (
    BadReservation,
    InsufficientStock,
    PositionsUnavailable,
    ReservationConflict,
    UnknownChannel,
    UnknownReservation,
    UnknownSku,
)
from services.kit.registry import ServiceCallError

if TYPE_CHECKING:
    from services.inventory.store import AtsStore
    from services.kit.registry import ServiceClient

__all__ = [
    "AtsConfig",
    "AtsService",
    "CacheStatus",
    "Entry",
    "load_ats_config",
]

log = logging.getLogger("retailmesh.inventory")


class ChannelConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: in allocation order: a channel reservation takes the first with enough stock
    locations: Annotated[list[str], msgspec.Meta(min_length=1)]


class AtsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    channels: dict[str, ChannelConfig]
    #: units kept back per location; `default` for the others
    safety_stock: dict[str, Annotated[int, msgspec.Meta(ge=0)]] = {}

    def safety(self, location: str) -> int:
        return self.safety_stock.get(location, self.safety_stock.get("default", 0))


def load_ats_config(path: str | Path) -> AtsConfig:
    try:
        return msgspec.toml.decode(Path(path).read_bytes(), type=AtsConfig)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


class Entry(msgspec.Struct, frozen=True):
    """A SKU's cached positions: on hand and version per location, and reservations."""

    source: str
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
        source=pos.get(b"_source", b"erp-fetch").decode(),
        known=pos.get(b"_known") == b"1",
        fetched_at=float(pos[b"_fetched"]),
        delta=float(pos.get(b"_delta", b"0")),
        on_hand=on_hand,
        versions=versions,
        reserved={k.decode(): int(v) for k, v in res.items()},
    )


class AtsService:
    def __init__(
        self,
        store: AtsStore,
        erp: ServiceClient,
        config: AtsConfig,
        *,
        refresh_s: float,
        stale_max_s: float,
        revalidate_s: float = 0.0,
        lock_ms: int,
        reservation_ttl_s: int,
        beta: float = 1.0,
    ) -> None:
        self.store, self.erp, self.config = store, erp, config
        self.refresh_s, self.stale_max_s = refresh_s, stale_max_s
        self.revalidate_s = revalidate_s
        self.lock_ms, self.reservation_ttl_s, self.beta = lock_ms, reservation_ttl_s, beta
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._refreshing: set[str] = set()
        self.stats: Counter[str] = Counter()
        #: reads served per SKU by this replica (for the operators' cache view)
        self.hits: Counter[str] = Counter()

    # reads

    def channel_locations(self, channel: str) -> list[str]:
        found = self.config.channels.get(channel)
        if found is None:
            raise UnknownChannel(channel, sorted(self.config.channels))
        return found.locations

    async def availability(
        self, skus: list[str], channel: str
    ) -> tuple[list[tuple[Availability, CacheStatus]], list[str]]:
        locations = self.channel_locations(channel)
        entries = await self.entries(list(dict.fromkeys(skus)))
        items, unknown = [], []
        for sku, (entry, status) in entries.items():
            if not entry.known:
                unknown.append(sku)
                continue
            items.append((self._availability(sku, channel, locations, entry), status))
        return items, unknown

    def _availability(
        self, sku: str, channel: str, locations: list[str], entry: Entry
    ) -> Availability:
        rows = []
        for loc in locations:
            on_hand = entry.on_hand.get(loc, 0)
            reserved = entry.reserved.get(loc, 0)
            safety = self.config.safety(loc)
            rows.append(
                LocationAvailability(
                    location_id=loc,
                    on_hand=on_hand,
                    reserved=reserved,
                    safety_stock=safety,
                    ats=max(on_hand - reserved - safety, 0),
                )
            )
        return Availability(
            sku=sku,
            channel=channel,
            ats=sum(r.ats for r in rows),
            locations=rows,
            as_of=datetime.fromtimestamp(entry.fetched_at, UTC),
        )

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

    async def _read(self, sku: str, now: float) -> Entry | None:
        expired, pos, res = await self.store.read(sku, now)
        if expired:
            self.stats["reservations_expired"] += expired
        return _entry(pos, res)

    def _maybe_refresh_early(self, sku: str, entry: Entry, now: float) -> None:
        # XFetch: refresh when now - delta * beta * ln(rand) passes the expiry.
        expiry = entry.fetched_at + self.refresh_s
        jitter = -max(entry.delta, 0.001) * self.beta * math.log(random.random() or 1e-12)
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

    # reservations

    async def reserve(
        self, request: ReservationRequest, principal: str = ""
    ) -> tuple[Reservation, bool]:
        """Hold units for `principal` (who made the reservation: only it, and operators,
        may read, confirm or release it; the same id by another principal is a conflict)."""
        if (request.channel is None) == (request.location_id is None):
            raise BadReservation("give a channel or a location_id (one of them)")
        if request.location_id is not None:
            locations = [request.location_id]
        else:
            locations = self.channel_locations(request.channel or "")
        fingerprint = hashlib.sha256(
            msgspec.json.encode(request) + b"|" + principal.encode()
        ).hexdigest()[:32]
        ttl = request.ttl_s or self.reservation_ttl_s
        for _ in range(2):
            now = time.time()
            result = await self.store.reserve(
                request.sku,
                request.reservation_id,
                request.owner,
                request.quantity,
                now,
                now + ttl,
                fingerprint,
                [(loc, self.config.safety(loc)) for loc in locations],
                principal,
            )
            match result:
                case ["ok", loc]:
                    self.stats["reservations_made"] += 1
                    return Reservation(
                        reservation_id=request.reservation_id,
                        sku=request.sku,
                        quantity=request.quantity,
                        location_id=str(loc),
                        owner=request.owner,
                        status="held",
                        expires_at=datetime.fromtimestamp(now + ttl, UTC),
                    ), True
                case ["exists", _status, _loc, same]:
                    if not same:
                        raise ReservationConflict(
                            f"reservation {request.reservation_id} exists with other content"
                        )
                    return await self.get(request.reservation_id, principal), False
                case ["refused", best]:
                    self.stats["reservations_refused"] += 1
                    raise InsufficientStock(request.sku, request.quantity, int(best))
                case ["miss"]:
                    entries = await self.entries([request.sku])
                    if not entries[request.sku][0].known:
                        raise UnknownSku(request.sku)
        raise PositionsUnavailable(f"no positions for {request.sku}")

    async def get(self, rid: str, principal: str | None = None) -> Reservation:
        """A reservation, for its principal (None: an operator, any reservation); another
        principal's is answered as unknown (404), never shown."""
        raw = await self.store.reservation(rid)
        if raw is None or not _belongs(raw, principal):
            raise UnknownReservation(rid)
        expires = raw.get("expires") or ""
        status = raw["status"]
        if status == "held" and expires and float(expires) <= time.time():
            status = "expired"  # not purged yet; it no longer holds anything
        return Reservation(
            reservation_id=rid,
            sku=raw["sku"],
            quantity=int(raw["qty"]),
            location_id=raw["loc"],
            owner=raw["owner"],
            status=status,  # type: ignore[arg-type]
            expires_at=datetime.fromtimestamp(float(expires), UTC)
            if expires and status == "held"
            else None,
        )

    async def settle(self, rid: str, action: str, principal: str | None = None) -> Reservation:
        """Confirm or release, by the reservation's principal (None: an operator); both
        idempotent. Confirming what is gone is a conflict."""
        await self.get(rid, principal)  # another principal's: 404, and nothing changes
        status, _changed = await self.store.settle(rid, time.time(), action)
        if status == "missing":
            raise UnknownReservation(rid)
        if action == "confirm" and status != "confirmed":
            raise ReservationConflict(f"reservation {rid} is {status}; it cannot be confirmed")
        if action == "release" and status not in ("released", "expired"):
            raise ReservationConflict(f"reservation {rid} is {status}; it cannot be released")
        return await self.get(rid, principal)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.stats)


def _belongs(raw: dict[str, str], principal: str | None) -> bool:
    # reservations made before principals were kept have no `by`: anyone with the scope
    return principal is None or raw.get("by", "") in ("", principal)
