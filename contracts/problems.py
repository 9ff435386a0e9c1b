"""RFC 9457 problem details: the one shape of every error on the wire."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "MAX_DETAIL",
    "MAX_ERRORS",
    "MAX_FIELD",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "FieldError",
    "Problem",
    "clipped",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Stable type URIs: PROBLEM_TYPE_BASE + a slug such as "not-found" or "validation".
PROBLEM_TYPE_BASE = "https://retailmesh.dev/problems/"
#: the longest `detail` (and field error message) a problem carries: longer ones are cut
MAX_DETAIL = 2000
#: the most field errors one problem lists, and the longest name of a field
MAX_ERRORS = 100
MAX_FIELD = 200
#: the request path a problem names as its `instance` (the gateway takes no longer target)
MAX_INSTANCE = 8192


def clipped(text: str, limit: int = MAX_DETAIL) -> str:
    """`text` within `limit` characters: cut, with an ellipsis, when it is longer (a
    problem's detail may quote what the client sent)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One offending input: where it was (`source`: body, query, path, header) and why."""

    field: Annotated[str, msgspec.Meta(max_length=MAX_FIELD)]
    message: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL)]
    source: Annotated[str, msgspec.Meta(max_length=16)] | None = None


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A problem details object (RFC 9457 section 3). More members may follow per type."""

    type: Annotated[str, msgspec.Meta(max_length=200)]
    title: Annotated[str, msgspec.Meta(max_length=200)]
    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    detail: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL)] | None = None
    instance: Annotated[str, msgspec.Meta(max_length=MAX_INSTANCE)] | None = None
    request_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    errors: Annotated[list[FieldError], msgspec.Meta(max_length=MAX_ERRORS)] | None = None
