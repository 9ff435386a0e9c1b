"""The gateway's external OpenAPI document: every routed API version under its public path,
plus the gateway's own endpoints, with the errors the gateway itself can answer."""

from __future__ import annotations

import copy
import inspect
import json
import re
from typing import TYPE_CHECKING, Any

from gateway.auth.jwt import ALLOWED_ALGORITHMS, MAX_TOKEN_BYTES
from gateway.intake import MAX_HEADERS_TOTAL, MAX_TARGET_BYTES
from gateway.links import add_links
from gateway.routes import RouteTable

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

__all__ = ["external_spec"]

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "key": [{"ApiKey": []}],
    "jwt": [{"Bearer": []}],
    "either": [{"ApiKey": []}, {"Bearer": []}],
}
_PARAM = re.compile(r"\{[^/}]+\}")
#: what the gateway refuses of any request before it is routed (gateway/intake.py)
_HEAD_ERRORS = {
    "414": f"URI too long: the path and query are up to {MAX_TARGET_BYTES} bytes",
    "431": f"Request headers too large: up to {MAX_HEADERS_TOTAL} bytes in all",
}
_GATEWAY_ERRORS = {
    **_HEAD_ERRORS,
    "413": "Payload too large",
    "429": "Too many requests: the plan's limit is used up (see Retry-After, RateLimit)",
    "503": "Unavailable: the upstream sheds load or its circuit is open",
    "502": "Bad gateway: the upstream failed or could not be reached",
    "504": "Gateway timeout: the upstream did not answer in time",
}


#: The headers the gateway writes on answers (components.headers), by when it writes them.
_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit": {
        "description": "What is left of the plan's tightest window and when it resets "
        '(draft-ietf-httpapi-ratelimit-headers), e.g. `"burst";r=19;t=1`. On every answer '
        "to a request counted against a plan.",
        "schema": {"type": "string", "maxLength": 200},
    },
    "RateLimit-Policy": {
        "description": "The plan's windows: burst per second, per minute and per day, e.g. "
        '`"burst";q=20;w=1, "minute";q=600;w=60`. With `RateLimit`.',
        "schema": {"type": "string", "maxLength": 400},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again (RFC 9110 section 10.2.3).",
        "schema": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 86400},
    },
    "X-Request-Id": {
        "description": "The request's id, in the logs of every service it reached; quote it "
        "to support. A client's own (8 to 128 of `[A-Za-z0-9._:-]`) is kept.",
        "schema": {"type": "string", "maxLength": 128},
    },
    "Deprecation": {
        "description": "When this version was deprecated (RFC 9745), e.g. `@1767225600`.",
        "schema": {"type": "string", "maxLength": 32},
    },
    "Sunset": {
        "description": "When this version stops answering (RFC 8594), an HTTP-date.",
        "schema": {"type": "string", "maxLength": 64},
    },
    "Link": {
        "description": 'The successor version of this path, `rel="successor-version"`.',
        "schema": {"type": "string", "maxLength": 400},
    },
    "Access-Control-Allow-Origin": {
        "description": "CORS: the request's `Origin`, echoed when it is one of the operation's "
        "`x-cors-origins` (`*` where any may call); absent for any other origin, whose browser "
        "then keeps the answer from its page.",
        "schema": {"type": "string", "maxLength": 2048},
    },
    "Access-Control-Expose-Headers": {
        "description": "CORS: the answer's headers a page may read, with "
        "`Access-Control-Allow-Origin`.",
        "schema": {"type": "string", "maxLength": 400},
    },
}


def _header(name: str, *, required: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"$ref": f"#/components/headers/{name}"}
    return {**ref, "required": True} if required else ref


def _document_headers(operation: dict[str, Any]) -> None:
    """The headers of each answer, as the gateway writes them: the request id on every one;
    the plan's use on every answer to a counted request (a success or a client error: the
    gateway counts before it forwards); `Retry-After` on 429 and 503; the version's
    lifecycle on a deprecated version's answers; CORS on the answers of a route browsers may
    call (from the route's checks on, so its refusals too: `Gateway._route`)."""
    for status, response in operation.get("responses", {}).items():
        headers = response.setdefault("headers", {})
        headers["X-Request-Id"] = _header("X-Request-Id")
        if status[0] in "24":
            headers["RateLimit"] = _header("RateLimit")
            headers["RateLimit-Policy"] = _header("RateLimit-Policy")
        if status in ("429", "503"):
            headers["Retry-After"] = _header("Retry-After", required=status == "429")
        if operation.get("deprecated"):
            for name in ("Deprecation", "Sunset", "Link"):
                headers[name] = _header(name)
        if operation.get("x-cors-origins"):
            for name in ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers"):
                headers[name] = _header(name)


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def external_spec(
    config: GatewayConfig, services: dict[str, dict[str, Any]], own: dict[str, Any]
) -> dict[str, Any]:
    """Merge each service's spec (by registry name) under `/{version}/{api}`."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: dict[str, dict[str, Any]] = {}

    def merge_schemas(spec: dict[str, Any], origin: str) -> None:
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"schema {name!r} of {origin} differs from another API's")
            schemas[name] = schema

    for path, item in own.get("paths", {}).items():
        item = copy.deepcopy(item)
        for method, op in item.items():
            if method not in _METHODS:
                continue
            # the gateway's own paths are limited per client address, bodies bounded
            own_errors = {**_HEAD_ERRORS, "429": _GATEWAY_ERRORS["429"]}
            if "requestBody" in op:
                own_errors["408"] = "Request timeout: the body did not arrive in time"
                own_errors["413"] = f"Payload too large: up to {config.max_body_bytes} bytes"
                own_errors["415"] = "Unsupported media type: the body is application/json"
            for status, description in own_errors.items():
                op.setdefault("responses", {}).setdefault(status, _problem_response(description))
        paths[path] = item
    merge_schemas(own, "gateway")
    for api in config.apis:
        service = config.upstreams[api.upstream].service
        spec = services[service]
        merge_schemas(spec, api.name)
        table = RouteTable(api.routes)
        for version in api.versions:
            if version.status == "retired":
                continue
            for path, item in spec.get("paths", {}).items():
                if not path.startswith(version.prefix + "/"):
                    continue
                rest = path[len(version.prefix) :]
                operations = {}
                for method, op in item.items():
                    if method not in _METHODS or "ops" in op.get("tags", []):
                        continue
                    route, _ = table.match(method.upper(), _PARAM.sub("x", rest) or "/")
                    if route is not None:  # only what a route publishes is public
                        operations[method] = (op, route)
                if not operations:
                    continue
                public = f"/{version.version}/{api.name}{path[len(version.prefix) :]}".rstrip("/")
                out: dict[str, Any] = {k: v for k, v in item.items() if k not in _METHODS}
                for method, (source, route) in operations.items():
                    op = copy.deepcopy(source)
                    op["security"] = _SECURITY[route.auth]
                    errors = dict(_GATEWAY_ERRORS)
                    if "requestBody" in op:
                        limit = route.max_body_bytes
                        limit = config.max_body_bytes if limit is None else limit
                        op["x-max-body-bytes"] = limit
                        errors["413"] = f"Payload too large: bodies here are up to {limit} bytes"
                        errors["408"] = (
                            f"Request timeout: the body must arrive within "
                            f"{config.body_timeout_s:g}s"
                        )
                        errors["415"] = "Unsupported media type: the body is application/json"
                    if route.auth != "none":
                        errors["401"] = "Unauthenticated: missing or invalid credentials"
                    if route.scopes:
                        errors["403"] = "Forbidden: missing scope " + " ".join(route.scopes)
                        op["description"] = (
                            op.get("description", "") + f"\n\nScopes: {', '.join(route.scopes)}."
                        ).strip()
                    op["operationId"] = (
                        f"{version.version}_{api.name}_{op.get('operationId', method)}"
                    )
                    op["tags"] = [f"{api.name} {version.version}"]
                    if version.status == "deprecated":
                        op["deprecated"] = True
                    if route.cors_origins:
                        op["x-cors-origins"] = list(route.cors_origins)
                    for status, description in errors.items():
                        op.setdefault("responses", {}).setdefault(
                            status, _problem_response(description)
                        )
                    out[method] = op
                paths[public] = out
            tags[f"{api.name} {version.version}"] = {
                "name": f"{api.name} {version.version}",
                "description": f"{api.title or api.name}, {version.version} ({version.status})",
            }
    if "KeyIn" in schemas:
        schemas["KeyIn"] = _key_rules(config, schemas["KeyIn"])
    add_links(paths)
    for item in paths.values():
        for method, operation in item.items():
            if method in _METHODS:
                _document_headers(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "retailmesh gateway",
            "version": "1.0.0",
            "description": "The public surface of the retailmesh: every routed API version.",
        },
        "servers": [
            {
                "url": "/",
                "x-internal": False,
                "description": "The gateway that serves this document, in whichever environment "
                "it runs (local, staging, production): the mesh's one door",
            }
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "headers": _HEADERS,
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "A partner API key (rm_live_...), from onboarding",
                },
                "Bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT of the retailer's identity provider, verified as "
                    "RFC8725 (JWT best current practices) asks: an allowlist of algorithms "
                    f"({', '.join(ALLOWED_ALGORITHMS)}; never `none` or HS*), checked against "
                    "the token's key before any verification; `exp`, `iss` and `aud` "
                    f"required; up to {MAX_TOKEN_BYTES} bytes. The admin API needs the role "
                    "`admin` in the `roles` claim.",
                },
            },
        },
        "tags": [tags[k] for k in sorted(tags)],
    }


def _key_rules(config: GatewayConfig, schema: dict[str, Any]) -> dict[str, Any]:
    """A key's plan and scopes as the configuration allows them (what
    `GatewayConfig.key_scope_problem` checks): a declared plan; scopes that a key route asks
    for; on a plan with `key_scopes`, only those."""
    schema = copy.deepcopy(schema)
    props = schema["properties"]
    default = props["plan"].get("default")
    if config.plans:
        props["plan"]["enum"] = sorted(config.plans)
    props["scopes"]["items"]["enum"] = sorted(config.key_scopes())
    rules = []
    for name, plan in sorted(config.plans.items()):
        if plan.key_scopes is None:
            continue
        condition: dict[str, Any] = {"properties": {"plan": {"const": name}}}
        if name != default:
            condition["required"] = ["plan"]
        allowed = sorted(set(plan.key_scopes) & config.key_scopes())
        scopes = {"items": {"enum": allowed}} if allowed else {"maxItems": 0}
        rules.append({"if": condition, "then": {"properties": {"scopes": scopes}}})
    if rules:
        schema["allOf"] = rules
    return schema


def dumps(spec: dict[str, Any]) -> str:
    """The committed form of a spec: stable key order and prose in one layout, so a diff
    means a change of ours, not a library's (msgspec 0.23 began to dedent docstrings that
    0.19 kept as written, and a fresh install failed the committed-spec check)."""
    return json.dumps(_prose_cleaned(spec), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


_PROSE = frozenset({"description", "summary"})


def _prose_cleaned(node: Any) -> Any:
    """Every description and summary as `inspect.cleandoc` leaves it: common indentation and
    surrounding blank lines gone, whoever wrote the string and however they indented it."""
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v) if k in _PROSE and isinstance(v, str) else _prose_cleaned(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_prose_cleaned(v) for v in node]
    return node
