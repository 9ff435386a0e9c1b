"""The gateway's HTTP/1.1 client to its upstreams: pooled keep-alive connections on asyncio
protocols, responses parsed by httptools (the C parser uvicorn uses).

Written here because the hot path needs it: measured on this machine, a minimal proxy
forwarded about 35,000 req/s with this design against 12,900 with aiohttp's client, same
upstream, same server. It does only what the forwarder needs: one request at a time per
connection, bodies with a known length (the gateway buffers chunked request bodies), any
response framing (length, chunked, until close), streaming of large responses with
back-pressure, connect and total timeouts. Service-to-service calls keep using aiohttp.

    UpstreamError
    ├── UpstreamConnectError   no connection could be made (or it broke before a byte came back)
    └── UpstreamProtocolError  the upstream answered something that is not HTTP/1.1
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = [
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamProtocolError",
    "UpstreamResponse",
]

_HIGH_WATER = 256 * 1024


class UpstreamError(Exception):
    pass


class UpstreamConnectError(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    pass


class UpstreamResponse:
    """Status and headers at once; the body as it arrives."""

    __slots__ = ("_conn", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._conn, self.status, self.headers = conn, status, headers

    @property
    def content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def close(self) -> None:
        """Give up on the rest of the body: the connection cannot be reused."""
        self._conn.abandon()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._conn.body():
            yield chunk


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser: Any = None
        self.used = False
        self._head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._wake: asyncio.Event = asyncio.Event()
        self._head_only = False
        self._keep_alive = False
        self._got_bytes = False
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self.parser is None:
            self._fail(UpstreamProtocolError("bytes from the upstream with no request out"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._head is not None and not self._head.done():
            self._fail(UpstreamConnectError("the upstream closed the connection"))
        elif not self._done and self.parser is not None:
            # A response framed by the end of the connection ends here.
            self._done = True
            self._wake.set()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        assert self._head is not None
        # llhttp answers this only while the message is being parsed, not after it
        self._keep_alive = bool(self.parser.should_keep_alive())
        if not self._head.done():
            self._head.set_result((self.parser.get_status_code(), self._headers))
        if self._head_only:
            self._complete()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and self.transport is not None and not self._paused:
            self.transport.pause_reading()
            self._paused = True
        self._wake.set()

    def on_message_complete(self) -> None:
        self._complete()

    # the exchange

    def _complete(self) -> None:
        if not self._done:
            self._done = True
            self._disarm()
            self._wake.set()

    def _fail(self, exc: BaseException) -> None:
        self._disarm()
        self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._done = True
        self._wake.set()
        if self.transport is not None:
            self.transport.close()

    def _expire(self) -> None:
        self._fail(TimeoutError("the upstream did not answer in time"))

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def send(self, method: bytes, head: bytes, body: Any, timeout: float) -> UpstreamResponse:
        assert self.transport is not None
        # One timer handle per exchange: cheaper than asyncio.timeout() on the hot path.
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expire)
        self.parser = httptools.HttpResponseParser(self)
        self._head = asyncio.get_running_loop().create_future()
        self._headers, self._chunks, self._buffered = [], [], 0
        self._done, self._error, self._got_bytes = False, None, False
        self._keep_alive = False
        self._head_only = method == b"HEAD"
        self._wake.clear()
        self.transport.write(head)
        if body is not None:
            if isinstance(body, bytes):
                self.transport.write(body)
            else:
                async for chunk in body:
                    if self.transport is None:
                        break
                    self.transport.write(chunk)
        status, headers = await self._head
        return UpstreamResponse(self, status, headers)

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunks, self._chunks, self._buffered = self._chunks, [], 0
                if self._paused and self.transport is not None:
                    self.transport.resume_reading()
                    self._paused = False
                for chunk in chunks:
                    yield chunk
                continue
            if self._done:
                break
            self._wake.clear()
            await self._wake.wait()
        if self._error is not None:
            raise self._error
        self.pool.release(self)

    def abandon(self) -> None:
        self._disarm()
        if not self._done and self.transport is not None:
            self.transport.close()
            self.transport = None

    def reusable(self) -> bool:
        return (
            self.transport is not None and self._done and self._error is None and self._keep_alive
        )


class UpstreamPool:
    """Keep-alive connections to one upstream (scheme://host:port)."""

    def __init__(self, base_url: str, *, max_idle: int = 256) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self.host_header = (parts.netloc or self.host).encode()
        self.max_idle = max_idle
        self._idle: list[_Connection] = []

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamConnectError(
                f"cannot connect to {self.host}:{self.port}: {exc}"
            ) from None
        return conn

    def release(self, conn: _Connection) -> None:
        if conn.reusable() and len(self._idle) < self.max_idle:
            conn.used = True
            self._idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: Any,
        *,
        connect_timeout: float,
        timeout: float,
    ) -> UpstreamResponse:
        """Send a request; `headers` must carry the framing (content-length) of `body`."""
        m = method.encode()
        lines = [m, b" ", target.encode(), b" HTTP/1.1\r\nhost: ", self.host_header, b"\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        while self._idle:
            conn = self._idle.pop()
            if conn.transport is None or conn.transport.is_closing():
                continue
            try:
                return await conn.send(m, head, body, timeout)
            except UpstreamConnectError:
                # A kept-alive connection the upstream had closed: nothing of this request
                # was processed (no byte came back), so another connection may take it.
                if conn._got_bytes or not isinstance(body, (bytes, type(None))):
                    raise
            except BaseException:
                conn.abandon()  # timed out or cancelled mid-exchange: not reusable
                raise
        conn = await self._connect(connect_timeout)
        try:
            return await conn.send(m, head, body, timeout)
        except BaseException:
            conn.abandon()
            raise

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
