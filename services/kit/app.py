"""The one Litestar app factory every service uses.

It gives each service: `/healthz` and `/readyz`, problem+json for every error, the request
id echoed on every response and carried into the logs, the service's database (schema
created at start-up), Redis when there is one, the outbox relay, event consumers, and the
registry through which it calls other services. A service brings its routes and a start-up
hook; everything else is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from sqlalchemy import MetaData

from services.kit.errors import NotReady, problem_responses
from services.kit.errors import problem_details_plugin as _problems
from services.kit.events import EventBus, Outbox, RedisBus, Relay
from services.kit.identity import Identity, IdentityCodec, SigningClient
from services.kit.logs import access_log
from services.kit.redisconn import connect_redis
from services.kit.registry import Registry, ServiceClient, parse_service_urls
from services.kit.requestid import request_id, request_started_at
from services.kit.storage import Database
from services.kit.strictbody import strict_body
from services.kit.supervisor import Supervisor, WorkerState

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.types import Message, Scope
    from redis.asyncio import Redis

    from services.kit.settings import Settings
    from services.kit.supervisor import Worker

__all__ = ["OPEN_PATHS", "Health", "Readiness", "Runtime", "app_from_env", "create_service_app"]

log = logging.getLogger("retailmesh.service")
SettingsT = TypeVar("SettingsT", bound="Settings")


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]
    service: Annotated[str, msgspec.Meta(max_length=32)]


class Readiness(msgspec.Struct, frozen=True):
    status: str
    service: str
    checks: dict[str, str]
    #: each background worker: its last completed round, failures in a row, restarts
    workers: dict[str, WorkerState] = {}


OPEN_PATHS = frozenset({"/healthz", "/readyz"})
#: how long a readiness probe waits for each dependency
READY_TIMEOUT_S = 0.4


class Runtime:
    """What a running service owns: storage, Redis, the bus, the relay, its consumers.

    Built empty with the app; filled in the app's lifespan, so that nothing connects at
    import time and a test can build as many apps as it likes.
    """

    def __init__(self, name: str, settings: Settings, registry: Registry | None) -> None:
        self.name = name
        self.settings = settings
        self.registry = registry or Registry(
            urls=parse_service_urls(settings.service_urls), timeout=settings.request_timeout_s
        )
        self.metadata = MetaData()
        self.outbox = Outbox(self.metadata, name)
        self.db: Database | None = None
        self.redis: Redis | None = None
        self.bus: EventBus | None = None
        self.relay: Relay | None = None
        self.supervisor = Supervisor()
        self._identity: IdentityCodec | None = None
        self._owns_redis = False
        self._bus_redis: Redis | None = None
        self._ready_at: tuple[float, dict[str, str]] | None = None

    @property
    def identity(self) -> IdentityCodec:
        """Verifies (and signs) identity headers; built on first use."""
        if self._identity is None:
            self._identity = IdentityCodec(self.settings.identity_key())
        return self._identity

    def provide_identity(self, request: Request[Any, Any, Any]) -> Identity:
        """Litestar dependency: the caller's verified identity, or 401."""
        return self.identity.from_request(request)

    def client(self, service: str) -> ServiceClient:
        """A client for another service of the mesh that calls as this service."""
        return SigningClient(self.registry.client(service), self.name, self.identity)

    async def require_identity(
        self, connection: ASGIConnection[Any, Any, Any, Any], _: Any
    ) -> None:
        """Guard on every route but health: nothing behind the gateway answers a caller
        whose identity the gateway (or a service) did not sign. Async although it only
        computes: Litestar runs a sync guard in a thread, a hop on every request."""
        if connection.scope["path"] in OPEN_PATHS:
            return  # the service's own /schema too: the gateway publishes what is public
        self.identity.from_request(connection)  # type: ignore[arg-type]

    def add_worker(self, worker: Worker) -> None:
        """Run a background worker for the life of the service, supervised: started again
        when it dies, and late in `/readyz` when it stops completing rounds."""
        self.supervisor.start(worker)

    async def start(self, bus: EventBus | None = None) -> None:
        settings = self.settings
        _ = self.identity  # fail at start-up, not at the first request, on a bad secret
        self.db = Database(settings.database_url_for(self.name))
        await self.db.create_all(self.metadata)
        if bus is None:
            self.redis = await connect_redis(settings)
            self._owns_redis = self.redis is not None
            # Without Redis, the services of one process share one in-memory bus. With it,
            # the bus has a client of its own: its reads block by design, requests must not.
            if self.redis is not None:
                self._bus_redis = await connect_redis(settings, for_workers=True)
            bus = (
                RedisBus(self._bus_redis, settings.key_prefix())
                if self._bus_redis is not None
                else self.registry.local_bus()
            )
        elif isinstance(bus, RedisBus):
            self.redis = bus.redis
        self.bus = bus
        self.relay = Relay(self.db, self.outbox, bus, interval_s=settings.relay_interval_s)
        self.add_worker(self.relay)

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self.db is not None:
            await self.db.dispose()
        if self.redis is not None and self._owns_redis:
            await self.redis.aclose()
        if self._bus_redis is not None:
            await self._bus_redis.aclose()

    async def readiness_at_most_every(self, seconds: float) -> dict[str, str]:
        """The last readiness checked within `seconds`, or a new one: a flood of probes
        touches the database and Redis once a second, not once a probe."""
        now = time.monotonic()
        if self._ready_at is not None and now - self._ready_at[0] < seconds:
            return self._ready_at[1]
        checks = await self.readiness()
        self._ready_at = (time.monotonic(), checks)
        return checks

    async def readiness(self) -> dict[str, str]:
        """Each dependency answers within `READY_TIMEOUT_S`, or it counts as failed: a hung
        Redis or database makes `/readyz` say 503 in time, not hang with it."""
        checks: dict[str, str] = {}
        assert self.db is not None
        probes: dict[str, Awaitable[Any]] = {"database": self.db.ping()}
        if self.redis is not None:
            probes["redis"] = self.redis.ping()
        else:
            checks["redis"] = "in-memory"
        for name, probe in probes.items():
            try:
                async with asyncio.timeout(READY_TIMEOUT_S):
                    await probe
                checks[name] = "ok"
            except TimeoutError:
                checks[name] = f"failed: no answer within {READY_TIMEOUT_S} s"
            except Exception as exc:
                checks[name] = f"failed: {type(exc).__name__}"
        late = sorted(n for n, w in self.supervisor.states().items() if w.status != "ok")
        checks["workers"] = "late: " + ", ".join(late) if late else "ok"
        return checks


def create_service_app(
    name: str,
    settings: Settings,
    *,
    title: str,
    description: str,
    route_handlers: Sequence[Any],
    runtime: Runtime,
    dependencies: dict[str, Provide] | None = None,
    on_start: Sequence[Callable[[Runtime], Awaitable[None]]] = (),
    on_stop: Sequence[Callable[[Runtime], Awaitable[None]]] = (),
    bus: EventBus | None = None,
    require_identity: bool = True,
) -> Litestar:
    """Build a service's ASGI app; nothing connects until its lifespan starts. Every route
    but health needs a signed identity unless `require_identity` is off (the gateway's own
    app, whose admin routes authenticate the operator's JWT themselves)."""

    @get("/healthz", tags=["ops"], summary="Liveness", sync_to_thread=False)
    def healthz() -> Health:
        return Health(status="ok", service=name)

    @get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: the service's own dependencies answer",
        responses=problem_responses(503),
    )
    async def readyz() -> Response[Any]:
        checks = await runtime.readiness_at_most_every(1.0)
        workers = runtime.supervisor.states()
        if all(v in ("ok", "in-memory") for v in checks.values()):
            return Response(Readiness(status="ready", service=name, checks=checks, workers=workers))
        raise NotReady(
            "a dependency does not answer, or a worker is late",
            headers={"Retry-After": "1"},
            checks=checks,
            workers={k: msgspec.to_builtins(v) for k, v in workers.items()},
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        await runtime.start(bus)
        try:
            for hook in on_start:
                await hook(runtime)
            yield
        finally:
            for hook in on_stop:
                await hook(runtime)
            await runtime.stop()

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            rid = request_id(scope)
            headers = list(message.get("headers", ()))
            headers.append((b"x-request-id", rid.encode()))
            message["headers"] = headers
            access_log(
                name,
                scope.get("method", ""),  # type: ignore[arg-type]
                scope.get("path", ""),
                message["status"],
                request_started_at(scope),
                rid,
            )

    return Litestar(
        route_handlers=[healthz, readyz, *route_handlers],
        dependencies={
            "identity": Provide(runtime.provide_identity, sync_to_thread=False),
            **(dependencies or {}),
        },
        plugins=[_problems()],
        lifespan=[lifespan],
        before_send=[before_send],
        before_request=strict_body,
        guards=[runtime.require_identity] if require_identity else [],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title=title,
            version="1.0.0",
            description=description,
            path="/schema",
        ),
        logging_config=None,
        debug=False,
    )


def app_from_env(
    settings_type: type[SettingsT], create_app: Callable[[SettingsT], Litestar]
) -> Litestar:
    """A service's app from the process environment, logging configured: what each
    service's `create_app_from_env` (the factory an ASGI server calls) returns."""
    import os

    from services.kit.logs import configure_logging

    settings = settings_type.from_env(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
