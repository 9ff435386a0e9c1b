"""The gateway's Prometheus metrics.

The hot path only bumps plain counters (a dict increment, no label lookup, no lock: one
event loop owns them); a collector turns them into metric families when scraped.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gateway.app import Gateway

__all__ = ["GatewayMetrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATES = {"closed": 0, "half_open": 1, "open": 2}


class GatewayMetrics:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(_BUCKETS) + 1))
        self.latency_sum: defaultdict[str, float] = defaultdict(float)
        self.refusals: defaultdict[str, int] = defaultdict(int)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]

    def observe(self, api: str, version: str, status: int, seconds: float) -> None:
        self.requests[(api, version, status)] += 1
        self.latency[api][bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.latency_sum[api] += seconds

    def refused(self, reason: str) -> None:
        """A request the gateway answered itself: unauthenticated, forbidden, rate-limited."""
        self.refusals[reason] += 1

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[object]:
        requests = CounterMetricFamily(
            "retailmesh_gateway_requests",
            "Requests by API, version and status",
            labels=["api", "version", "status"],
        )
        for (api, version, status), n in sorted(self.requests.items()):
            requests.add_metric([api, version, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "retailmesh_gateway_request_duration_seconds",
            "Time at the gateway, by API",
            labels=["api"],
        )
        for api, counts in sorted(self.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            latency.add_metric([api], buckets, self.latency_sum[api])
        yield latency
        refusals = CounterMetricFamily(
            "retailmesh_gateway_refusals",
            "Requests the gateway refused itself, by reason",
            labels=["reason"],
        )
        for reason, n in sorted(self.refusals.items()):
            refusals.add_metric([reason], n)
        yield refusals
        state = GaugeMetricFamily(
            "retailmesh_gateway_breaker_state",
            "0 closed, 1 half-open, 2 open",
            labels=["upstream"],
        )
        in_flight = GaugeMetricFamily(
            "retailmesh_gateway_upstream_in_flight", "Requests in flight", labels=["upstream"]
        )
        shed = CounterMetricFamily(
            "retailmesh_gateway_upstream_shed",
            "Requests shed past the concurrency cap",
            labels=["upstream"],
        )
        retries = CounterMetricFamily(
            "retailmesh_gateway_upstream_retries", "Retries sent", labels=["upstream"]
        )
        for name, guard in sorted(self.gateway.guards.items()):
            snap = guard.snapshot()
            state.add_metric([name], _STATES[snap.state])
            in_flight.add_metric([name], snap.in_flight)
            shed.add_metric([name], snap.shed)
            retries.add_metric([name], snap.retries)
        yield from (state, in_flight, shed, retries)
        limiter = self.gateway.limiter
        if limiter is not None:
            yield GaugeMetricFamily(
                "retailmesh_gateway_limits_shared",
                "1 when limits are counted in Redis, 0 when each replica counts alone",
                value=1 if limiter.shared else 0,
            )
            yield CounterMetricFamily(
                "retailmesh_gateway_limiter_round_trips",
                "Redis calls made for rate-limit decisions (one per batch)",
                value=limiter.round_trips,
            )
