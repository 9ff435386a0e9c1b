"""The gateway: the only door from outside.

`/{version}/{api}/...` goes to the forwarder on a plain ASGI path (no framework routing on
the hot path); everything else (health, the external OpenAPI document, docs, and later the
admin and portal APIs) is a small Litestar app built with the service kit.
"""

from __future__ import annotations

import gc
import os
import re
import time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import MediaType, Response, get

from gateway.admin import admin_controller
from gateway.auth.identify import Authenticator, AuthFailure
from gateway.auth.jwt import DevIssuer, JwksSource, JwtVerifier
from gateway.auth.keycache import KeyCache
from gateway.auth.keys import KeyStore
from gateway.config import GatewayConfig, RouteConfig, VersionConfig, load_config
from gateway.cors import (
    cors_response_headers,
    origin_allowed,
    preflight_headers,
    request_origin,
)
from gateway.forward import Forwarder, Guard, Target
from gateway.intake import (
    CONTROL,
    content_length,
    has_body,
    head_within_limits,
    headless,
    raw_rest,
    whole_body,
)
from gateway.limits import Limiter, PlanPolicy
from gateway.metrics import GatewayMetrics
from gateway.problem_pages import problem_handlers
from gateway.problems import send_problem
from gateway.routes import RouteTable, weight_of
from gateway.upstream import UpstreamPool
from gateway.versions import lifecycle_headers
from services.kit.app import Runtime, create_service_app
from services.kit.asgi import LifespanRunner
from services.kit.devkeys import load_dev_keys
from services.kit.identity import IDENTITY_HEADER, Identity
from services.kit.logs import access_log
from services.kit.openapi import openapi_document, structs_of
from services.kit.registry import Registry, parse_service_urls
from services.kit.requestid import request_id
from services.kit.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from litestar import Litestar

__all__ = ["Gateway", "GatewaySettings", "create_gateway"]

_VERSIONED = re.compile(r"^/(v[0-9]+)/([a-z][a-z0-9-]*)(/.*)?\Z", re.DOTALL)
_DOCS_HTML = """<!doctype html>
<html><head><title>retailmesh API</title><meta charset="utf-8"/>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"/></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


class GatewaySettings(Settings, frozen=True, kw_only=True):
    gateway_config: str = "deploy/config/gateway.toml"
    #: the identity provider's JWKS; without either, the development issuer's keys
    jwt_jwks_url: str | None = None
    jwt_jwks_file: str | None = None
    #: hex, at least 32 bytes: mixed into stored API key hashes (dev: generated)
    api_key_pepper: Annotated[str, msgspec.Meta(pattern=r"^([0-9a-fA-F]{2}){32,}\Z")] | None = None
    #: how long a rate-limit decision waits for Redis before this replica decides alone
    limiter_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=5)] = 0.05

    def pepper(self) -> bytes:
        if self.api_key_pepper:
            return bytes.fromhex(self.api_key_pepper)
        return load_dev_keys(self.data_dir).api_key_pepper

    def jwks_source(self) -> JwksSource:
        if self.jwt_jwks_url:
            return JwksSource(url=self.jwt_jwks_url)
        if self.jwt_jwks_file:
            return JwksSource(path=self.jwt_jwks_file)
        return JwksSource(jwks=load_dev_keys(self.data_dir).jwks)

    def dev_issuer(self, config: GatewayConfig) -> DevIssuer:
        keys = load_dev_keys(self.data_dir)
        return DevIssuer(keys.issuer_private_pem, keys.kid, config.jwt.issuer, config.jwt.audience)


class Gateway:
    """The gateway's ASGI app."""

    def __init__(
        self,
        config: GatewayConfig,
        registry: Registry,
        settings: GatewaySettings,
        *,
        spec: Callable[[], dict[str, Any]],
        mounted: Sequence[Any] = (),
    ) -> None:
        self.config = config
        self.registry = registry
        self.settings = settings
        self.mounted = list(mounted)
        self.forwarder = Forwarder()
        self.routes: dict[tuple[str, str], tuple[Target, VersionConfig, RouteTable]] = {}
        self.apis: dict[str, list[str]] = {}
        self.guards = {name: Guard(name, up) for name, up in config.upstreams.items()}
        self.pools: dict[str, UpstreamPool] = {}
        for api in config.apis:
            upstream = config.upstreams[api.upstream]
            self.apis[api.name] = [v.version for v in api.versions]
            table = RouteTable(api.routes)
            for version in api.versions:
                target = Target(
                    api.name,
                    upstream,
                    version.prefix,
                    registry,
                    self.guards[api.upstream],
                    self.pools,
                )
                self.routes[(version.version, api.name)] = (target, version, table)
        self._spec_factory = spec
        self._spec: dict[str, Any] | None = None
        self._own_methods: list[tuple[re.Pattern[str], list[str]]] | None = None
        self.runtime = Runtime("gateway", settings, registry)
        self.key_store = KeyStore(self.runtime.metadata, settings.pepper())
        self.jwks = settings.jwks_source()
        self.auth: Authenticator | None = None
        self.limiter: Limiter | None = None
        self.plans = {name: PlanPolicy(name, plan) for name, plan in config.plans.items()}
        self.metrics = GatewayMetrics(self)
        self.key_cache: KeyCache | None = None
        self.internal = self._internal_app()
        self._lifespans: list[LifespanRunner] = []

    async def _start_auth(self, runtime: Runtime) -> None:
        assert runtime.db is not None
        self.key_cache = KeyCache(
            self.key_store,
            runtime.db,
            runtime.redis,
            self.settings.key_prefix() + "gateway.keys.invalidate",
        )
        runtime.add_worker(self.key_cache)
        verifier = JwtVerifier(
            self.jwks,
            issuer=self.config.jwt.issuer,
            audience=self.config.jwt.audience,
            leeway_s=self.config.jwt.leeway_s,
        )
        self.auth = Authenticator(self.key_cache, verifier, self.config.jwt_plans())
        self.limiter = Limiter(
            runtime.redis, self.settings.key_prefix(), timeout_s=self.settings.limiter_timeout_s
        )

    async def _stop_auth(self, _runtime: Runtime) -> None:
        await self.jwks.close()

    def identity_header(self, identity: Identity) -> bytes:
        return self.runtime.identity.sign(identity).encode()

    def own_spec(self) -> dict[str, Any]:
        """The OpenAPI document of the gateway's own endpoints (admin, docs, health)."""
        import gateway.admin
        import gateway.auth.keys
        import gateway.config
        import gateway.resilience

        return openapi_document(
            self.internal,
            structs_of(gateway.admin, gateway.auth.keys, gateway.config, gateway.resilience),
        )

    def spec(self) -> dict[str, Any]:
        if self._spec is None:
            self._spec = self._spec_factory()
        return self._spec

    def _internal_app(self) -> Litestar:
        @get("/openapi.json", tags=["gateway"], summary="The gateway's external OpenAPI document")
        async def openapi() -> dict[str, Any]:
            return self.spec()

        @get("/docs", tags=["gateway"], summary="API documentation", media_type=MediaType.HTML)
        async def docs() -> Response[str]:
            return Response(_DOCS_HTML, media_type=MediaType.HTML)

        handlers: list[Any] = [openapi, docs, admin_controller(self), *problem_handlers()]
        if not (self.settings.jwt_jwks_url or self.settings.jwt_jwks_file):

            @get(
                "/.well-known/jwks.json",
                tags=["gateway"],
                summary="Public keys of the development token issuer",
            )
            async def jwks() -> dict[str, Any]:
                return load_dev_keys(self.settings.data_dir).jwks

            handlers.append(jwks)

        return create_service_app(
            "gateway",
            self.settings,
            title="retailmesh gateway",
            description="The gateway's own endpoints.",
            route_handlers=handlers,
            runtime=self.runtime,
            on_start=[self._start_auth],
            on_stop=[self._stop_auth],
            require_identity=False,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if not await head_within_limits(scope, send):
                return
            if scope["method"] == "HEAD":
                # HEAD wherever GET is (RFC 9110 section 9.3.2): the GET, answered without
                # its body, through the same authorization, limits and upstream
                scope, send = {**scope, "method": "GET"}, headless(send)
            match = _VERSIONED.match(scope["path"])
            if match is not None:
                await self._route(match, scope, receive, send)
                return
            # The gateway's own paths (docs, the OpenAPI document, health, admin) are limited
            # too, per client address on the anonymous plan (who calls is not known yet:
            # the admin API checks its token after), and their bodies are bounded the same.
            if not await self._admitted_by_address(scope, send, "own"):
                return
            if scope["method"] == "OPTIONS":
                await self._options(scope, send)
                return
            if has_body(scope):
                read = await whole_body(
                    scope, receive, send, self.config.max_body_bytes, self.config.body_timeout_s
                )
                if read is None:
                    return
                receive = read
        elif scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self.internal(scope, receive, send)  # type: ignore[arg-type]

    async def _admitted_by_address(self, scope: dict[str, Any], send: Any, kind: str) -> bool:
        """Count a request against its client address on the anonymous plan (`kind` keeps
        the gateway's own paths, CORS preflights and refused credentials apart); past the
        plan, answer 429 and say no."""
        if not self.plans or self.limiter is None:
            return True
        client = scope.get("client")
        consumer = f"{kind}:ip:" + (client[0] if client else "unknown")
        policy = self.plans[self.config.anonymous_plan]
        decision = await self.limiter.check(consumer, policy)
        if decision.admitted:
            return True
        self.metrics.refused("rate-limited")
        await send_problem(
            scope,
            send,
            429,
            "rate-limited",
            "Too many requests",
            f"the {decision.window} limit of plan {policy.name} is used up",
            headers=[
                (b"retry-after", str(decision.reset_s).encode()),
                (b"ratelimit-policy", policy.policy_header),
                (b"ratelimit", decision.header()),
            ],
        )
        return False

    async def _options(self, scope: dict[str, Any], send: Any) -> None:
        """OPTIONS on the gateway's own paths, from its OpenAPI document: Litestar's automatic
        answer leaves out a method when two handlers of a controller share a path."""
        if self._own_methods is None:
            self._own_methods = [
                (
                    re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + r"\Z"),
                    sorted(
                        m.upper() for m in item if m in {"get", "post", "put", "patch", "delete"}
                    ),
                )
                for path, item in self.own_spec().get("paths", {}).items()
            ]
        for regex, methods in self._own_methods:
            if regex.match(scope["path"]):
                allow = ", ".join([*methods, "OPTIONS"]).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [
                            (b"allow", allow),
                            (b"x-request-id", request_id(scope).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        await send_problem(scope, send, 404, "not-found", "Not found", "no such path")

    async def _route(
        self, match: re.Match[str], scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        version, api, rest = match.group(1), match.group(2), match.group(3) or ""
        rid = request_id(scope)
        status = 0
        extra: list[tuple[bytes, bytes]] = []

        async def respond(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(n, v) for n, v in message.get("headers", ()) if n != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                headers += extra
                message = {**message, "headers": headers}
            await send(message)

        try:
            if CONTROL.search(rest) is not None:
                # No resource here has a control character in its path (a %0A in an id)
                await send_problem(
                    scope,
                    respond,
                    400,
                    "bad-path",
                    "Bad path",
                    "the path holds control characters",
                )
                return
            found = self.routes.get((version, api))
            if found is None:
                if api in self.apis:
                    await send_problem(
                        scope,
                        respond,
                        404,
                        "unknown-version",
                        "Unknown API version",
                        f"{api} has no version {version}",
                        versions=self.apis[api],
                    )
                else:
                    await send_problem(
                        scope, respond, 404, "not-found", "Not found", f"no API named {api}"
                    )
                return
            target, version_config, table = found
            extra += lifecycle_headers(version_config, api, rest)
            if version_config.status == "retired":
                await send_problem(
                    scope,
                    respond,
                    410,
                    "version-retired",
                    "API version retired",
                    f"{api} {version} is retired; use {version_config.successor}",
                    successor=version_config.successor,
                )
                return
            if scope["method"] == "OPTIONS":
                if await self._admitted_by_address(scope, respond, "preflight"):
                    await self._route_options(scope, respond, table, rest or "/")
                return
            route, allowed = table.match(scope["method"], rest or "/")
            if route is None:
                if allowed:
                    await send_problem(
                        scope,
                        respond,
                        405,
                        "method-not-allowed",
                        "Method not allowed",
                        f"{scope['method']} is not allowed here",
                        headers=[(b"allow", ", ".join(allowed).encode())],
                    )
                else:
                    await send_problem(
                        scope,
                        respond,
                        404,
                        "not-found",
                        "Not found",
                        f"{api} {version} publishes no {rest or '/'}",
                    )
                return
            # a browser reads every answer of a route it may call, refusals included (a 401
            # tells it to sign in again, a 413 that the body is too big)
            origin = request_origin(scope["headers"])
            if origin is not None:
                extra += cors_response_headers(route, origin)
            limit = (
                route.max_body_bytes
                if route.max_body_bytes is not None
                else self.config.max_body_bytes
            )
            if content_length(scope) > limit:
                await send_problem(
                    scope,
                    respond,
                    413,
                    "payload-too-large",
                    "Payload too large",
                    f"request bodies are limited to {limit} bytes here",
                )
                return
            assert self.auth is not None, "the gateway's lifespan has not started"
            try:
                identity = await self.auth.identify(route, scope)
            except AuthFailure as failure:
                self.metrics.refused(failure.slug)
                # refusals count against the client's address: guessing keys or tokens is
                # limited like any anonymous traffic (429 past the anonymous plan)
                if not await self._admitted_by_address(scope, respond, "refused"):
                    return
                challenge = (
                    [(b"www-authenticate", failure.challenge.encode())] if failure.challenge else []
                )
                await send_problem(
                    scope,
                    respond,
                    failure.status,
                    failure.slug,
                    failure.title,
                    failure.detail,
                    headers=challenge,
                )
                return
            if self.plans:
                refusal = await self._limit(identity, route, extra, scope)
                if refusal is not None:
                    self.metrics.refused(refusal[1])
                    await send_problem(scope, respond, *refusal[:4], headers=refusal[4])
                    return
            if has_body(scope):
                # The whole body first, bounded in size and time: a slow or endless upload is
                # the client's fault (408, 413), never an upstream's timeout nor a slot held.
                read = await whole_body(scope, receive, respond, limit, self.config.body_timeout_s)
                if read is None:
                    return
                receive = read
            await self.forwarder.forward(
                target,
                f"/{version}/{api}",
                raw_rest(scope, f"/{version}/{api}", rest),
                scope,
                receive,
                respond,
                consumer=limit_key(identity),
                extra_headers=[(IDENTITY_HEADER.encode(), self.identity_header(identity))],
                operator=identity.is_admin,
            )
        finally:
            self.metrics.observe(
                api, version, status, time.perf_counter() - scope["retailmesh.started_at"]
            )
            access_log(
                "gateway",
                scope["method"],
                scope["path"],
                status,
                scope.get("retailmesh.started_at", 0.0),
                rid,
            )

    async def _route_options(
        self, scope: dict[str, Any], respond: Any, table: RouteTable, rest: str
    ) -> None:
        """OPTIONS: a CORS preflight, or the methods the path allows."""
        headers = scope["headers"]
        preflight_method = next(
            (v for n, v in headers if n == b"access-control-request-method"), None
        )
        origin = request_origin(headers)
        method = preflight_method.decode("latin-1").upper() if preflight_method else "GET"
        route, allowed = table.match(method, rest)
        if route is None and not allowed:
            await send_problem(scope, respond, 404, "not-found", "Not found", f"no {rest} here")
            return
        if preflight_method is not None and origin is not None:
            if route is None or not origin_allowed(route, origin):
                await send_problem(
                    scope,
                    respond,
                    403,
                    "cors-refused",
                    "Cross-origin request refused",
                    "this origin or method may not call this route from a browser",
                )
                return
            out = preflight_headers(route, origin)
        else:
            methods = table.methods(rest)
            out = [(b"allow", ", ".join([*methods, "OPTIONS"]).encode())]
        await respond({"type": "http.response.start", "status": 204, "headers": out})
        await respond({"type": "http.response.body", "body": b""})

    async def _limit(
        self,
        identity: Identity,
        route: RouteConfig,
        extra: list[tuple[bytes, bytes]],
        scope: dict[str, Any],
    ) -> tuple[int, str, str, str, list[tuple[bytes, bytes]]] | None:
        """Count the request against its consumer's plan; a refusal's problem, or None."""
        assert self.limiter is not None
        policy = self.plans.get(identity.plan or "") or self.plans[self.config.anonymous_plan]
        weight = weight_of(route, scope.get("query_string", b""))
        decision = await self.limiter.check(limit_key(identity), policy, weight)
        extra.append((b"ratelimit-policy", policy.policy_header))
        extra.append((b"ratelimit", decision.header()))
        if not decision.shared and route.fail_closed:
            return (
                503,
                "limits-unavailable",
                "Rate limits unavailable",
                "this route is not served while the shared limit store is away",
                [(b"retry-after", b"5")],
            )
        if not decision.admitted:
            return (
                429,
                "rate-limited",
                "Too many requests",
                f"the {decision.window} limit of plan {policy.name} is used up",
                [(b"retry-after", str(decision.reset_s).encode())],
            )
        return None

    async def _lifespan(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            for app in [*self.mounted, self.internal]:
                runner = LifespanRunner(app)
                await runner.start()
                self._lifespans.append(runner)
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        # Everything built at start-up lives as long as the process: keep it out of the
        # collector's way, so a collection walks only what requests allocate.
        gc.collect()
        gc.freeze()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        gc.unfreeze()
        try:
            for runner in reversed(self._lifespans):
                await runner.stop()
            self._lifespans.clear()
            await self.registry.close()
            for pool in self.pools.values():
                pool.close()
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def limit_key(identity: Identity) -> str:
    """Whose limits a request counts against: a partner's, across all its keys and tokens;
    otherwise the consumer's own (a JWT subject, a key, a client address)."""
    if identity.partner_id:
        return "partner:" + identity.partner_id
    return identity.consumer


def create_gateway(
    settings: GatewaySettings,
    registry: Registry,
    *,
    spec: Callable[[], dict[str, Any]],
    mounted: Sequence[Any] = (),
) -> Gateway:
    config = load_config(settings.gateway_config)
    if settings.service_urls:
        registry.urls.update(parse_service_urls(settings.service_urls))
    return Gateway(config, registry, settings, spec=spec, mounted=mounted)


def settings_from_env() -> GatewaySettings:
    return GatewaySettings.from_env(os.environ)
