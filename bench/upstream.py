"""The upstream both proxies front in the gateway benchmark: a fixed small JSON answer."""

from __future__ import annotations

from typing import Any

_BODY = (
    b'{"sku":"SKU-000001","name":"Organic Hoodie 1",'
    b'"price":{"amount":4699,"currency":"EUR"},"active":true}'
)
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def create() -> Any:
    return app
