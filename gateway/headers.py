"""Headers across the gateway: what the upstream sees of a request's, and the client of a
response's. Hop-by-hop headers (RFC 9110 section 7.6.1) are dropped in both directions,
with those a `Connection` header names; `Forwarded` (RFC 7239) and `X-Forwarded-*` describe
the client; the request id and W3C trace context travel on (a malformed `traceparent` is
replaced). Headers the gateway owns are never taken from the client."""

from __future__ import annotations

import re
from typing import Any

from services.kit.requestid import request_id
from services.kit.rng import rng

__all__ = ["response_headers", "upstream_headers"]

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway alone: whatever a client sends under these names is dropped.
_GATEWAY_OWNED = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-prefix",
        b"x-upstream-prefix",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
        b"x-retailmesh-identity",
        b"host",
    }
)
_TRACEPARENT = re.compile(rb"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}\Z")


def _new_traceparent() -> bytes:
    # W3C trace ids need uniqueness, not secrecy: the PRNG, not a system call per request.
    trace, span = rng.getrandbits(128) or 1, rng.getrandbits(64) or 1
    return f"00-{trace:032x}-{span:016x}-01".encode()


def upstream_headers(
    scope: dict[str, Any], mount: str, added: str = ""
) -> list[tuple[bytes, bytes]]:
    """The request headers as the upstream should see them. The client's path is the
    upstream's path with `added` (the version's prefix there) replaced by `mount`: the
    upstream learns both, to name that path in its answers."""
    headers: list[tuple[bytes, bytes]] = []
    connection_named: set[bytes] = set()
    host = b""
    traceparent = b""
    tracestate = b""
    forwarded_for = b""
    for name, value in scope["headers"]:
        if name == b"connection":
            connection_named.update(t.strip().lower() for t in value.split(b","))
        elif name == b"host":
            host = value
        elif name == b"traceparent":
            traceparent = value
        elif name == b"tracestate":
            tracestate = value
        elif name == b"x-forwarded-for":
            forwarded_for = value
    for name, value in scope["headers"]:
        if name in _HOP_BY_HOP or name in _GATEWAY_OWNED or name in connection_named:
            continue
        headers.append((name, value))
    client = scope.get("client")
    client_ip = client[0].encode() if client else b"unknown"
    scheme = scope.get("scheme", "http").encode()
    if not _TRACEPARENT.match(traceparent):
        traceparent, tracestate = _new_traceparent(), b""
    headers.append((b"traceparent", traceparent))
    if tracestate:
        headers.append((b"tracestate", tracestate))
    headers.append((b"x-request-id", request_id(scope).encode()))
    node = b'"[' + client_ip + b']"' if b":" in client_ip else client_ip
    forwarded = b"for=" + node + b";proto=" + scheme
    if host and re.fullmatch(rb"[A-Za-z0-9.:\[\]-]{1,255}", host):
        forwarded += b";host=" + host
        headers.append((b"x-forwarded-host", host))
    headers.append((b"forwarded", forwarded))
    chain = forwarded_for + b", " + client_ip if forwarded_for else client_ip
    headers.append((b"x-forwarded-for", chain))
    headers.append((b"x-forwarded-proto", scheme))
    headers.append((b"x-forwarded-prefix", mount.encode()))
    if added:
        headers.append((b"x-upstream-prefix", added.encode()))
    return headers


def response_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers minus hop-by-hop ones, including those it names in
    its own `Connection` header."""
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b","))
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lname = name.lower()
        if lname not in _HOP_BY_HOP and lname not in named:
            out.append((lname, value))
    return out
