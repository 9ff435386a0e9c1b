"""The operator API (`/admin/v1/...`): partners, keys, plans and routes, circuit breakers,
a consumer's rate-limit state, the event backlog and dead letters. Every call needs a JWT
with the role `admin`."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.bounds import Count
from contracts.events import STREAMS
from gateway.auth.jwt import JwtRejected
from gateway.auth.keys import MAX_LISTED, ApiKey, KeyRefused, Partner, list_partners
from gateway.config import MAX_ROUTE_SCOPES, MAX_ROUTES, MAX_UPSTREAMS, Method, PlanConfig
from gateway.limits import Window
from gateway.resilience import BreakerState
from services.kit.errors import Invalid, NotFound, Unprocessable, problem_responses
from services.kit.events import Backlog, DeadLetter
from services.kit.events.bus import LetterId

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from gateway.app import Gateway

__all__ = ["admin_controller"]

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,63}\Z")]
Scope = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9:._-]{0,63}\Z")]
KeyId = Annotated[str, PathParameter(pattern=r"^key_[0-9a-f]{16}\Z")]
StreamName = Annotated[str, PathParameter(pattern=r"^[a-z][a-z0-9._-]{0,63}\Z")]
_ADMIN = problem_responses(401, 403)
#: consumer groups of one stream an operator's backlog shows (the mesh has a few)
MAX_GROUPS = 100


class UnknownPartner(Unprocessable):
    slug, title = "unknown-partner", "Unknown partner"


class PartnerIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Name
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class KeyIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    partner_id: Name
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=50)] = []
    plan: Name = "partner"
    label: Annotated[str, msgspec.Meta(max_length=200)] = ""
    expires_in_days: Annotated[float, msgspec.Meta(gt=0, le=3650)] | None = None
    env: Literal["live", "test"] = "live"


class KeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    """The key is in this answer only: it is stored as a hash."""

    key: Annotated[str, msgspec.Meta(max_length=64)]
    record: ApiKey


class RotateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: how long the old key keeps working
    grace_s: Annotated[int, msgspec.Meta(ge=0, le=30 * 86400)] = 86400


class RouteView(msgspec.Struct, frozen=True, kw_only=True):
    api: Annotated[str, msgspec.Meta(max_length=64)]
    version: Annotated[str, msgspec.Meta(max_length=16)]
    status: Literal["current", "deprecated", "retired"]
    path: Annotated[str, msgspec.Meta(max_length=1024)]
    methods: Annotated[list[Method], msgspec.Meta(max_length=6)]
    auth: Literal["none", "key", "jwt", "either"]
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=MAX_ROUTE_SCOPES)]
    weight: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    #: the query parameter whose listed items each weigh `weight`
    weight_per: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    upstream: Annotated[str, msgspec.Meta(max_length=64)]


class WindowUse(msgspec.Struct, frozen=True, kw_only=True):
    window: Window
    used: Count
    seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class Replayed(msgspec.Struct, frozen=True, kw_only=True):
    """The dead letter put back on its stream (by its id there)."""

    replayed: LetterId


class LimitState(msgspec.Struct, frozen=True, kw_only=True):
    consumer: Annotated[str, msgspec.Meta(max_length=300)]
    shared: bool
    windows: Annotated[list[WindowUse], msgspec.Meta(max_length=3)]


def admin_controller(gateway: Gateway) -> type[Controller]:
    """The admin routes, bound to one gateway's stores and state."""

    async def require_admin(
        connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
    ) -> None:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or gateway.auth is None:
            raise NotAuthorizedException("the admin API needs a bearer token with role admin")
        try:
            claims = await gateway.auth.jwt.verify(token.strip())
        except JwtRejected as exc:
            raise NotAuthorizedException(str(exc)) from None
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or "admin" not in roles:
            raise PermissionDeniedException("the admin API needs the role admin")

    def db() -> Any:
        assert gateway.runtime.db is not None
        return gateway.runtime.db

    class AdminController(Controller):
        path = "/admin/v1"
        tags = ["admin"]
        guards = [require_admin]
        #: a bearer token whose `roles` hold `admin` (OpenAPI 3.1 lists the role the scheme
        #: needs); no other route of the gateway asks for it
        security = [{"Bearer": ["admin"]}]

        @get(
            "/partners",
            summary="Partners",
            description=f"The first {MAX_LISTED:,} partners by id.",
            responses=_ADMIN,
        )
        async def partners(self) -> Annotated[list[Partner], msgspec.Meta(max_length=MAX_LISTED)]:
            return await list_partners(gateway.key_store, db())

        @post("/partners", summary="Register a partner", responses=_ADMIN)
        async def add_partner(self, data: JSONBody[PartnerIn]) -> Partner:
            await gateway.key_store.ensure_partner(db(), data.id, data.name)
            return (await list_partners(gateway.key_store, db(), data.id))[0]

        @get(
            "/keys",
            summary="API keys (never the keys themselves)",
            description=f"The oldest {MAX_LISTED:,} keys, of one partner when `partner_id` "
            "names one.",
            responses=_ADMIN,
        )
        async def keys(
            self,
            partner_id: Annotated[
                str | None, QueryParameter(pattern=r"^[a-z0-9][a-z0-9-]{0,63}\Z")
            ] = None,
        ) -> Annotated[list[ApiKey], msgspec.Meta(max_length=MAX_LISTED)]:
            return await gateway.key_store.list(db(), partner_id)

        @post(
            "/keys",
            summary="Mint a key: shown once",
            description="The plans and the scopes each allows are in the schema (from the "
            "gateway's configuration). 422 `unknown-partner`: register the partner first.",
            responses=problem_responses(401, 403, 422),
        )
        async def create_key(self, data: JSONBody[KeyIn]) -> KeyCreated:
            field, problem = gateway.config.key_scope_problem(data.plan, list(data.scopes))
            if problem is not None:
                raise Invalid(
                    "Validation failed: the errors name each field",
                    errors=[{"field": field, "message": problem, "source": "body"}],
                )
            try:
                new = await gateway.key_store.create(
                    db(),
                    partner_id=data.partner_id,
                    scopes=list(data.scopes),
                    plan=data.plan,
                    label=data.label,
                    expires_in=(
                        timedelta(days=data.expires_in_days) if data.expires_in_days else None
                    ),
                    env=data.env,
                )
            except KeyRefused as exc:
                raise UnknownPartner(str(exc)) from None
            return KeyCreated(key=new.key, record=new.record)

        @post(
            "/keys/{key_id:str}/rotate",
            status_code=201,
            summary="A new key; the old one works for grace_s",
            responses=problem_responses(401, 403, 404),
        )
        async def rotate_key(self, key_id: KeyId, data: JSONBody[RotateIn]) -> KeyCreated:
            rotated = await gateway.key_store.rotate(db(), key_id, timedelta(seconds=data.grace_s))
            if rotated is None:
                raise NotFound(f"no active key {key_id} (only an active key can be rotated)")
            new, old_digest = rotated
            assert gateway.key_cache is not None
            await gateway.key_cache.announce(old_digest)
            return KeyCreated(key=new.key, record=new.record)

        @post(
            "/keys/{key_id:str}/revoke",
            status_code=200,
            summary="Revoke at once, on every replica",
            responses=problem_responses(401, 403, 404),
        )
        async def revoke_key(self, key_id: KeyId) -> ApiKey:
            digest = await gateway.key_store.revoke(db(), key_id)
            if digest is None:
                raise NotFound(f"no key {key_id}")
            assert gateway.key_cache is not None
            await gateway.key_cache.announce(digest)
            found = await gateway.key_store.get(db(), key_id)
            assert found is not None
            return found[0]

        @get(
            "/metrics",
            summary="Prometheus metrics (scrape with a bearer token)",
            media_type="text/plain; version=0.0.4",
            responses=_ADMIN,
        )
        async def metrics(self) -> Response[bytes]:
            return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")

        @get("/plans", summary="Plans and their limits", responses=_ADMIN)
        async def plans(self) -> dict[str, PlanConfig]:
            return dict(gateway.config.plans)

        @get("/routes", summary="The route table", responses=_ADMIN)
        async def routes(self) -> Annotated[list[RouteView], msgspec.Meta(max_length=MAX_ROUTES)]:
            return [
                RouteView(
                    api=api.name,
                    version=version.version,
                    status=version.status,
                    path=route.path,
                    methods=list(route.methods),
                    auth=route.auth,
                    scopes=list(route.scopes),
                    weight=route.weight,
                    weight_per=route.weight_per,
                    upstream=api.upstream,
                )
                for api in gateway.config.apis
                for version in api.versions
                for route in api.routes
            ]

        @get("/breakers", summary="Circuit breakers per upstream", responses=_ADMIN)
        async def breakers(
            self,
        ) -> Annotated[list[BreakerState], msgspec.Meta(max_length=MAX_UPSTREAMS)]:
            return [guard.snapshot() for guard in gateway.guards.values()]

        @post(
            "/breakers/{upstream:str}/reset",
            status_code=200,
            summary="Close a circuit breaker",
            responses=problem_responses(401, 403, 404),
        )
        async def reset_breaker(
            self, upstream: Annotated[str, PathParameter(pattern=r"^[a-z][a-z0-9-]{0,31}\Z")]
        ) -> BreakerState:
            guard = gateway.guards.get(upstream)
            if guard is None:
                raise NotFound(f"no upstream {upstream}")
            guard.breaker.reset()
            return guard.snapshot()

        @get(
            "/limits/{consumer:str}",
            summary="A consumer's use of its windows now",
            responses=_ADMIN,
        )
        async def limits(
            self,
            consumer: Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9:._-]{1,128}\Z")],
        ) -> LimitState:
            assert gateway.limiter is not None
            return LimitState(
                consumer=consumer,
                shared=gateway.limiter.shared,
                windows=[
                    WindowUse(window=w, used=used, seconds=s)
                    for w, used, s in await gateway.limiter.usage(consumer)
                ],
            )

        @get(
            "/backlog",
            summary="What each consumer group has still to deliver, and how old the oldest is",
            description="""
                Per stream and consumer group: events delivered and not yet done (being
                handled, or waiting to be retried while the other side is busy or away),
                events not yet delivered, and the age of the oldest of them. A backlog that
                grows old while a system of record is down is expected; it drains by itself
                when the system is back.
            """,
            responses=_ADMIN,
        )
        async def backlog(
            self,
        ) -> Annotated[list[Backlog], msgspec.Meta(max_length=len(STREAMS) * MAX_GROUPS)]:
            assert gateway.runtime.bus is not None
            out: list[Backlog] = []
            for stream in sorted(STREAMS):
                out += (await gateway.runtime.bus.backlog(stream))[:MAX_GROUPS]
            return out

        @get(
            "/dead-letters/{stream:str}",
            summary="Events that failed every attempt",
            responses=problem_responses(401, 403, 404),
        )
        async def dead_letters(
            self, stream: StreamName
        ) -> Annotated[list[DeadLetter], msgspec.Meta(max_length=100)]:
            if stream not in STREAMS:
                raise NotFound(f"no stream {stream}", streams=sorted(STREAMS))
            assert gateway.runtime.bus is not None
            return await gateway.runtime.bus.dead_letters(stream)

        @post(
            "/dead-letters/{stream:str}/{letter_id:str}/replay",
            status_code=202,
            summary="Put a dead letter back on its stream",
            responses=problem_responses(401, 403, 404),
        )
        async def replay(
            self,
            stream: StreamName,
            # a Redis stream id: two unsigned 64-bit numbers; 19 digits keep each below 2**64
            # (a 20-digit one past it was a Redis error, answered 500)
            letter_id: Annotated[str, PathParameter(pattern=r"^[0-9]{1,19}-[0-9]{1,19}\Z")],
        ) -> Response[Replayed]:
            if stream not in STREAMS:
                raise NotFound(f"no stream {stream}", streams=sorted(STREAMS))
            assert gateway.runtime.bus is not None
            if not await gateway.runtime.bus.replay(stream, letter_id):
                raise NotFound(f"no dead letter {letter_id} on {stream}")
            return Response(Replayed(replayed=letter_id), status_code=202)

    return AdminController
