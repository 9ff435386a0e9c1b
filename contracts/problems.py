"""RFC 9457 problem details: the one shape of every error on the wire."""

from __future__ import annotations

import msgspec

__all__ = ["PROBLEM_MEDIA_TYPE", "PROBLEM_TYPE_BASE", "FieldError", "Problem"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Stable type URIs: PROBLEM_TYPE_BASE + a slug such as "not-found" or "validation".
PROBLEM_TYPE_BASE = "https://retailmesh.dev/problems/"


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One offending input: where it was (`source`: body, query, path, header) and why."""

    field: str
    message: str
    source: str | None = None


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A problem details object (RFC 9457 section 3). More members may follow per type."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None
