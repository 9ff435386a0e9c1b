"""Available to sell: positions read through the cache that shields the ERP (`cache.py`),
per channel, and reservations that can never oversell."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from contracts.models import (
    Availability,
    LocationAvailability,
    Reservation,
    ReservationRequest,
)
from services.inventory.cache import PositionCache
from services.inventory.errors import (
    InsufficientStock,
    PositionsUnavailable,
    ReservationConflict,
    UnknownChannel,
    UnknownReservation,
    UnknownSku,
)

if TYPE_CHECKING:
    from services.inventory.cache import CacheStatus, Entry
    from services.inventory.store import AtsStore
    from services.kit.registry import ServiceClient

__all__ = ["AtsConfig", "AtsService", "load_ats_config"]

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
        self.store, self.config, self.reservation_ttl_s = store, config, reservation_ttl_s
        self.stats: Counter[str] = Counter()
        self.cache = PositionCache(
            store,
            erp,
            refresh_s=refresh_s,
            stale_max_s=stale_max_s,
            revalidate_s=revalidate_s,
            lock_ms=lock_ms,
            beta=beta,
            stats=self.stats,
        )
        #: reads served per SKU by this replica (for the operators' cache view)
        self.hits = self.cache.hits

    async def close(self) -> None:
        await self.cache.close()

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
        entries = await self.cache.entries(list(dict.fromkeys(skus)))
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

    # reservations

    async def reserve(
        self, request: ReservationRequest, principal: str = ""
    ) -> tuple[Reservation, bool]:
        """Hold units for `principal` (who made the reservation: only it, and operators,
        may read, confirm or release it; the same id by another principal is a conflict)."""
        if request.location_id:
            locations = [request.location_id]
        else:  # the other of the two (the body's rules)
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
                    entries = await self.cache.entries([request.sku])
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
