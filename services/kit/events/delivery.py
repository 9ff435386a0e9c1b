"""What another service's answer means for an event being delivered to it.

2xx (or the statuses the caller names) is done; 408, 425, 429 and every 5xx say "not now"
(`RetryLater`, with the answer's `Retry-After`); any other 4xx says the event itself is
wrong (`Undeliverable`): trying again cannot help. A call that got no answer (a timeout,
a refused connection) is "not now" too.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from services.kit.events.bus import RetryLater, Undeliverable

if TYPE_CHECKING:
    from services.kit.registry import ServiceResponse

__all__ = ["NOT_NOW", "retry_after_s", "verdict"]

#: answers that say "the other side cannot take it now", not "this is wrong"
NOT_NOW = frozenset({408, 425, 429})


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """A `Retry-After` value in seconds (delta-seconds or an HTTP date, RFC 9110 §10.2.3),
    bounded to a day; None when absent or unreadable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), 86400.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), 86400.0)


def verdict(response: ServiceResponse, what: str, done: Collection[int] = (200, 201)) -> None:
    """Return when `response` means done; raise `RetryLater` or `Undeliverable` otherwise."""
    status = response.status
    if status in done:
        return
    said = f"{what}: answered {status} {response.body[:300]!r}"
    if status in NOT_NOW or status >= 500:
        raise RetryLater(said, retry_after_s(response.headers))
    raise Undeliverable(said)
