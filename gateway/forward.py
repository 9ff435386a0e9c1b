"""Forwarding a request to its upstream: in-process (an ASGI call) or over HTTP (pooled).

Bodies stream both ways; headers are as `gateway/headers.py` makes them. The upstream is
chosen from the route table only, never from anything the client sends. Retries, the
breaker, the retry budget and shedding are decided here (`gateway/resilience.py` keeps
their state).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from gateway.headers import response_headers, upstream_headers
from gateway.intake import has_body
from gateway.problems import send_problem
from gateway.resilience import (
    BreakerState,
    CircuitBreaker,
    ConcurrencyLimit,
    RetryBudget,
    backoff_s,
)
from gateway.upstream import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
)
from services.kit.requestid import request_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gateway.config import UpstreamConfig
    from services.kit.registry import Registry

__all__ = ["Forwarder", "Guard", "Target"]

log = logging.getLogger("retailmesh.gateway")


class Target:
    """Where one route's requests go: the upstream service and a path prefix there."""

    __slots__ = ("app", "base_url", "guard", "host", "name", "pool", "prefix", "upstream")

    def __init__(
        self,
        name: str,
        upstream: UpstreamConfig,
        prefix: str,
        registry: Registry,
        guard: Guard,
        pools: dict[str, UpstreamPool],
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.guard = guard
        self.prefix = prefix
        self.host = upstream.service.encode()
        resolved = registry.resolve(upstream.service)
        self.app: Any = None if isinstance(resolved, str) else resolved
        self.base_url: str | None = resolved.rstrip("/") if isinstance(resolved, str) else None
        self.pool = (
            pools.setdefault(self.base_url, UpstreamPool(self.base_url)) if self.base_url else None
        )


class Guard:
    """One upstream's breaker, concurrency limit and retry budget (shared by its routes)."""

    def __init__(self, name: str, upstream: UpstreamConfig) -> None:
        self.breaker = CircuitBreaker(
            name,
            failure_ratio=upstream.breaker_failure_ratio,
            min_requests=upstream.breaker_min_requests,
            window_s=upstream.breaker_window_s,
            open_s=upstream.breaker_open_s,
            probes=upstream.breaker_probes,
        )
        self.limit = ConcurrencyLimit(
            upstream.max_concurrency, upstream.max_concurrency_per_consumer
        )
        self.budget = RetryBudget(upstream.retry_budget_ratio)

    def snapshot(self) -> BreakerState:
        return self.breaker.snapshot(self.limit, self.budget)


_BUFFER_UP_TO = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_RETRYABLE = frozenset({502, 503, 504})


def _deliberate(status: int, headers: Any) -> bool:
    """A 503 with `Retry-After` is the upstream's own answer ("order in progress, ask again
    then"), not a failure: passed to the client as it is, never retried here, never counted
    by the breaker (which closed every orders route on a service saying so)."""
    return status == 503 and any(n.lower() == b"retry-after" for n, _ in headers)


def _failed(status: int, headers: Any) -> bool:
    """What the breaker counts of an answer: a 5xx the upstream did not mean."""
    return status >= 500 and not _deliberate(status, headers)


class _Unjudged:
    """The breaker as an operator's request sees it: always open to it, told nothing."""

    def allow(self) -> bool:
        return True

    def release_probe(self) -> None:
        pass

    def record(self, ok: bool) -> None:
        pass


class _Retry(Exception):
    """This attempt failed in a way worth another; nothing was sent to the client. `held`
    is the upstream's answer, kept (when small) so that a retry refused afterwards passes
    on what the upstream said rather than a 502 of ours; `timed_out` that it said nothing
    in time."""

    def __init__(
        self,
        held: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None,
        *,
        timed_out: bool = False,
    ) -> None:
        super().__init__()
        self.held, self.timed_out = held, timed_out


def _empty_body_receive(original: Any) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return dict(await original())

    return receive


class Forwarder:
    async def forward(
        self,
        target: Target,
        mount: str,
        raw_rest: str,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        *,
        consumer: str = "",
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
        operator: bool = False,
    ) -> None:
        """Send the request on; `raw_rest` is the path after the mount point as the client
        wrote it (percent-encoded), which the upstream decodes as the gateway did. An
        operator's request passes an open breaker and is not counted by it: the repair of
        a failing service (a reservation rebuild, a replay) must reach it."""
        guard = target.guard
        breaker = _Unjudged() if operator else guard.breaker
        if not breaker.allow():
            await send_problem(
                scope,
                send,
                503,
                "circuit-open",
                "Upstream unavailable",
                f"{target.name} is failing; the gateway stops sending it requests for a while",
                headers=[(b"retry-after", str(guard.breaker.retry_after_s()).encode())],
            )
            return
        slot = guard.limit.acquire(consumer)
        if slot != "ok":
            breaker.release_probe()
            if slot == "consumer":
                await send_problem(
                    scope,
                    send,
                    429,
                    "too-many-in-flight",
                    "Too many requests in flight",
                    f"you have {guard.limit.per_consumer} requests in flight to {target.name}; "
                    "wait for their answers",
                    headers=[(b"retry-after", b"1")],
                )
                return
            await send_problem(
                scope,
                send,
                503,
                "overloaded",
                "Upstream overloaded",
                f"{target.name} has {guard.limit.limit} requests in flight; try again shortly",
                headers=[(b"retry-after", b"1")],
            )
            return
        path = target.prefix + (raw_rest or "/")
        headers = upstream_headers(scope, mount, target.prefix)
        headers += extra_headers
        body_sent = has_body(scope)
        retries = target.upstream.retries if scope["method"] in _IDEMPOTENT and not body_sent else 0
        guard.budget.deposit()
        try:
            for attempt in range(retries + 1):
                may_retry = attempt < retries and guard.budget.tokens >= 1
                attempt_receive = receive if attempt == 0 else _empty_body_receive(receive)
                try:
                    if target.app is not None:
                        ok = await self._in_process(
                            target, path, headers, scope, attempt_receive, send, may_retry
                        )
                    else:
                        ok = await self._over_http(
                            target,
                            path,
                            headers,
                            scope,
                            attempt_receive,
                            send,
                            body_sent,
                            may_retry,
                        )
                except _Retry as held:
                    breaker.record(False)
                    if not guard.budget.withdraw() or not breaker.allow():
                        # the budget or the breaker changed its mind since: answer now,
                        # with what the upstream said when we have it
                        await self._answer_held(held, target, scope, send)
                        return
                    await asyncio.sleep(backoff_s(attempt, target.upstream.retry_backoff_ms / 1000))
                    continue
                breaker.record(ok)
                return
        finally:
            guard.limit.release(consumer)

    async def _in_process(
        self,
        target: Target,
        path: str,
        headers: list[tuple[bytes, bytes]],
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        may_retry: bool,
    ) -> bool:
        inner = dict(scope)
        inner["path"] = unquote(path)  # what an ASGI server hands an app: decoded, raw beside
        inner["raw_path"] = path.encode()
        inner["root_path"] = ""
        inner["headers"] = [(b"host", target.host), *headers]
        inner["server"] = (target.upstream.service, 80)
        inner["state"] = {}
        started = False
        swallowed = False
        failed = False
        status = 0
        held_headers: list[tuple[bytes, bytes]] = []
        held_body: list[bytes] = []

        async def relay(message: dict[str, Any]) -> None:
            nonlocal started, swallowed, status, failed
            if swallowed:
                held_body.append(message.get("body", b""))
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                upstream_headers = message.get("headers", ())
                if may_retry and status in _RETRYABLE and not _deliberate(status, upstream_headers):
                    swallowed = True
                    held_headers.extend(response_headers(upstream_headers))
                    return
                failed = _failed(status, upstream_headers)
                started = True
                message = {
                    "type": "http.response.start",
                    "status": status,
                    "headers": response_headers(message.get("headers", ())),
                }
            await send(message)

        try:
            async with asyncio.timeout(target.upstream.timeout_s):
                await target.app(inner, receive, relay)
        except TimeoutError:
            if started:
                return False
            if may_retry:
                raise _Retry(timed_out=True) from None
            await self._timeout(target, scope, send)
            return False
        except Exception:
            log.exception(
                "upstream %s failed", target.name, extra={"request_id": request_id(scope)}
            )
            if started:
                return False
            if may_retry:
                raise _Retry from None
            await self._bad_gateway(target, scope, send)
            return False
        if swallowed:
            body = b"".join(held_body)
            raise _Retry((status, held_headers, body) if len(body) <= _BUFFER_UP_TO else None)
        return not failed

    async def _over_http(
        self,
        target: Target,
        path: str,
        headers: list[tuple[bytes, bytes]],
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        has_body: bool,
        may_retry: bool,
    ) -> bool:
        assert target.pool is not None
        query = scope.get("query_string", b"")
        url = path + "?" + query.decode("latin-1") if query else path
        body: Any = None
        if has_body:
            if any(n == b"content-length" for n, _ in headers):
                body = _body(receive)
            else:  # chunked from the client (already bounded by the gateway): send a length
                body = b"".join([chunk async for chunk in _body(receive)])
                headers = [*headers, (b"content-length", str(len(body)).encode())]
        started = False
        response: UpstreamResponse | None = None
        try:
            # the pool times the exchange itself (connect, then the whole answer)
            response = await target.pool.request(
                scope["method"],
                url,
                headers,
                body,
                connect_timeout=target.upstream.connect_timeout_s,
                timeout=target.upstream.timeout_s,
            )
            deliberate = _deliberate(response.status, response.headers)
            if may_retry and response.status in _RETRYABLE and not deliberate:
                data = await response.read()
                raise _Retry((response.status, response_headers(response.headers), data))
            ok = not _failed(response.status, response.headers)
            start = {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers(response.headers),
            }
            length = response.content_length
            if length is not None and length <= _BUFFER_UP_TO:
                # Small answers (most of them) in one piece: two sends, not more.
                data = await response.read()
                await send(start)
                started = True
                await send({"type": "http.response.body", "body": data})
                return ok
            await send(start)
            started = True
            async for chunk in response.iter_chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return ok
        except TimeoutError:
            if response is not None:
                response.close()
            if started:
                return False
            if may_retry:
                raise _Retry(timed_out=True) from None
            await self._timeout(target, scope, send)
            return False
        except UpstreamError as exc:
            log.warning(
                "upstream %s failed: %s", target.name, exc, extra={"request_id": request_id(scope)}
            )
            if started:
                return False
            if may_retry:
                raise _Retry from None
            await self._bad_gateway(target, scope, send)
            return False
        except BaseException:
            if response is not None:
                response.close()
            raise

    async def _answer_held(
        self, retry: _Retry, target: Target, scope: dict[str, Any], send: Any
    ) -> None:
        """The answer for a failed attempt that will not be retried after all."""
        if retry.held is not None:
            status, headers, body = retry.held
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif retry.timed_out:
            await self._timeout(target, scope, send)
        else:
            await self._bad_gateway(target, scope, send)

    @staticmethod
    async def _timeout(target: Target, scope: dict[str, Any], send: Any) -> None:
        await send_problem(
            scope,
            send,
            504,
            "upstream-timeout",
            "Upstream timed out",
            f"{target.name} did not answer within {target.upstream.timeout_s:g}s",
        )

    @staticmethod
    async def _bad_gateway(target: Target, scope: dict[str, Any], send: Any) -> None:
        await send_problem(
            scope,
            send,
            502,
            "bad-gateway",
            "Bad gateway",
            f"{target.name} could not be reached or failed to answer",
        )


async def _body(receive: Any) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise UpstreamConnectError("the client went away mid-body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
