"""ERP system API: products, locations, inventory positions, order and refund postings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Litestar, Response, get, post
from litestar.di import Provide
from litestar.params import JSONBody, PathParameter, QueryParameter, SkipValidation

from contracts.models import (
    MAX_LOCATIONS,
    POSTING_ID_PATTERN,
    SKU_PATTERN,
    InventoryPosition,
    PositionsQuery,
    PositionsResult,
    Product,
    ProductPage,
    SkuPositions,
    StockAdjustment,
    StockLocation,
)
from contracts.postings import (
    OrderPosting,
    PostingBatch,
    PostingBatchResult,
    PostingPage,
    PostingReceipt,
    PostingRecord,
    PostingTotals,
    RefundPosting,
)
from services.erp.backend import CloudConditions, ErpBackend, ReferenceErpBackend
from services.erp.errors import UnknownSku
from services.erp.seed import seed_erp
from services.erp.store import ErpTables
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.errors import problem_responses
from services.kit.identity import Identity, require_scope
from services.kit.registry import Registry
from services.kit.settings import Settings

__all__ = ["ErpSettings", "create_app", "create_app_from_env"]

#: the sales ledger (postings with amounts) is its own scope, apart from stock (`erp:stock`):
#: a partner that needs stock never reads the retailer's revenue
LEDGER = "erp:ledger"

# Every ERP call may meet the cloud ERP's rate limit (429) or an outage (503).
_CLOUD = (429, 503)
_REPLAYED = "Idempotent-Replayed"

SkuParam = Annotated[str, PathParameter(pattern=SKU_PATTERN, description="SKU")]
PostingIdParam = Annotated[str, PathParameter(pattern=POSTING_ID_PATTERN, description="Posting id")]
# Ours, injected by DI: not values to validate on every request.
Erp = SkipValidation[ErpBackend]
Caller = SkipValidation[Identity]
Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size")]


class ErpSettings(Settings, frozen=True, kw_only=True):
    erp_latency_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 0.0
    erp_rate_limit_rps: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 0.0
    erp_failure_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0


class ProductsController(Controller):
    path = "/products"
    tags = ["products"]

    @get("/", summary="List products", responses=problem_responses(*_CLOUD))
    async def list_products(
        self,
        erp: Erp,
        cursor: Annotated[
            str | None,
            QueryParameter(pattern=SKU_PATTERN, description="next_cursor of the last page"),
        ] = None,
        limit: Limit = 50,
    ) -> ProductPage:
        items = await erp.products(cursor, limit)
        return ProductPage(items=items, next_cursor=items[-1].sku if len(items) == limit else None)

    @get("/{sku:str}", summary="One product", responses=problem_responses(404, *_CLOUD))
    async def get_product(self, erp: Erp, sku: SkuParam) -> Product:
        return await erp.product(sku)


class LocationsController(Controller):
    path = "/locations"
    tags = ["locations"]

    @get("/", summary="Stores and distribution centres", responses=problem_responses(*_CLOUD))
    async def list_locations(
        self, erp: Erp
    ) -> Annotated[list[StockLocation], msgspec.Meta(max_length=MAX_LOCATIONS)]:
        return await erp.locations()


class InventoryController(Controller):
    path = "/inventory"
    tags = ["inventory"]

    @get(
        "/{sku:str}",
        summary="On-hand positions of one SKU at every location",
        responses=problem_responses(404, *_CLOUD),
    )
    async def sku_positions(self, erp: Erp, sku: SkuParam) -> SkuPositions:
        result = await erp.positions([sku])
        if not result.items:
            raise UnknownSku(sku)
        return result.items[0]

    @post(
        "/query",
        status_code=200,
        summary="Positions of up to 100 SKUs in one call",
        responses=problem_responses(*_CLOUD),
    )
    async def query_positions(self, erp: Erp, data: JSONBody[PositionsQuery]) -> PositionsResult:
        return await erp.positions(data.skus)

    @post(
        "/adjustments",
        status_code=201,
        summary="Book a stock adjustment (idempotent by adjustment_id)",
        responses=problem_responses(401, 403, 409, 422, *_CLOUD),
    )
    async def adjust(
        self, erp: Erp, identity: Caller, data: JSONBody[StockAdjustment]
    ) -> Response[InventoryPosition]:
        require_scope(identity, "erp:adjust")
        position, created = await erp.adjust(data)
        return Response(position, status_code=201, headers={_REPLAYED: str(not created).lower()})


class PostingsController(Controller):
    path = "/postings"
    tags = ["postings"]

    @post(
        "/orders",
        status_code=201,
        summary="Book an order posting (idempotent by posting_id)",
        description="Replaying a posting answers the first receipt; "
        "the same posting_id with other content is 409.",
        responses=problem_responses(401, 403, 409, 422, *_CLOUD),
    )
    async def post_order(
        self, erp: Erp, identity: Caller, data: JSONBody[OrderPosting]
    ) -> Response[PostingReceipt]:
        require_scope(identity, "erp:post")
        receipt, created = await erp.post_order(data)
        return Response(receipt, status_code=201, headers={_REPLAYED: str(not created).lower()})

    @post(
        "/refunds",
        status_code=201,
        summary="Book a refund posting (idempotent by posting_id)",
        responses=problem_responses(401, 403, 409, 422, *_CLOUD),
    )
    async def post_refund(
        self, erp: Erp, identity: Caller, data: JSONBody[RefundPosting]
    ) -> Response[PostingReceipt]:
        require_scope(identity, "erp:post")
        receipt, created = await erp.post_refund(data)
        return Response(receipt, status_code=201, headers={_REPLAYED: str(not created).lower()})

    @post(
        "/batch",
        status_code=200,
        summary="Book many order and refund postings in one call",
        description="Each posting is booked as if it came alone (idempotent by posting_id) "
        "and answers its own result: 201 booked, 200 a replay, 409 its id taken by other "
        "content, 422 invalid (the problem says why). A refused posting does not stop the "
        "others. The batch as a whole is refused only when the ERP cannot take it now (429, "
        "503): then none of it is booked.",
        responses=problem_responses(401, 403, 422, *_CLOUD),
    )
    async def post_batch(
        self, erp: Erp, identity: Caller, data: JSONBody[PostingBatch]
    ) -> PostingBatchResult:
        require_scope(identity, "erp:post")
        return await erp.post_batch(data)

    @get("/", summary="Query postings", responses=problem_responses(*_CLOUD))
    async def list_postings(
        self,
        erp: Erp,
        identity: Caller,
        order_id: Annotated[str | None, QueryParameter(pattern=POSTING_ID_PATTERN)] = None,
        sku: Annotated[str | None, QueryParameter(pattern=SKU_PATTERN)] = None,
        kind: Annotated[Literal["order", "refund"] | None, QueryParameter()] = None,
        cursor: Annotated[str | None, QueryParameter(pattern=POSTING_ID_PATTERN)] = None,
        limit: Limit = 50,
    ) -> PostingPage:
        require_scope(identity, LEDGER)
        items = await erp.postings(order_id=order_id, sku=sku, kind=kind, after=cursor, limit=limit)
        return PostingPage(
            items=items, next_cursor=items[-1].posting_id if len(items) == limit else None
        )

    @get(
        "/totals/{sku:str}",
        summary="Postings and units booked for one SKU",
        responses=problem_responses(404, *_CLOUD),
    )
    async def totals(self, erp: Erp, identity: Caller, sku: SkuParam) -> PostingTotals:
        require_scope(identity, LEDGER)
        return await erp.totals(sku)

    @get("/{posting_id:str}", summary="One posting", responses=problem_responses(404, *_CLOUD))
    async def get_posting(
        self, erp: Erp, identity: Caller, posting_id: PostingIdParam
    ) -> PostingRecord:
        require_scope(identity, LEDGER)
        return await erp.posting(posting_id)


def create_app(
    settings: ErpSettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    """The ERP system API with its reference backend."""
    runtime = Runtime("erp", settings, registry)
    tables = ErpTables(runtime.metadata)
    conditions = CloudConditions(
        settings.erp_latency_ms, settings.erp_rate_limit_rps, settings.erp_failure_rate
    )
    holder: dict[str, ErpBackend] = {}

    async def start(rt: Runtime) -> None:
        assert rt.db is not None
        if settings.seed:
            await seed_erp(rt.db, tables)
        holder["erp"] = ReferenceErpBackend(rt.db, tables, rt.outbox, conditions)

    def provide_erp() -> ErpBackend:
        return holder["erp"]

    app = create_service_app(
        "erp",
        settings,
        title="retailmesh ERP system API",
        description="Products, stock locations, inventory positions and postings of the ERP.",
        route_handlers=[
            ProductsController,
            LocationsController,
            InventoryController,
            PostingsController,
        ],
        runtime=runtime,
        dependencies={"erp": Provide(provide_erp, sync_to_thread=False)},
        on_start=[start],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.tables = tables
    app.state.conditions = conditions
    return app


def create_app_from_env() -> Litestar:
    """Factory for an ASGI server (`granian --factory services.erp.app:create_app_from_env`)."""
    return app_from_env(ErpSettings, create_app)
