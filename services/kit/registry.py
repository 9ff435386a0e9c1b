"""Services address each other by name; the registry resolves a name to an in-process
ASGI app (embedded mode) or a base URL (mesh mode), and hands out a client for it.

    ServiceCallError
    ├── ServiceTimeout       the call outlasted its timeout
    └── ServiceUnreachable   no connection, or the name is unknown
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlencode

import aiohttp
import msgspec

from services.kit.asgi import ASGIApp, call_asgi
from services.kit.events.memory import MemoryBus

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "AsgiClient",
    "HttpClient",
    "Registry",
    "ServiceCallError",
    "ServiceClient",
    "ServiceResponse",
    "ServiceTimeout",
    "ServiceUnreachable",
    "parse_service_urls",
]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class ServiceCallError(Exception):
    def __init__(self, service: str, message: str) -> None:
        self.service = service
        super().__init__(f"{service}: {message}")


class ServiceTimeout(ServiceCallError):
    pass


class ServiceUnreachable(ServiceCallError):
    pass


class ServiceResponse(msgspec.Struct, frozen=True):
    status: int
    #: names in lower case, in-process and over HTTP alike
    headers: dict[str, str]
    body: bytes

    def decode(self, type: type[T]) -> T:
        return msgspec.json.decode(self.body, type=type)


class ServiceClient(Protocol):
    name: str

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ServiceResponse: ...


def _prepare(json: Any, headers: Mapping[str, str] | None) -> tuple[bytes, dict[str, str]]:
    out = {k.lower(): v for k, v in (headers or {}).items()}
    body = b""
    if json is not None:
        body = _encoder.encode(json)
        out.setdefault("content-type", "application/json")
    return body, out


class AsgiClient:
    """Calls an in-process app; the same contract as over HTTP, minus the socket."""

    def __init__(self, name: str, app: ASGIApp, timeout: float) -> None:
        self.name, self.app, self.timeout = name, app, timeout

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ServiceResponse:
        body, hdrs = _prepare(json, headers)
        hdrs.setdefault("host", self.name)
        hdrs["content-length"] = str(len(body))
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hdrs.items()]
        query = urlencode(params or {}).encode()
        try:
            async with asyncio.timeout(timeout or self.timeout):
                status, rh, rb = await call_asgi(
                    self.app, method, path, query=query, headers=raw, body=body
                )
        except TimeoutError:
            raise ServiceTimeout(self.name, f"{method} {path} timed out") from None
        return ServiceResponse(status, {k.decode(): v.decode("latin-1") for k, v in rh}, rb)


class HttpClient:
    """Calls a service over HTTP with pooled keep-alive connections (aiohttp)."""

    def __init__(
        self, name: str, base_url: str, session: aiohttp.ClientSession, timeout: float
    ) -> None:
        self.name, self.base_url, self.session, self.timeout = (
            name,
            base_url.rstrip("/"),
            session,
            timeout,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ServiceResponse:
        body, hdrs = _prepare(json, headers)
        total = timeout or self.timeout
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                params=dict(params or {}),
                data=body or None,
                headers=hdrs,
                timeout=aiohttp.ClientTimeout(total=total, connect=min(total, 2.0)),
            ) as resp:
                data = await resp.read()
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return ServiceResponse(resp.status, headers, data)
        except TimeoutError:
            raise ServiceTimeout(self.name, f"{method} {path} timed out") from None
        except aiohttp.ClientError as exc:
            raise ServiceUnreachable(self.name, str(exc)) from None


def parse_service_urls(value: str) -> dict[str, str]:
    """`erp=http://127.0.0.1:8101,pos=http://...` → {"erp": "http://127.0.0.1:8101", ...}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"bad service URL entry {item!r}: expected name=http(s)://host:port")
        out[name.strip()] = url.strip()
    return out


class Registry:
    """Name → in-process app or base URL. Apps win over URLs for the same name."""

    def __init__(
        self,
        apps: Mapping[str, ASGIApp] | None = None,
        urls: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.apps: dict[str, ASGIApp] = dict(apps or {})
        self.urls: dict[str, str] = dict(urls or {})
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, ServiceClient] = {}
        self._local_bus: MemoryBus | None = None

    def local_bus(self) -> MemoryBus:
        """The in-memory event bus the in-process services share when there is no Redis."""
        if self._local_bus is None:
            self._local_bus = MemoryBus()
        return self._local_bus

    def names(self) -> Iterable[str]:
        return sorted({*self.apps, *self.urls})

    def resolve(self, name: str) -> ASGIApp | str:
        if name in self.apps:
            return self.apps[name]
        if name in self.urls:
            return self.urls[name]
        raise ServiceUnreachable(name, "no such service in the registry")

    def session(self) -> aiohttp.ClientSession:
        """The one pooled HTTP session (created on first use, inside the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
                auto_decompress=False,
            )
        return self._session

    def client(self, name: str) -> ServiceClient:
        client = self._clients.get(name)
        if client is None:
            target = self.resolve(name)
            if isinstance(target, str):
                client = HttpClient(name, target, self.session(), self.timeout)
            else:
                client = AsgiClient(name, target, self.timeout)
            self._clients[name] = client
        return client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._clients.clear()
