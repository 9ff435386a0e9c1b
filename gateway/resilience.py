"""Per-upstream protection: a circuit breaker, a concurrency limit that sheds, a retry budget.

Written here rather than taken from a library: the breaker must count outcomes the
forwarder sees (a 503 from the upstream, a timeout, a refused connection) and expose its
state to the admin API and metrics, which the small breaker libraries (pybreaker,
aiobreaker) do not do for asyncio without wrapping every call in their exceptions.

    closed ──(failure ratio ≥ threshold over the window, enough requests)──► open
    open ──(open_s elapsed)──► half-open: up to `probes` requests go through
    half-open ──(a probe succeeds)──► closed;  ──(a probe fails)──► open
"""

from __future__ import annotations

import time
from collections import deque
from typing import Annotated, Literal

import msgspec

from contracts.bounds import Count
from services.kit.rng import rng

__all__ = ["BreakerState", "CircuitBreaker", "ConcurrencyLimit", "RetryBudget", "backoff_s"]

State = Literal["closed", "open", "half_open"]


class BreakerState(msgspec.Struct, frozen=True, kw_only=True):
    upstream: Annotated[str, msgspec.Meta(max_length=32)]
    state: State
    failures: Count
    requests: Count
    failure_ratio: float
    opened_at: float | None
    retry_after_s: Annotated[int, msgspec.Meta(ge=0, le=86_400)]
    in_flight: Count
    shed: Count
    retries: Count


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_ratio: float = 0.5,
        min_requests: int = 20,
        window_s: float = 10.0,
        open_s: float = 5.0,
        probes: int = 1,
    ) -> None:
        self.name = name
        self.failure_ratio, self.min_requests = failure_ratio, min_requests
        self.window_s, self.open_s, self.probes = window_s, open_s, probes
        self.state: State = "closed"
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._opened_at = 0.0
        self._probing = 0

    def allow(self) -> bool:
        """May a request go to the upstream now? (A half-open admission is a probe.)"""
        if self.state == "closed":
            return True
        if self.state == "open":
            if time.monotonic() - self._opened_at < self.open_s:
                return False
            self.state, self._probing = "half_open", 0
        if self._probing < self.probes:
            self._probing += 1
            return True
        return False

    def release_probe(self) -> None:
        """A half-open admission that never reached the upstream (it was shed)."""
        if self.state == "half_open":
            self._probing = max(0, self._probing - 1)

    def record(self, ok: bool) -> None:
        now = time.monotonic()
        if self.state == "half_open":
            self._probing = max(0, self._probing - 1)
            if ok:
                self.reset()
            else:
                self._open(now)
            return
        self._outcomes.append((now, ok))
        if not ok:
            self._failures += 1
        self._trim(now)
        total = len(self._outcomes)
        if (
            self.state == "closed"
            and total >= self.min_requests
            and self._failures / total >= self.failure_ratio
        ):
            self._open(now)

    def _trim(self, now: float) -> None:
        while self._outcomes and now - self._outcomes[0][0] > self.window_s:
            _, ok = self._outcomes.popleft()
            if not ok:
                self._failures -= 1

    def _open(self, now: float) -> None:
        self.state, self._opened_at, self._probing = "open", now, 0

    def reset(self) -> None:
        self.state = "closed"
        self._outcomes.clear()
        self._failures = 0
        self._probing = 0

    def retry_after_s(self) -> int:
        if self.state != "open":
            return 1
        return max(1, int(self.open_s - (time.monotonic() - self._opened_at) + 0.999))

    def snapshot(self, limit: ConcurrencyLimit, budget: RetryBudget) -> BreakerState:
        self._trim(time.monotonic())
        total = len(self._outcomes)
        return BreakerState(
            upstream=self.name,
            state=self.state,
            failures=self._failures,
            requests=total,
            failure_ratio=round(self._failures / total, 4) if total else 0.0,
            opened_at=time.time() - (time.monotonic() - self._opened_at)
            if self.state != "closed"
            else None,
            retry_after_s=self.retry_after_s(),
            in_flight=limit.in_flight,
            shed=limit.shed,
            retries=budget.spent,
        )


class ConcurrencyLimit:
    """At most `limit` requests in flight to an upstream, and at most `per_consumer` of them
    from one consumer; past either, shed (no queue)."""

    def __init__(self, limit: int, per_consumer: int | None = None) -> None:
        self.limit = limit
        self.per_consumer = per_consumer or max(1, limit // 4)
        self.in_flight = 0
        self.shed = 0
        self._by_consumer: dict[str, int] = {}

    def acquire(self, consumer: str = "") -> Literal["ok", "upstream", "consumer"]:
        """ "ok" (a slot is held), or which limit is reached."""
        if self.in_flight >= self.limit:
            self.shed += 1
            return "upstream"
        held = self._by_consumer.get(consumer, 0)
        if held >= self.per_consumer:
            self.shed += 1
            return "consumer"
        self._by_consumer[consumer] = held + 1
        self.in_flight += 1
        return "ok"

    def release(self, consumer: str = "") -> None:
        self.in_flight -= 1
        held = self._by_consumer.get(consumer, 0) - 1
        if held > 0:
            self._by_consumer[consumer] = held
        else:
            self._by_consumer.pop(consumer, None)


class RetryBudget:
    """Retries may add at most `ratio` of the traffic: each request deposits `ratio`, each
    retry withdraws one (a token bucket capped at `burst`), so a failing upstream is not
    hit with a multiple of its load."""

    def __init__(self, ratio: float, burst: float = 10.0) -> None:
        self.ratio, self.burst = ratio, burst
        self.tokens = burst
        self.spent = 0

    def deposit(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        if self.tokens >= 1:
            self.tokens -= 1
            self.spent += 1
            return True
        return False


def backoff_s(attempt: int, base_s: float, cap_s: float = 1.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
    return rng.uniform(0, min(cap_s, base_s * (2**attempt)))
