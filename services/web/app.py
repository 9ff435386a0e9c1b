"""Web shop experience API: product pages and searches, v1 and v2 side by side, and the
signed-in customer's checkout, orders, returns and points (the same in both versions).

The gateway routes `/v1/web/...` to `/v1/...` here and `/v2/web/...` to `/v2/...`; v1 is
deprecated in the gateway's config (its answers carry `Deprecation`, `Sunset` and a `Link`
to v2). Product reads carry an `ETag` and `Cache-Control`, and a conditional GET that
matches answers 304 without a body.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, Response, get
from litestar.di import Provide
from litestar.params import PathParameter, QueryParameter, SkipValidation

from contracts.models import LOCATION_PATTERN, SKU_PATTERN
from contracts.web import WebProductPageV1, WebProductPageV2, WebProductV1, WebProductV2
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.conditional import NOT_MODIFIED, cacheable
from services.kit.errors import problem_responses
from services.kit.order_params import PageLimit
from services.kit.periodic import Periodic
from services.kit.registry import Registry
from services.kit.settings import Settings
from services.web.customer import CustomerDesk
from services.web.customer_routes import CustomerV1Controller, CustomerV2Controller
from services.web.logic import Place, WebShop
from services.web.showroom import Showroom

__all__ = ["WebSettings", "create_app", "create_app_from_env"]

Shop = SkipValidation[WebShop]
Age = SkipValidation[int]
SkuParam = Annotated[str, PathParameter(pattern=SKU_PATTERN, description="SKU")]
Text = Annotated[
    str | None,
    QueryParameter(
        min_length=1, max_length=100, description="Words that the name or SKU all contain"
    ),
]
CategoryParam = Annotated[
    str | None, QueryParameter(pattern=r"^[a-z][a-z0-9-]{0,31}\Z", description="A category")
]
Cursor = Annotated[
    str | None, QueryParameter(pattern=SKU_PATTERN, description="next_cursor of the last page")
]
StoreParam = Annotated[
    str | None,
    QueryParameter(
        pattern=LOCATION_PATTERN,
        description="Show pick-up at the stores nearest this one (it first); wins over postcode",
    ),
]
Postcode = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{1,9}\Z",
        description="Show pick-up at the stores nearest this postcode",
    ),
]
Country = Annotated[
    str, QueryParameter(pattern=r"^[A-Z]{2}\Z", description="The postcode's country (ISO 3166)")
]
Stores = Annotated[int, QueryParameter(ge=1, le=10, description="How many stores to show")]

_READS = {**NOT_MODIFIED, **problem_responses(503)}
_NEAR = {**NOT_MODIFIED, **problem_responses(404, 503)}  # an unknown store


class WebSettings(Settings, frozen=True, kw_only=True):
    #: how often the catalogue and the store list are read again from the ERP
    web_catalogue_refresh_s: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = 60.0
    #: how long a browser or a CDN may reuse a product answer (`Cache-Control: max-age`)
    web_max_age_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 5


class ProductsV1Controller(Controller):
    path = "/v1/products"
    tags = ["web v1"]

    @get(
        "/",
        summary="Search products: catalogue, price and network-wide availability",
        responses=_READS,
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        shop: Shop,
        max_age: Age,
        q: Text = None,
        category: CategoryParam = None,
        cursor: Cursor = None,
        limit: PageLimit = 20,
    ) -> Response[WebProductPageV1]:
        page = await shop.list_v1(q, category, cursor, limit)
        return cacheable(request, page, max_age)

    @get(
        "/{sku:str}",
        summary="One product: catalogue, price, quantity and in-stock flag",
        responses=_NEAR,
    )
    async def one(
        self, request: Request[Any, Any, Any], shop: Shop, max_age: Age, sku: SkuParam
    ) -> Response[WebProductV1]:
        return cacheable(request, await shop.product_v1(sku), max_age)


class ProductsV2Controller(Controller):
    path = "/v2/products"
    tags = ["web v2"]

    @get(
        "/",
        summary="Search products, with ship and pick-up availability near a store or postcode",
        responses=_NEAR,
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        shop: Shop,
        max_age: Age,
        q: Text = None,
        category: CategoryParam = None,
        cursor: Cursor = None,
        limit: PageLimit = 20,
        store: StoreParam = None,
        postcode: Postcode = None,
        country: Country = "NL",
        stores: Stores = 3,
    ) -> Response[WebProductPageV2]:
        place = Place(store_id=store, postcode=postcode, country=country, stores=stores)
        page = await shop.list_v2(q, category, cursor, limit, place)
        return cacheable(request, page, max_age)

    @get(
        "/{sku:str}",
        summary="One product: ship availability and pick-up at the nearest stores",
        responses=_NEAR,
    )
    async def one(
        self,
        request: Request[Any, Any, Any],
        shop: Shop,
        max_age: Age,
        sku: SkuParam,
        store: StoreParam = None,
        postcode: Postcode = None,
        country: Country = "NL",
        stores: Stores = 3,
    ) -> Response[WebProductV2]:
        place = Place(store_id=store, postcode=postcode, country=country, stores=stores)
        return cacheable(request, await shop.product_v2(sku, place), max_age)


def create_app(
    settings: WebSettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("web", settings, registry)
    holder: dict[str, Any] = {}

    async def start(rt: Runtime) -> None:
        showroom = Showroom(rt.client("erp"))
        holder["shop"] = WebShop(showroom, rt.client("inventory"))
        holder["desk"] = CustomerDesk(rt.client("orders"), rt.client("loyalty"))
        rt.add_worker(
            Periodic(
                "catalogue refresh",
                settings.web_catalogue_refresh_s,
                showroom.refresh,
                delay_first=True,
            )
        )

    def provide_shop() -> WebShop:
        shop: WebShop = holder["shop"]
        return shop

    def provide_desk() -> CustomerDesk:
        desk: CustomerDesk = holder["desk"]
        return desk

    def provide_max_age() -> int:
        return settings.web_max_age_s

    app = create_service_app(
        "web",
        settings,
        title="retailmesh web shop experience API",
        description=(
            "Product pages for the web shop: the catalogue, the price and what is available "
            "to sell, in one answer. v1 answers one network-wide quantity; v2 splits it into "
            "ship and pick-up availability at the stores nearest a store or postcode. A "
            "signed-in customer checks out, follows their orders, returns and points."
        ),
        route_handlers=[
            ProductsV1Controller,
            ProductsV2Controller,
            CustomerV1Controller,
            CustomerV2Controller,
        ],
        runtime=runtime,
        dependencies={
            "shop": Provide(provide_shop, sync_to_thread=False),
            "desk": Provide(provide_desk, sync_to_thread=False),
            "max_age": Provide(provide_max_age, sync_to_thread=False),
        },
        on_start=[start],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(WebSettings, create_app)
