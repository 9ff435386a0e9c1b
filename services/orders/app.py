"""Orders process API: checkout, pick-up in store and the order lifecycle, as durable sagas
across inventory (stock), loyalty (points) and the ERP (postings)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.params import (
    JSONBody,
    PathParameter,
    QueryParameter,
    SkipValidation,
)

from contracts.events import ORDERS_STREAM, Envelope, OrderEvent, OrderStatusChanged
from contracts.models import (
    LOCATION_PATTERN,
    MAX_RETURNS_PER_ORDER,
    ORDER_ID_PATTERN,
    CheckoutRequest,
    CollectRequest,
    Order,
    OrderPage,
    OrderStatus,
    RebuildReport,
    Return,
    ReturnRequest,
)
from contracts.problems import PROBLEM_MEDIA_TYPE
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.catalogue import Catalogue
from services.kit.errors import problem_responses, public_path
from services.kit.idempotency_key import IdempotencyKey
from services.kit.identity import Identity, require_scope
from services.kit.order_params import OrderCursor, OrderParam, PageLimit, ReturnParam
from services.kit.periodic import Periodic
from services.kit.registry import Registry
from services.kit.requestid import request_id
from services.kit.settings import Settings
from services.orders.demo import DemoStory
from services.orders.downstream import Downstream
from services.orders.effects import OrderEffects, RedisLossWatch
from services.orders.gate import CheckoutGate
from services.orders.logic import OrdersService
from services.orders.return_saga import ReturnDriver
from services.orders.returns import ReturnsService
from services.orders.rules import load_rules
from services.orders.saga import Resumer, SagaDriver
from services.orders.store import OrderTables
from services.orders.views import PickupCodes

__all__ = ["OrdersSettings", "create_app", "create_app_from_env"]

Orders = SkipValidation[OrdersService]
Returns = SkipValidation[ReturnsService]
Effects = SkipValidation[OrderEffects]
Caller = SkipValidation[Identity]
StoreParam = Annotated[str, PathParameter(pattern=LOCATION_PATTERN)]
ORDERS_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Envelope[OrderEvent])


class OrdersSettings(Settings, frozen=True, kw_only=True):
    #: checkout rules: units per line and order by channel, pick-up stores
    orders_config: str = "deploy/config/orders.toml"
    #: how long a checkout's reservations and points hold last before they lapse
    checkout_hold_s: Annotated[int, msgspec.Meta(ge=10, le=86_400)] = 900
    #: checkouts whose sagas run at once in this process; the next is shed (503)
    checkout_max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    #: a saga's driver holds it this long (renewed per step); then another may take it over
    saga_lease_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    #: after a service did not answer, the saga is tried again this much later
    saga_retry_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    #: how often the resumer looks for sagas nobody drives
    saga_sweep_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 2.0
    #: how long an Idempotency-Key is remembered (its first response replayed)
    idempotency_ttl_h: Annotated[float, msgspec.Meta(gt=0, le=24 * 365)] = 24.0
    #: how many days after the purchase a return is taken
    return_window_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 30
    #: attempts of a downstream call within one step, before the saga waits
    step_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    #: an order whose posting, points or give-backs are not done this long after its last
    #: move is driven again by the sweep (its event lost, or a dead letter)
    effects_overdue_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] = 120.0
    #: how often the sweep looks, and how often Redis is checked for a loss of its data
    effects_sweep_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0


def _json(
    request: Request[Any, Any, Any], status: int, body: bytes, replayed: bool
) -> Response[bytes]:
    if status >= 400:
        # a stored problem (a rejected checkout) answers with this request's path and id,
        # as every problem does
        problem = msgspec.json.decode(body)
        problem.update(instance=public_path(request.scope), request_id=request_id(request.scope))
        body = msgspec.json.encode(problem)
    return Response(
        body,
        status_code=status,
        media_type="application/json" if status < 300 else PROBLEM_MEDIA_TYPE,
        headers={"Idempotent-Replayed": str(replayed).lower()},
    )


class OrdersController(Controller):
    path = "/orders"
    tags = ["orders"]

    @post(
        "/",
        status_code=201,
        summary="Check out: reserve stock, hold points, confirm (Idempotency-Key required)",
        description="201 with the confirmed order; 409 out of stock; 422 not enough points "
        "or an order that cannot be taken. A replay with the same key answers the first "
        "response; the same key with another body is 422; while the first runs, 409. In a "
        "rush on a SKU, 409 out-of-stock without an order (nothing stored under the key); "
        "503 checkout-busy with Retry-After when too many checkouts run at once.",
        responses=problem_responses(400, 401, 409, 422, 503),
    )
    async def checkout(
        self,
        orders: Orders,
        identity: Caller,
        data: JSONBody[CheckoutRequest],
        idempotency_key: IdempotencyKey,
        request: Request[Any, Any, Any],
    ) -> Response[Order]:
        key = idempotency_key.strip('"')
        result = await orders.checkout(data, key, identity)
        return _json(request, result.status, result.body, result.replayed)  # type: ignore[return-value]

    @get(
        "/",
        summary="The caller's own orders, newest first (operators: any customer's)",
        responses=problem_responses(401, 403),
    )
    async def mine(
        self,
        orders: Orders,
        identity: Caller,
        cursor: OrderCursor = None,
        limit: PageLimit = 20,
        customer: Annotated[
            str | None,
            QueryParameter(
                min_length=1, max_length=200, description="operators: this customer's orders"
            ),
        ] = None,
    ) -> OrderPage:
        if customer is not None:
            items, next_cursor = await orders.of_customer(customer, identity, cursor, limit)
        else:
            items, next_cursor = await orders.mine(identity, cursor, limit)
        return OrderPage(items=items, next_cursor=next_cursor)

    @get(
        "/{order_id:str}",
        summary="An order and its history (a customer sees only their own)",
        responses=problem_responses(401, 404),
    )
    async def one(self, orders: Orders, identity: Caller, order_id: OrderParam) -> Order:
        return await orders.get(order_id, identity)

    @post(
        "/{order_id:str}/cancel",
        status_code=200,
        summary="Cancel: gives back stock and points, and books a cancellation if posted",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def cancel(self, orders: Orders, identity: Caller, order_id: OrderParam) -> Order:
        return await orders.transition(order_id, "cancelled", identity)

    @post(
        "/{order_id:str}/ready",
        status_code=200,
        summary="The store has the order ready for pick-up",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def ready(self, orders: Orders, identity: Caller, order_id: OrderParam) -> Order:
        return await orders.transition(order_id, "ready_for_pickup", identity)

    @post(
        "/{order_id:str}/collect",
        status_code=200,
        summary="The customer collected the order (the store checks the pick-up code)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def collect(
        self,
        orders: Orders,
        identity: Caller,
        order_id: OrderParam,
        data: JSONBody[CollectRequest],
    ) -> Order:
        return await orders.transition(order_id, "collected", identity, data.pickup_code)

    @post(
        "/{order_id:str}/ship",
        status_code=200,
        summary="The order left the warehouse",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def ship(self, orders: Orders, identity: Caller, order_id: OrderParam) -> Order:
        return await orders.transition(order_id, "shipped", identity)

    @post(
        "/{order_id:str}/deliver",
        status_code=200,
        summary="The carrier delivered the order",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def deliver(self, orders: Orders, identity: Caller, order_id: OrderParam) -> Order:
        return await orders.transition(order_id, "delivered", identity)


class ReturnsController(Controller):
    path = "/returns"
    tags = ["returns"]

    @post(
        "/",
        status_code=201,
        summary="Return lines of an online order or of a store sale (Idempotency-Key required)",
        description="201 with the accepted return; its refund, points and stock are settled "
        "in the background (status `refunded` when done). 409 when the source cannot be "
        "returned (`conflict`: not delivered or collected yet), past the window "
        "(`return-window-closed`), or for lines not in it or more units than are left "
        "(`not-returnable`); 422 for a key used with another body.",
        responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
    )
    async def create(
        self,
        returns: Returns,
        identity: Caller,
        data: JSONBody[ReturnRequest],
        idempotency_key: IdempotencyKey,
        request: Request[Any, Any, Any],
    ) -> Response[Return]:
        result = await returns.accept(data, idempotency_key.strip('"'), identity)
        return _json(request, result.status, result.body, result.replayed)  # type: ignore[return-value]

    @get(
        "/",
        summary="An order's returns, oldest first (operators)",
        responses=problem_responses(401, 403),
    )
    async def of_order(
        self,
        returns: Returns,
        identity: Caller,
        order_id: Annotated[str, QueryParameter(pattern=ORDER_ID_PATTERN)],
    ) -> Annotated[list[Return], msgspec.Meta(max_length=MAX_RETURNS_PER_ORDER)]:
        return await returns.of_order(order_id, identity)

    @get(
        "/{return_id:str}",
        summary="A return (its customer, the store that took it, or operators)",
        responses=problem_responses(401, 404),
    )
    async def one(self, returns: Returns, identity: Caller, return_id: ReturnParam) -> Return:
        return await returns.get(return_id, identity)


class OperationsController(Controller):
    path = "/operations"
    tags = ["operations"]

    @post(
        "/reservations/rebuild",
        status_code=200,
        summary="Put open orders' reservations back after Redis lost them (operators)",
        responses=problem_responses(401, 403, 503),
    )
    async def rebuild(self, effects: Effects, identity: Caller) -> RebuildReport:
        require_scope(identity, "orders:admin")
        return await effects.rebuild_reservations()


class StoreOrdersController(Controller):
    path = "/stores"
    tags = ["stores"]

    @get(
        "/{store_id:str}/orders",
        summary="A store's pick-up orders (its own tills, or operators)",
        responses=problem_responses(401, 403),
    )
    async def for_store(
        self,
        orders: Orders,
        identity: Caller,
        store_id: StoreParam,
        status: Annotated[OrderStatus | None, QueryParameter()] = None,
        cursor: OrderCursor = None,
        limit: PageLimit = 20,
    ) -> OrderPage:
        items, next_cursor = await orders.for_store(store_id, status, identity, cursor, limit)
        return OrderPage(items=items, next_cursor=next_cursor)


def create_app(
    settings: OrdersSettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("orders", settings, registry)
    tables = OrderTables(runtime.metadata)
    holder: dict[str, Any] = {}

    async def start(rt: Runtime) -> None:
        assert rt.db is not None and rt.bus is not None
        codes = PickupCodes(hashlib.sha256(b"orders-pickup:" + settings.identity_key()).digest())
        downstream = Downstream(
            rt.registry,
            rt.identity,
            reservation_ttl_s=settings.checkout_hold_s,
            hold_ttl_s=settings.checkout_hold_s,
            attempts=settings.step_attempts,
        )
        gate = CheckoutGate(downstream.available, max_in_flight=settings.checkout_max_in_flight)
        driver = SagaDriver(
            rt.db,
            tables,
            rt.outbox,
            downstream,
            codes,
            lease_s=settings.saga_lease_s,
            retry_s=settings.saga_retry_s,
            gate=gate,
        )
        orders = OrdersService(
            rt.db,
            tables,
            rt.outbox,
            Catalogue(rt.client("erp")),
            driver,
            downstream,
            codes,
            load_rules(settings.orders_config),
            gate,
        )
        holder["orders"] = orders
        effects = OrderEffects(rt.db, tables, rt.outbox, downstream)
        holder["effects"] = effects
        return_driver = ReturnDriver(
            rt.db,
            tables,
            rt.outbox,
            downstream,
            lease_s=settings.saga_lease_s,
            retry_s=settings.saga_retry_s,
        )
        holder["returns"] = ReturnsService(
            rt.db,
            tables,
            rt.outbox,
            downstream,
            return_driver,
            window_days=settings.return_window_days,
        )

        async def on_order_event(envelope: Any) -> None:
            event = envelope.data
            if not isinstance(event, OrderStatusChanged):
                return
            if event.status == "confirmed":
                await effects.post_to_erp(event.order_id)
            elif event.status == "cancelled":
                await effects.undo_cancelled(event.order_id)

        # Postings are idempotent and independent: many at once; retried (with backoff up to
        # a minute) for as long as the ERP is busy or down (`retry_for_h`), a dead letter at
        # once only when the ERP calls the posting wrong.
        policy = settings.delivery_policy(concurrency=16, batch=128)
        rt.add_worker(
            rt.bus.consumer(
                ORDERS_STREAM, "orders-erp", on_order_event, ORDERS_DECODER, policy=policy
            )
        )
        holder["drivers"] = (driver, return_driver)
        rt.add_worker(Resumer(driver, rt.db, tables.orders, settings.saga_sweep_s))
        rt.add_worker(Resumer(return_driver, rt.db, tables.returns, settings.saga_sweep_s))
        ttl = timedelta(hours=settings.idempotency_ttl_h)
        rt.add_worker(Periodic("idempotency key purge", 600, lambda: orders.purge_keys(ttl)))
        if settings.seed and settings.demo:
            story = DemoStory(orders)
            if await story.wanted():
                rt.add_worker(Periodic("demo story", 1.0, story.advance, delay_first=True))
        # After a loss of Redis the reservations come back before any overdue order is
        # posted (one worker, in this order): a posting commits its order's reservations.
        watch = None
        if rt.redis is not None:
            marker = settings.key_prefix() + "orders:redis-holds-reservations"
            watch = RedisLossWatch(rt.redis, marker, effects.rebuild_reservations)

        async def heal() -> None:
            if watch is not None:
                await watch.check()
            await effects.sweep(settings.effects_overdue_s)

        rt.add_worker(Periodic("order effects sweep", settings.effects_sweep_s, heal))

    async def stop(_rt: Runtime) -> None:
        # the sagas running in this process stop before the database is closed
        for driver in holder.get("drivers", ()):
            await driver.close()

    def provide() -> OrdersService:
        orders: OrdersService = holder["orders"]
        return orders

    def provide_effects() -> OrderEffects:
        effects: OrderEffects = holder["effects"]
        return effects

    def provide_returns() -> ReturnsService:
        returns: ReturnsService = holder["returns"]
        return returns

    app = create_service_app(
        "orders",
        settings,
        title="retailmesh orders process API",
        description="Checkout, pick-up in store and the order lifecycle as durable sagas.",
        route_handlers=[
            OrdersController,
            ReturnsController,
            StoreOrdersController,
            OperationsController,
        ],
        runtime=runtime,
        dependencies={
            "orders": Provide(provide, sync_to_thread=False),
            "returns": Provide(provide_returns, sync_to_thread=False),
            "effects": Provide(provide_effects, sync_to_thread=False),
        },
        on_start=[start],
        on_stop=[stop],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(OrdersSettings, create_app)
