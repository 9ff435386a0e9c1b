"""Customer-service experience API (`/v1/care`): agents (`care:read`) find a customer and
see one view of their orders, refunds, returns and points, and cancel an order; supervisors
(`care:write`) also give goodwill points and read the audit of every lookup and action."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.params import JSONBody, PathParameter, QueryParameter, SkipValidation

from contracts.care import AuditPage, CareAction, CareCustomer, CareSearch, CareView, Goodwill
from contracts.models import LoyaltyAccount, Order
from services.care.audit import AuditLog
from services.care.grants import GrantKeys
from services.care.logic import AGENT, SUPERVISOR, CareDesk, agent_of
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.errors import problem_responses
from services.kit.idempotency_key import IdempotencyKey
from services.kit.identity import Identity
from services.kit.order_params import OrderParam
from services.kit.registry import Registry
from services.kit.relay import answered
from services.kit.settings import Settings

__all__ = ["CareSettings", "create_app", "create_app_from_env"]

Desk = SkipValidation[CareDesk]
Audit = SkipValidation[AuditLog]
Caller = SkipValidation[Identity]
CustomerParam = Annotated[
    str,
    PathParameter(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}\Z",
        description="The customer (their account's subject), as a search answered it",
    ),
]
ReasonParam = Annotated[
    str,
    QueryParameter(min_length=3, max_length=200, description="Why the agent looks (recorded)"),
]


class CareSettings(Settings, frozen=True, kw_only=True):
    pass


class CareController(Controller):
    path = "/"
    tags = ["care"]

    @post(
        "/customers/search",
        status_code=200,
        summary="Find a customer by email, member card or order id (recorded, with the reason)",
        responses=problem_responses(401, 403, 404, 422, 503),
    )
    async def search(
        self, desk: Desk, identity: Caller, data: JSONBody[CareSearch]
    ) -> CareCustomer:
        return await desk.search(agent_of(identity, AGENT), data)

    @get(
        "/customers/{customer:str}",
        summary="One view of a customer: orders with history, postings, refunds and returns, "
        "points and ledger (recorded, with the reason)",
        description="Emails are masked; `reveal_email=true` adds the whole address and is "
        "recorded as an action of its own.",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def view(
        self,
        desk: Desk,
        identity: Caller,
        customer: CustomerParam,
        reason: ReasonParam,
        reveal_email: Annotated[bool, QueryParameter()] = False,
    ) -> CareView:
        return await desk.view(agent_of(identity, AGENT), customer, reason, reveal_email)

    @post(
        "/orders/{order_id:str}/cancel",
        status_code=200,
        summary="Cancel a customer's order, with the reason (recorded)",
        description="Gives back stock and points and books the refund, as the customer's own "
        "cancellation does; 409 when the order is past cancelling.",
        responses=problem_responses(401, 403, 404, 409, 503),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        order_id: OrderParam,
        data: JSONBody[CareAction],
    ) -> Response[Order]:
        done = await desk.cancel(agent_of(identity, AGENT), order_id, data.reason)
        return answered(request, done)

    @post(
        "/customers/{customer:str}/goodwill",
        status_code=200,
        summary="Give a customer goodwill points (supervisors; Idempotency-Key required)",
        description="Once per supervisor and key: the same request again answers the account "
        "and grants nothing more; another request under that key is 422.",
        responses=problem_responses(401, 403, 404, 422, 503),
    )
    async def goodwill(
        self,
        request: Request[Any, Any, Any],
        desk: Desk,
        identity: Caller,
        customer: CustomerParam,
        data: JSONBody[Goodwill],
        idempotency_key: IdempotencyKey,
    ) -> Response[LoyaltyAccount]:
        agent = agent_of(identity, SUPERVISOR)
        return answered(request, await desk.goodwill(agent, customer, idempotency_key, data))

    @get(
        "/audit",
        summary="Every lookup and action of customer service, newest first (supervisors)",
        responses=problem_responses(401, 403),
    )
    async def audit(
        self,
        audit: Audit,
        identity: Caller,
        customer: Annotated[str | None, QueryParameter(min_length=1, max_length=200)] = None,
        cursor: Annotated[
            str | None,
            QueryParameter(
                pattern=r"^[1-9][0-9]{0,17}\Z", description="next_cursor of the last page"
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> AuditPage:
        agent_of(identity, SUPERVISOR)
        items, last = await audit.read(customer, int(cursor) if cursor else None, limit)
        return AuditPage(items=items, next_cursor=str(last) if last is not None else None)


def create_app(
    settings: CareSettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("care", settings, registry)
    audit = AuditLog(runtime.metadata)
    grants = GrantKeys(runtime.metadata)
    holder: dict[str, CareDesk] = {}

    async def start(rt: Runtime) -> None:
        audit.db = grants.db = rt.db
        holder["desk"] = CareDesk(
            rt.registry.client("orders"),
            rt.registry.client("loyalty"),
            rt.registry.client("erp"),
            rt.identity,
            audit,
            grants,
        )

    def provide_desk() -> CareDesk:
        return holder["desk"]

    def provide_audit() -> AuditLog:
        return audit

    app = create_service_app(
        "care",
        settings,
        title="retailmesh customer-service experience API",
        description="For customer-service agents (care:read) and supervisors (care:write): "
        "find a customer, one view of their orders, refunds, returns and points, cancel an "
        "order, goodwill points; every lookup and action is recorded.",
        route_handlers=[CareController],
        runtime=runtime,
        dependencies={
            "desk": Provide(provide_desk, sync_to_thread=False),
            "audit": Provide(provide_audit, sync_to_thread=False),
        },
        on_start=[start],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(CareSettings, create_app)
