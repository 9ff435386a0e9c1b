"""An experience API answering with what the service behind it answered: the status and
the body as they are (the contracts are the same), the headers a client acts on, and a
problem's `instance` and `request_id` made this request's own, so the client sees the path
it called and the id it can quote, never the inner service's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Response

from contracts.problems import PROBLEM_MEDIA_TYPE
from services.kit.errors import Unavailable, public_path
from services.kit.registry import ServiceCallError
from services.kit.requestid import request_id

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from litestar import Request

    from services.kit.registry import ServiceResponse

__all__ = ["DownstreamUnavailable", "answered", "relay"]

#: what a client acts on: a replay, when to come back, where a new resource lives
_KEPT = ("idempotent-replayed", "retry-after", "location")


class DownstreamUnavailable(Unavailable):
    slug, title = "downstream-unavailable", "A service behind this API is unavailable"


async def relay(request: Request[Any, Any, Any], call: Awaitable[ServiceResponse]) -> Response[Any]:
    try:
        answer = await call
    except ServiceCallError as exc:
        raise DownstreamUnavailable(
            f"{exc.service} does not answer", headers={"Retry-After": "2"}
        ) from None
    return answered(request, answer)


def answered(request: Request[Any, Any, Any], answer: ServiceResponse) -> Response[Any]:
    """The service's answer as this request's."""
    headers = {k: v for k, v in answer.headers.items() if k.lower() in _KEPT}
    media = answer.headers.get("content-type", "application/json")
    body = answer.body
    if media.startswith(PROBLEM_MEDIA_TYPE):
        problem = msgspec.json.decode(body)
        if isinstance(problem, dict):
            problem["instance"] = public_path(request.scope)
            problem["request_id"] = request_id(request.scope)
            body = msgspec.json.encode(problem)
    return Response(content=body, status_code=answer.status, media_type=media, headers=headers)
