"""The gateway: the only door from outside.

`/{version}/{api}/...` goes to the forwarder on a plain ASGI path (no framework routing on
the hot path); everything else (health, the external OpenAPI document, docs, and later the
admin and portal APIs) is a small Litestar app built with the service kit.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import MediaType, Response, get

from gateway.config import GatewayConfig, VersionConfig, load_config
from gateway.forward import Forwarder, Target
from gateway.problems import send_problem
from services.kit.app import Runtime, create_service_app
from services.kit.asgi import LifespanRunner
from services.kit.logs import access_log
from services.kit.registry import Registry, parse_service_urls
from services.kit.requestid import request_id
from services.kit.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from litestar import Litestar

__all__ = ["Gateway", "GatewaySettings", "create_gateway"]

_VERSIONED = re.compile(r"^/(v[0-9]+)/([a-z][a-z0-9-]*)(/.*)?$")
_DOCS_HTML = """<!doctype html>
<html><head><title>retailmesh API</title><meta charset="utf-8"/>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"/></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


class GatewaySettings(Settings, frozen=True, kw_only=True):
    gateway_config: str = "deploy/config/gateway.toml"
    #: mesh mode: `erp=http://127.0.0.1:8101,...`; empty in the embedded mode
    service_urls: Annotated[str, msgspec.Meta(max_length=4096)] = ""


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
        self.routes: dict[tuple[str, str], tuple[Target, VersionConfig]] = {}
        self.apis: dict[str, list[str]] = {}
        for api in config.apis:
            upstream = config.upstreams[api.upstream]
            self.apis[api.name] = [v.version for v in api.versions]
            for version in api.versions:
                target = Target(api.name, upstream, version.prefix, registry)
                self.routes[(version.version, api.name)] = (target, version)
        self._spec_factory = spec
        self._spec: dict[str, Any] | None = None
        self.runtime = Runtime("gateway", settings, registry)
        self.internal = self._internal_app()
        self._lifespans: list[LifespanRunner] = []

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

        return create_service_app(
            "gateway",
            self.settings,
            title="retailmesh gateway",
            description="The gateway's own endpoints.",
            route_handlers=[openapi, docs],
            runtime=self.runtime,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            match = _VERSIONED.match(scope["path"])
            if match is not None:
                await self._route(match, scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self.internal(scope, receive, send)  # type: ignore[arg-type]

    async def _route(
        self, match: re.Match[str], scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        version, api, rest = match.group(1), match.group(2), match.group(3) or ""
        rid = request_id(scope)
        status = 0

        async def respond(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(n, v) for n, v in message.get("headers", ()) if n != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            route = self.routes.get((version, api))
            if route is None:
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
            target, version_config = route
            if version_config.status == "retired":
                await send_problem(
                    scope,
                    respond,
                    410,
                    "version-retired",
                    "API version retired",
                    f"{api} {version} is retired",
                    versions=self.apis[api],
                )
                return
            if _content_length(scope) > self.config.max_body_bytes:
                await send_problem(
                    scope,
                    respond,
                    413,
                    "payload-too-large",
                    "Payload too large",
                    f"request bodies are limited to {self.config.max_body_bytes} bytes",
                )
                return
            session = self.registry.session() if target.base_url else None
            await self.forwarder.forward(
                target, f"/{version}/{api}", rest, scope, receive, respond, session
            )
        finally:
            access_log(
                "gateway",
                scope["method"],
                scope["path"],
                status,
                scope.get("retailmesh.started_at", 0.0),
                rid,
            )

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
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            for runner in reversed(self._lifespans):
                await runner.stop()
            self._lifespans.clear()
            await self.registry.close()
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def _content_length(scope: dict[str, Any]) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


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
