"""CORS per route (the Fetch standard's CORS protocol): preflights answered at the gateway,
allowed origins echoed on responses. No credentials mode: browsers send tokens in headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import RouteConfig

__all__ = ["cors_response_headers", "origin_allowed", "preflight_headers", "request_origin"]

_ALLOWED_REQUEST_HEADERS = (
    b"authorization, content-type, x-api-key, x-request-id, idempotency-key, traceparent"
)
_EXPOSED = (
    b"ratelimit, ratelimit-policy, retry-after, x-request-id, deprecation, sunset, link, "
    b"idempotent-replayed"
)


def request_origin(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"origin":
            return value
    return None


def origin_allowed(route: RouteConfig, origin: bytes) -> bool:
    if not route.cors_origins:
        return False
    text = origin.decode("latin-1")
    return "*" in route.cors_origins or text in route.cors_origins


def cors_response_headers(route: RouteConfig, origin: bytes) -> list[tuple[bytes, bytes]]:
    if not origin_allowed(route, origin):
        return []
    value = b"*" if "*" in route.cors_origins else origin
    return [
        (b"access-control-allow-origin", value),
        (b"access-control-expose-headers", _EXPOSED),
        (b"vary", b"Origin"),
    ]


def preflight_headers(route: RouteConfig, origin: bytes) -> list[tuple[bytes, bytes]]:
    return [
        *cors_response_headers(route, origin)[:1],
        (b"access-control-allow-methods", ", ".join(route.methods).encode()),
        (b"access-control-allow-headers", _ALLOWED_REQUEST_HEADERS),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin"),
    ]
