"""Cacheable reads: an entity tag per representation and conditional GET (RFC 9110 section
13.1.2, `If-None-Match`), so a client or a CDN that has the answer already gets 304 and no
body.

The tag is a digest of the encoded body: two replicas answering the same data give the same
tag, with nothing to share between them. Written by hand: Litestar's `etag` is a fixed value
per route, not one computed from each answer.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Response
from litestar.openapi.datastructures import ResponseSpec

if TYPE_CHECKING:
    from litestar import Request

__all__ = ["NOT_MODIFIED", "cacheable", "entity_tag", "not_modified"]

_encoder = msgspec.json.Encoder()

#: the OpenAPI entry of a 304 answer
NOT_MODIFIED = {
    304: ResponseSpec(
        data_container=None,
        description="Not Modified: the representation matches the If-None-Match tag",
        generate_examples=False,
    )
}


def entity_tag(body: bytes) -> str:
    """A strong tag: the same bytes, the same tag, on any replica."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether `If-None-Match` matches `tag` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")
    return any(
        candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(",")
    )


def cacheable(request: Request[Any, Any, Any], value: Any, max_age_s: int) -> Response[Any]:
    """`value` encoded with its `ETag` and `Cache-Control`, or 304 when the client has it."""
    body = _encoder.encode(value)
    tag = entity_tag(body)
    headers = {"ETag": tag, "Cache-Control": f"public, max-age={max_age_s}"}
    if not_modified(request.headers.get("if-none-match"), tag):
        return Response(content=b"", status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)
