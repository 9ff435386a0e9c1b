"""A lean HTTP/1.1 client for bursts: every connection opened before the clock starts, every
request's bytes built before, then all sent at once; each connection reads its answer.

httpx costs about a millisecond of CPU per request on this machine and opens its
connections as it goes: a thousand requests at once reached the gateway spread over 16 s,
which measured the client, not the mesh. wrk cannot send one given request per connection
and stop; this can (asyncio streams, a few dozen microseconds a request).
"""

from __future__ import annotations

import asyncio
import time

import msgspec

__all__ = ["Answer", "burst", "request_bytes"]


class Answer(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]
    body: bytes
    #: from the moment every request was sent... to this answer's end
    ms: float


def request_bytes(
    method: str, host: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split(" ", 2)[1]), headers, body


async def burst(
    host: str, port: int, requests: list[bytes], timeout_s: float = 120
) -> list[Answer]:
    """Send each request on its own connection, all at once; the answers in order."""
    connections = [await asyncio.open_connection(host, port) for _ in requests]
    started = time.perf_counter()

    async def one(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes) -> Answer:
        reader, writer = conn
        writer.write(raw)
        try:
            status, headers, body = await asyncio.wait_for(_read(reader), timeout_s)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            status, headers, body = 0, {}, b""  # no answer (counted as such)
        finally:
            writer.close()
        return Answer(status, headers, body, (time.perf_counter() - started) * 1000)

    return await asyncio.gather(*(one(c, r) for c, r in zip(connections, requests, strict=True)))
