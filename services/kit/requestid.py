"""The request id: accepted from `X-Request-ID` when well-formed, generated otherwise.

The id lives in the ASGI scope so that every layer (the gateway's forwarder, a service's
exception handler, the access log) reads the same value without a context variable.
"""

from __future__ import annotations

import re
import time
from typing import Any

from services.kit.rng import rng

__all__ = ["REQUEST_ID_HEADER", "request_id", "request_started_at"]

REQUEST_ID_HEADER = b"x-request-id"
_SCOPE_KEY = "retailmesh.request_id"
_STARTED_KEY = "retailmesh.started_at"
# Printable, no spaces or separators that could split a log line or a header.
_WELL_FORMED = re.compile(rb"^[A-Za-z0-9._:-]{8,128}\Z")


def request_id(scope: dict[str, Any] | Any) -> str:
    """The request id of this request, decided once and kept in the scope."""
    rid: str | None = scope.get(_SCOPE_KEY)
    if rid is not None:
        return rid
    rid = None
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            if _WELL_FORMED.match(value):
                rid = value.decode("ascii")
            break
    if rid is None:
        # Unique, not secret: the PRNG is enough and costs no system call (uuid4 does).
        rid = f"{rng.getrandbits(128):032x}"
    scope[_SCOPE_KEY] = rid
    scope.setdefault(_STARTED_KEY, time.perf_counter())
    return rid


def request_started_at(scope: dict[str, Any] | Any) -> float:
    started: float = scope.setdefault(_STARTED_KEY, time.perf_counter())
    return started
