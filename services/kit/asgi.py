"""Calling an ASGI app in-process: one request, and the lifespan protocol.

In the embedded mode a hop between two services is a direct call of the other service's
ASGI app. These are the two pieces that needs; written here because they are small and the
libraries that offer them (httpx's ASGITransport, asgi-lifespan) either buffer differently
or add a dependency for forty lines.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ASGIApp", "LifespanError", "LifespanRunner", "call_asgi"]

ASGIApp = Any  # (scope, receive, send) -> Awaitable[None]; kept loose for Litestar's own types


class LifespanError(RuntimeError):
    """An app reported `lifespan.startup.failed` (its message is the reason)."""


class LifespanRunner:
    """Drives an app's lifespan: `await start()` after which it serves, `await stop()`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._reply()
        if message["type"] == "lifespan.startup.failed":
            raise LifespanError(message.get("message", "startup failed"))

    async def stop(self) -> None:
        if self._task is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._reply()
        await self._task
        self._task = None
        if message["type"] == "lifespan.shutdown.failed":
            raise LifespanError(message.get("message", "shutdown failed"))

    async def _reply(self) -> dict[str, Any]:
        assert self._task is not None
        getter = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        exc = self._task.exception()
        raise LifespanError(f"app exited during lifespan: {exc!r}")


async def call_asgi(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    client: tuple[str, int] = ("127.0.0.1", 0),
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One buffered request to an in-process app: (status, headers, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers or [],
        "client": client,
        "server": ("retailmesh.internal", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a client that stays connected
        raise AssertionError("unreachable")

    status = 500
    response_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, response_headers, b"".join(chunks)
