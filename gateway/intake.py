"""What the gateway checks of a request before anything else sees it: the request line and
headers within bounds (414, 431), the body read whole within a size and a time (413, 408,
400 for a broken one), the path as the client wrote it, HEAD as a GET without a body."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any
from urllib.parse import quote, unquote

from gateway.problems import send_problem

__all__ = [
    "CONTROL",
    "MAX_HEADERS_TOTAL",
    "MAX_TARGET_BYTES",
    "content_length",
    "has_body",
    "head_within_limits",
    "headless",
    "raw_rest",
    "whole_body",
]

# Below the HTTP server's own limits (Granian: 100 fields, about 400 KB of head, a 64 KB
# URI), so that the gateway answers a problem+json first; past the server's limits, the
# server answers 414 or 431 itself, with an empty body.
_MAX_HEADERS = 64
MAX_TARGET_BYTES = 8 * 1024
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS_TOTAL = 32 * 1024


async def head_within_limits(scope: dict[str, Any], send: Any) -> bool:
    """The request line and headers within the gateway's bounds, or a 414 or 431 problem."""
    target = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b""))
    if target > MAX_TARGET_BYTES:
        await send_problem(
            scope,
            send,
            414,
            "uri-too-long",
            "URI too long",
            f"the path and query are limited to {MAX_TARGET_BYTES} bytes",
            headers=[(b"connection", b"close")],
        )
        return False
    problem = _header_problem(scope)
    if problem is not None:
        await send_problem(
            scope,
            send,
            431,
            "headers-too-large",
            "Request headers too large",
            problem,
            headers=[(b"connection", b"close")],
        )
        return False
    return True


def _header_problem(scope: dict[str, Any]) -> str | None:
    headers = scope["headers"]
    if len(headers) > _MAX_HEADERS:
        return f"at most {_MAX_HEADERS} request headers"
    total = 0
    for name, value in headers:
        size = len(name) + len(value)
        if size > _MAX_HEADER_BYTES:
            return f"a header field is limited to {_MAX_HEADER_BYTES} bytes"
        total += size
    if total > MAX_HEADERS_TOTAL:
        return f"request headers are limited to {MAX_HEADERS_TOTAL} bytes in all"
    return None


def has_body(scope: dict[str, Any]) -> bool:
    return any(
        (n == b"content-length" and v != b"0") or n == b"transfer-encoding"
        for n, v in scope["headers"]
    )


def headless(send: Any) -> Any:
    """A `send` that passes the head of an answer and drops its body."""

    async def headless(message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            await send(message)
        elif not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b""})

    return headless


class _ClientGone(Exception):
    """The client disconnected before its body was complete."""


async def _read_bounded(receive: Any, limit: int) -> bytes | None:
    """The body, or None past `limit` bytes; `_ClientGone` when the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, original: Any) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await original())

    return receive


_REQUEST_TARGET = re.compile(rb"^[!-~]*\Z")


def raw_rest(scope: dict[str, Any], mount: str, rest: str) -> str:
    """The rest of the path as the client wrote it, percent-encoding kept: what the gateway
    authorized is the decoded form, and the upstream decodes the same bytes to the same form.
    Forwarding the decoded path instead would let `%23` or `%3F` cut it upstream (`/orders/#/ready`
    is routed as `/orders`), a path the gateway never authorized."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and _REQUEST_TARGET.match(raw):
        head = mount.encode()
        if raw.startswith(head) and unquote(raw[len(head) :].decode("ascii")) == rest:
            return raw[len(head) :].decode("ascii")
    # no raw path (or one written otherwise, `%76%31` for `v1`): the decoded form, re-encoded
    return quote(rest, safe="/!$&'()*+,;=:@-._~")


def content_length(scope: dict[str, Any]) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def whole_body(
    scope: dict[str, Any], receive: Any, send: Any, limit: int, timeout_s: float
) -> Any | None:
    """Read the request body whole, within `limit` bytes and the body timeout: a
    `receive` that replays it, or None once a problem (400, 408, 413) is answered."""
    try:
        async with asyncio.timeout(timeout_s):
            body = await _read_bounded(receive, limit)
    except _ClientGone:
        # gone, or a framing the server could not parse (a bad chunk): a 400 for
        # whoever is still there to read it
        with contextlib.suppress(OSError, RuntimeError):
            await send_problem(
                scope,
                send,
                400,
                "bad-body",
                "Incomplete request body",
                "the request body ended before it was complete",
                headers=[(b"connection", b"close")],
            )
        return None
    except TimeoutError:
        await send_problem(
            scope,
            send,
            408,
            "body-timeout",
            "Request body too slow",
            f"the request body must arrive within {timeout_s:g}s",
            headers=[(b"connection", b"close")],
        )
        return None
    if body is None:
        await send_problem(
            scope,
            send,
            413,
            "payload-too-large",
            "Payload too large",
            f"request bodies are limited to {limit} bytes here",
        )
        return None
    return _replay(body, receive)
