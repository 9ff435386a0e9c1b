"""Partner experience API (`/v1/partner`): bulk availability, marketplace orders and their
status, for the calling partner only."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.params import JSONBody, QueryParameter, SkipValidation

from contracts.models import Order, OrderPage
from contracts.partner import PartnerAvailability, PartnerOrderRequest
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.errors import problem_responses
from services.kit.idempotency_key import IdempotencyKey
from services.kit.identity import Identity, caller_token
from services.kit.order_params import OrderCursor, OrderParam, PageLimit
from services.kit.registry import Registry
from services.kit.relay import answered, relay
from services.kit.settings import Settings
from services.partner.logic import PartnerDesk, require_partner

__all__ = ["PartnerSettings", "create_app", "create_app_from_env"]

Desk = SkipValidation[PartnerDesk]
Caller = SkipValidation[Identity]
#: 1 to 100 SKUs, comma-separated; each counts as one request in the partner's rate limit
SkuList = Annotated[
    str,
    QueryParameter(
        pattern=r"^[A-Z0-9][A-Z0-9-]{2,31}(,[A-Z0-9][A-Z0-9-]{2,31}){0,99}\Z",
        description="1 to 100 SKUs, comma-separated; each counts as one request in the rate limit",
    ),
]


class PartnerSettings(Settings, frozen=True, kw_only=True):
    pass


def _caller(request: Request[Any, Any, Any], identity: Identity) -> str:
    require_partner(identity)
    return caller_token(request)


class PartnerController(Controller):
    path = "/"
    tags = ["partner"]

    @get(
        "/availability",
        summary="What the partner may sell of up to 100 SKUs (each counts in the rate limit)",
        responses=problem_responses(401, 403, 429, 503),
    )
    async def availability(
        self, request: Request[Any, Any, Any], desk: Desk, identity: Caller, skus: SkuList
    ) -> Response[PartnerAvailability]:
        require_partner(identity)
        found = await desk.availability(sorted(set(skus.split(","))))
        if isinstance(found, PartnerAvailability):
            return Response(found)
        return answered(request, found)

    @post(
        "/orders",
        status_code=201,
        summary="Place a marketplace order for the partner's buyer (Idempotency-Key required)",
        description="Shipped from the partner channel's stock, priced by the retailer's "
        "catalogue; 201 with the confirmed order, 409 out of stock. The key is the "
        "partner's, whichever of its keys sends it: a retry after a key rotation replays.",
        responses=problem_responses(401, 403, 409, 422, 503),
    )
    async def place(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        data: JSONBody[PartnerOrderRequest],
        idempotency_key: IdempotencyKey,
    ) -> Response[Order]:
        return await relay(request, desk.place(_caller(request, identity), idempotency_key, data))

    @get(
        "/orders",
        summary="The partner's own orders, newest first",
        responses=problem_responses(401, 403, 503),
    )
    async def orders(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        cursor: OrderCursor = None,
        limit: PageLimit = 20,
    ) -> Response[OrderPage]:
        return await relay(request, desk.orders_page(_caller(request, identity), cursor, limit))

    @get(
        "/orders/{order_id:str}",
        summary="One of the partner's orders, with its status history",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def order(
        self, request: Request[Any, Any, Any], desk: Desk, identity: Caller, order_id: OrderParam
    ) -> Response[Order]:
        return await relay(request, desk.order(_caller(request, identity), order_id))


def create_app(
    settings: PartnerSettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("partner", settings, registry)
    holder: dict[str, PartnerDesk] = {}

    async def start(rt: Runtime) -> None:
        holder["desk"] = PartnerDesk(rt.client("orders"), rt.client("inventory"))

    def provide_desk() -> PartnerDesk:
        return holder["desk"]

    app = create_service_app(
        "partner",
        settings,
        title="retailmesh partner experience API",
        description="For marketplaces and delivery apps: bulk availability of the partner "
        "channel, orders for their own buyers, and those orders' status; each partner sees "
        "its own only.",
        route_handlers=[PartnerController],
        runtime=runtime,
        dependencies={"desk": Provide(provide_desk, sync_to_thread=False)},
        on_start=[start],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(PartnerSettings, create_app)
