"""Finding Redis: REDIS_URL, else a server on 127.0.0.1:6379, else none (in-memory)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

if TYPE_CHECKING:
    from services.kit.settings import Settings

__all__ = ["DEFAULT_REDIS_URL", "RedisUnavailable", "connect_redis"]

log = logging.getLogger("retailmesh.redis")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(RuntimeError):
    """Redis was asked for (REDIS_URL or REDIS_MODE=required) and does not answer."""


def _client(url: str, socket_timeout: float = 5.0) -> Redis:
    # A bounded pool that makes callers wait for a connection: under a burst (a flash
    # sale), a plain pool fails past max_connections where waiting a millisecond would do.
    # A pooled connection that a Redis restart closed fails its next command: that command
    # is sent once more on a fresh connection, so a restart costs no request an error
    # (the commands sent are idempotent or counted, a retried count errs on refusing).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=5.0,
        socket_connect_timeout=1.0,
        socket_timeout=socket_timeout,
        health_check_interval=15,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[ConnectionError],
    )
    return Redis.from_pool(pool)  # owns the pool: aclose() closes it


async def connect_redis(settings: Settings, *, for_workers: bool = False) -> Redis | None:
    """A connected client, or None when the settings allow in-memory stand-ins. Request
    paths get `redis_timeout_s` per command, so a hung Redis costs a request that long and
    not more; workers (whose stream reads block for a second by design) get 5 s."""
    if settings.redis_mode == "off":
        log.info("redis off: in-memory backends stand in", extra={"redis": "off"})
        return None
    explicit = settings.redis_url is not None
    url = settings.redis_url or DEFAULT_REDIS_URL
    client = _client(url, 5.0 if for_workers else settings.redis_timeout_s)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        if explicit or settings.redis_mode == "required":
            raise RedisUnavailable(f"Redis at {_safe(url)} does not answer: {exc}") from None
        log.warning(
            "no Redis answers on %s: in-memory backends stand in (single process only)",
            _safe(url),
        )
        return None
    log.info("using Redis at %s", _safe(url))
    return client


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
