"""An upstream that answers with what it received: for checking what the gateway forwards."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/slow"):
        await asyncio.sleep(5)
    payload = msgspec.json.encode(
        {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
            "query": scope["query_string"].decode(),
            "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
            "body_length": len(body),
            "body_head": body[:64].decode("latin-1"),
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close, x-upstream-secret"),
                (b"x-upstream-secret", b"hop"),
                (b"x-upstream", b"echo"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def create() -> Any:
    """ASGI factory for Granian."""
    return echo
