"""Problem+json answers written straight to ASGI, for the gateway's own hot path."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.problems import MAX_INSTANCE, PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, clipped
from services.kit.requestid import request_id

__all__ = ["send_problem"]

_encoder = msgspec.json.Encoder()


async def send_problem(
    scope: dict[str, Any],
    send: Any,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> None:
    body = _encoder.encode(
        {
            **extra,  # first: extension members never overwrite the standard ones
            "type": PROBLEM_TYPE_BASE + slug,
            "title": title,
            "status": status,
            "detail": clipped(detail),
            "instance": clipped(scope.get("path") or "", MAX_INSTANCE),
            "request_id": request_id(scope),
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id(scope).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
