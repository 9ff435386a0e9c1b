"""Store experience API (`/v1/store`): what a store's till calls, for its own store only."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.params import JSONBody, PathParameter, QueryParameter, SkipValidation

from contracts.models import (
    SKU_PATTERN,
    BatchResult,
    CollectRequest,
    MemberLookup,
    Order,
    OrderPage,
    OrderReturnRequest,
    OrderStatus,
    Return,
    TransactionBatch,
)
from contracts.store import StoreStock, TillMember
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.errors import problem_responses
from services.kit.idempotency_key import IdempotencyKey
from services.kit.identity import Identity, caller_token
from services.kit.order_params import OrderCursor, OrderParam, PageLimit
from services.kit.periodic import Periodic
from services.kit.places import StoreDirectory
from services.kit.registry import Registry
from services.kit.relay import answered, relay
from services.kit.settings import Settings
from services.store.logic import StoreDesk, till_store

__all__ = ["StoreSettings", "create_app", "create_app_from_env"]

Desk = SkipValidation[StoreDesk]
Caller = SkipValidation[Identity]
SkuParam = Annotated[str, PathParameter(pattern=SKU_PATTERN, description="SKU")]
Stores = Annotated[int, QueryParameter(ge=1, le=10, description="This store and the nearest")]


class StoreSettings(Settings, frozen=True, kw_only=True):
    #: a till's batch of 500 transactions passes through to the POS, which takes as much
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    #: how often the store list (for the nearest stores) is read again from the ERP
    store_directory_refresh_s: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = 300.0


def _till(request: Request[Any, Any, Any], identity: Identity) -> tuple[str, str]:
    """The till's identity header (to call the services as the till) and its store."""
    store_id = till_store(identity)
    return caller_token(request), store_id


class TillController(Controller):
    path = "/"
    tags = ["store"]

    @post(
        "/transactions/batches",
        status_code=200,
        summary="Upload up to 500 of the store's till transactions (sales and returns)",
        description="The POS API's batch upload: each transaction stored once, answered per "
        "transaction (accepted, duplicate, rejected); another store's transaction is 403.",
        responses=problem_responses(401, 403, 503),
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        data: JSONBody[TransactionBatch],
    ) -> Response[BatchResult]:
        till, _ = _till(request, identity)
        return await relay(request, desk.upload(till, data))

    @get(
        "/pickups",
        summary="The store's pick-up queue, newest first (filter by status)",
        responses=problem_responses(401, 403, 503),
    )
    async def pickups(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        status: Annotated[OrderStatus | None, QueryParameter()] = None,
        cursor: OrderCursor = None,
        limit: PageLimit = 20,
    ) -> Response[OrderPage]:
        till, store_id = _till(request, identity)
        return await relay(request, desk.pickups(till, store_id, status, cursor, limit))

    @post(
        "/pickups/{order_id:str}/ready",
        status_code=200,
        summary="The order is ready for its customer to collect",
        responses=problem_responses(401, 403, 404, 409, 503),
    )
    async def ready(
        self, request: Request[Any, Any, Any], desk: Desk, identity: Caller, order_id: OrderParam
    ) -> Response[Order]:
        till, _ = _till(request, identity)
        return await relay(request, desk.ready(till, order_id))

    @post(
        "/pickups/{order_id:str}/collect",
        status_code=200,
        summary="The customer collected the order, showing its pick-up code",
        responses=problem_responses(401, 403, 404, 409, 503),
    )
    async def collect(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        order_id: OrderParam,
        data: JSONBody[CollectRequest],
    ) -> Response[Order]:
        till, _ = _till(request, identity)
        return await relay(request, desk.collect(till, order_id, data.pickup_code))

    @get(
        "/stock/{sku:str}",
        summary="What can be sold of a SKU here and at the nearest stores",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def stock(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        sku: SkuParam,
        stores: Stores = 4,
    ) -> Response[StoreStock]:
        _, store_id = _till(request, identity)
        found = await desk.stock(store_id, sku, stores)
        if isinstance(found, StoreStock):
            return Response(found)
        return answered(request, found)

    @post(
        "/returns",
        status_code=201,
        summary="Take back lines of an online order at this store (Idempotency-Key required)",
        description="201 with the accepted return; the refund follows. The units come back "
        "into this store's stock. 409 when the order cannot be returned yet, is past the "
        "window, or has fewer units left than asked; 422 for a key used with another body.",
        responses=problem_responses(401, 403, 404, 409, 422, 503),
    )
    async def take_return(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        data: JSONBody[OrderReturnRequest],
        idempotency_key: IdempotencyKey,
    ) -> Response[Return]:
        till, _ = _till(request, identity)
        return await relay(request, desk.take_return(till, idempotency_key, data))

    @post(
        "/members/lookup",
        status_code=200,
        summary="Find a loyalty member by card or email: their id and tier, nothing else",
        responses=problem_responses(401, 403, 404, 422, 503),
    )
    async def member(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        data: JSONBody[MemberLookup],
    ) -> Response[TillMember]:
        till, _ = _till(request, identity)
        found = await desk.member(till, data)
        if isinstance(found, TillMember):
            return Response(found)
        return answered(request, found)


def create_app(
    settings: StoreSettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("store", settings, registry)
    holder: dict[str, StoreDesk] = {}

    async def start(rt: Runtime) -> None:
        directory = StoreDirectory(rt.client("erp"))
        holder["desk"] = StoreDesk(
            rt.client("pos"),
            rt.client("orders"),
            rt.client("inventory"),
            rt.client("loyalty"),
            directory,
        )
        rt.add_worker(
            Periodic(
                "store list refresh",
                settings.store_directory_refresh_s,
                directory.refresh,
                delay_first=True,
            )
        )

    def provide_desk() -> StoreDesk:
        return holder["desk"]

    app = create_service_app(
        "store",
        settings,
        title="retailmesh store experience API",
        description="What a store's till calls: its sales upload, its pick-up counter, stock "
        "here and nearby, returns of online orders, and members at the till. Every call is "
        "limited to the till's own store (its JWT's store_id).",
        route_handlers=[TillController],
        runtime=runtime,
        dependencies={"desk": Provide(provide_desk, sync_to_thread=False)},
        on_start=[start],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(StoreSettings, create_app)
