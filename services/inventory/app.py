"""Inventory process API: available to sell per channel, and reservations."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Response, get, post
from litestar.di import Provide
from litestar.params import JSONBody, PathParameter, QueryParameter, SkipValidation

from contracts.bounds import Count, Signed
from contracts.events import ERP_STREAM
from contracts.models import (
    MAX_LOCATIONS,
    POSTING_ID_PATTERN,
    SKU_PATTERN,
    Availability,
    AvailabilityQuery,
    AvailabilityResult,
    LocationId,
    Reservation,
    ReservationRequest,
    Sku,
)
from services.inventory.cache import Source
from services.inventory.errors import PositionsUnavailable, UnknownSku
from services.inventory.events import ERP_DECODER, handle_erp_event
from services.inventory.logic import AtsService, load_ats_config
from services.inventory.memory import MemoryAtsStore
from services.inventory.store import AtsStore
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.errors import problem_responses
from services.kit.identity import Identity, require_scope
from services.kit.registry import Registry
from services.kit.settings import Settings

__all__ = ["InventorySettings", "create_app", "create_app_from_env"]

Ats = SkipValidation[AtsService]
Caller = SkipValidation[Identity]
SkuParam = Annotated[str, PathParameter(pattern=SKU_PATTERN)]
ReservationParam = Annotated[str, PathParameter(pattern=POSTING_ID_PATTERN)]
ChannelParam = Annotated[str, QueryParameter(pattern=r"^[a-z][a-z0-9-]{0,31}\Z")]


class InventorySettings(Settings, frozen=True, kw_only=True):
    inventory_config: str = "deploy/config/inventory.toml"
    #: how long positions are fresh; XFetch refreshes hot SKUs before that
    ats_refresh_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    #: past its freshness, an entry is still served this long while one refresh runs
    #: (stale-while-revalidate, RFC 5861): readers never wait on a refresh that XFetch
    #: started a little late under load
    ats_revalidate_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 1.0
    #: how old positions may be served when the ERP fails (stale-if-error)
    ats_stale_max_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 300.0
    ats_lock_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 2000
    reservation_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 900


class CacheEntryView(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    cached: bool
    known: bool | None = None
    #: what wrote it last: an ERP fetch or a stock event
    source: Source | None = None
    #: reads of this SKU served by this replica
    hits: Count = 0
    age_s: float | None = None
    fetch_s: float | None = None
    versions: Annotated[dict[LocationId, Count], msgspec.Meta(max_length=MAX_LOCATIONS)] = {}
    on_hand: Annotated[dict[LocationId, Signed], msgspec.Meta(max_length=MAX_LOCATIONS)] = {}
    reserved: Annotated[dict[LocationId, Count], msgspec.Meta(max_length=MAX_LOCATIONS)] = {}
    stats: Annotated[dict[str, Count], msgspec.Meta(max_length=100)] = {}


def _cache_headers(status: Any) -> dict[str, str]:
    return {"Cache-Status": status.header(), "Age": str(max(0, int(status.age)))}


class AvailabilityController(Controller):
    path = "/availability"
    tags = ["availability"]

    @get(
        "/{sku:str}",
        summary="Available to sell of one SKU in a channel, per location",
        responses=problem_responses(404, 503),
    )
    async def one(
        self, ats: Ats, sku: SkuParam, channel: ChannelParam = "web"
    ) -> Response[Availability]:
        items, unknown = await ats.availability([sku], channel)
        if unknown:
            raise UnknownSku(sku)
        availability, status = items[0]
        return Response(availability, headers=_cache_headers(status))

    @post(
        "/query",
        status_code=200,
        summary="Available to sell of up to 100 SKUs (missing ones fetched in one ERP call)",
        responses=problem_responses(404, 503),
    )
    async def many(
        self, ats: Ats, data: JSONBody[AvailabilityQuery]
    ) -> Response[AvailabilityResult]:
        items, unknown = await ats.availability(list(data.skus), data.channel)
        oldest = max((status.age for _, status in items), default=0.0)
        return Response(
            AvailabilityResult(items=[a for a, _ in items], unknown_skus=unknown),
            headers={"Age": str(int(oldest))},
        )


def principal_of(identity: Identity) -> str | None:
    """Who owns what this caller reserves: a partner (all its keys and tokens), a service of
    the mesh, a user; None for operators, who act on any reservation."""
    if identity.is_admin:
        return None
    if identity.partner_id:
        return "partner:" + identity.partner_id
    if identity.kind == "service":
        return "service:" + identity.consumer
    return identity.kind + ":" + identity.consumer


class ReservationsController(Controller):
    path = "/reservations"
    tags = ["reservations"]

    @post(
        "/",
        status_code=201,
        summary="Hold units (atomic: never more than is available)",
        description="Idempotent by reservation_id: a replay answers the first reservation.",
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    async def create(
        self, ats: Ats, identity: Caller, data: JSONBody[ReservationRequest]
    ) -> Response[Reservation]:
        require_scope(identity, "inventory:reserve")
        reservation, created = await ats.reserve(data, principal_of(identity) or "operator")
        return Response(
            reservation,
            status_code=201,
            headers={"Idempotent-Replayed": str(not created).lower()},
        )

    @get(
        "/{reservation_id:str}",
        summary="One reservation",
        responses=problem_responses(401, 403, 404),
    )
    async def one(
        self, ats: Ats, identity: Caller, reservation_id: ReservationParam
    ) -> Reservation:
        require_scope(identity, "inventory:reserve")
        return await ats.get(reservation_id, principal_of(identity))

    @post(
        "/{reservation_id:str}/confirm",
        status_code=200,
        summary="Keep the units until the order is posted (idempotent)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def confirm(
        self, ats: Ats, identity: Caller, reservation_id: ReservationParam
    ) -> Reservation:
        require_scope(identity, "inventory:reserve")
        return await ats.settle(reservation_id, "confirm", principal_of(identity))

    @post(
        "/{reservation_id:str}/release",
        status_code=200,
        summary="Give the units back (idempotent)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def release(
        self, ats: Ats, identity: Caller, reservation_id: ReservationParam
    ) -> Reservation:
        require_scope(identity, "inventory:reserve")
        return await ats.settle(reservation_id, "release", principal_of(identity))


_METRIC_HELP = {
    "hit": "Reads served from the cache while fresh",
    "miss": "Reads that waited for an ERP fetch",
    "stale": "Reads served stale because the ERP failed (stale-if-error)",
    "unavailable": "Reads refused: nothing fresh enough and the ERP down",
    "erp_fetches": "Calls to the ERP for positions",
    "erp_errors": "ERP calls that failed",
    "erp_429": "ERP calls refused by its rate limit",
    "waiters": "Reads that joined a fetch already in flight (single flight)",
    "early_refresh": "Background refreshes before expiry (XFetch)",
    "event_updates": "Positions updated by events",
    "reservations_made": "Reservations made",
    "reservations_refused": "Reservations refused for lack of stock",
    "reservations_expired": "Reservations that expired unconfirmed",
    "reservations_committed": "Reservations committed by a posted order",
}


class MetricsController(Controller):
    path = "/metrics"
    tags = ["ops"]

    @get(
        "/",
        summary="Prometheus metrics of the shield",
        media_type="text/plain; version=0.0.4",
        responses=problem_responses(401, 403),
    )
    async def metrics(self, ats: Ats, identity: Caller) -> Response[str]:
        require_scope(identity, "inventory:admin")
        lines = []
        for key, help_text in _METRIC_HELP.items():
            name = f"retailmesh_inventory_{key}_total"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines.append(f"{name} {ats.stats.get(key, 0)}")
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


class CacheController(Controller):
    path = "/cache"
    tags = ["cache"]

    @get(
        "/{sku:str}",
        summary="A SKU's cache entry (operators)",
        responses=problem_responses(401, 403),
    )
    async def entry(self, ats: Ats, identity: Caller, sku: SkuParam) -> CacheEntryView:
        require_scope(identity, "inventory:admin")
        entry = await ats.cache.peek(sku)
        if entry is None:
            return CacheEntryView(sku=sku, cached=False, stats=ats.snapshot())
        return CacheEntryView(
            sku=sku,
            cached=True,
            known=entry.known,
            source=entry.source,
            hits=ats.hits[sku],
            age_s=round(time.time() - entry.fetched_at, 3),
            fetch_s=round(entry.delta, 4),
            versions=entry.versions,
            on_hand=entry.on_hand,
            reserved=entry.reserved,
            stats=ats.snapshot(),
        )


def create_app(
    settings: InventorySettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("inventory", settings, registry)
    config = load_ats_config(settings.inventory_config)
    holder: dict[str, AtsService] = {}

    async def start(rt: Runtime) -> None:
        # Without Redis (the embedded mode on a bare machine) an in-process store stands in.
        store: Any = (
            AtsStore(rt.redis, settings.key_prefix()) if rt.redis is not None else MemoryAtsStore()
        )
        ats = AtsService(
            store,
            rt.client("erp"),
            config,
            refresh_s=settings.ats_refresh_s,
            revalidate_s=settings.ats_revalidate_s,
            stale_max_s=settings.ats_stale_max_s,
            lock_ms=settings.ats_lock_ms,
            reservation_ttl_s=settings.reservation_ttl_s,
        )
        holder["ats"] = ats
        assert rt.bus is not None

        async def on_erp_event(envelope: Any) -> None:
            await handle_erp_event(ats, envelope)

        rt.add_worker(rt.bus.consumer(ERP_STREAM, "inventory", on_erp_event, ERP_DECODER))

    async def stop(_rt: Runtime) -> None:
        # background refreshes end before Redis and the clients are closed
        ats = holder.get("ats")
        if ats is not None:
            await ats.close()

    def provide_ats() -> AtsService:
        ats = holder.get("ats")
        if ats is None:
            raise PositionsUnavailable("the inventory service runs only with Redis")
        return ats

    app = create_service_app(
        "inventory",
        settings,
        title="retailmesh inventory (available to sell)",
        description="Available to sell per channel, cached off the ERP, and reservations.",
        route_handlers=[
            AvailabilityController,
            ReservationsController,
            CacheController,
            MetricsController,
        ],
        runtime=runtime,
        dependencies={"ats": Provide(provide_ats, sync_to_thread=False)},
        on_start=[start],
        on_stop=[stop],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(InventorySettings, create_app)
