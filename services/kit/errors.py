"""Domain errors and their one mapping to RFC 9457 problem details.

    ServiceError                 500 internal
    ├── BadRequest               400 bad-request
    │   └── Invalid              400 validation (a rule the published schema states, checked
    │                                 in code: it depends on the configuration)
    ├── Forbidden                403 forbidden
    ├── NotFound                 404 not-found
    ├── Conflict                 409 conflict
    ├── Unprocessable            422 unprocessable
    ├── TooManyRequests          429 rate-limited
    └── Unavailable              503 unavailable

Each service derives its own base (`ErpError`) and specific errors from these; handlers and
logic raise them, and `problem_details_plugin()` turns every exception (these, Litestar's
HTTP exceptions including validation, and anything unexpected) into problem+json.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.response import Response
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from contracts.problem_types import by_slug
from contracts.problems import (
    MAX_DETAIL,
    MAX_ERRORS,
    MAX_FIELD,
    MAX_INSTANCE,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_BASE,
    FieldError,
    Problem,
    clipped,
)
from services.kit.requestid import request_id

if TYPE_CHECKING:
    from litestar import Request

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "NotReady",
    "ServiceError",
    "TooManyRequests",
    "Unavailable",
    "Unprocessable",
    "problem_details_plugin",
    "problem_responses",
    "problem_title",
    "problem_type",
    "public_path",
]

log = logging.getLogger("retailmesh.errors")


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_BASE + slug


def problem_title(slug: str) -> str:
    """The one title of a type (RFC 9457 section 3.1.3: it does not change from occurrence
    to occurrence), from the catalogue."""
    entry = by_slug(slug)
    return entry.title if entry is not None else "Error"


class ServiceError(Exception):
    """Base of every domain error; subclasses set `status`, `slug` and `title`."""

    status: int = 500
    slug: str = "internal"
    title: str = "Internal error"

    def __init__(
        self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail or self.title)

    def problem(self) -> Problem:
        """This error as a problem object, for an answer that carries several (a batch's
        results); an error answered alone goes through `problem_details_plugin`."""
        errors = self.extra.get("errors")
        return Problem(
            type=problem_type(self.slug),
            title=self.title,
            status=self.status,
            detail=clipped(self.detail or self.title),
            errors=(
                msgspec.convert([_bounded(e) for e in errors[:MAX_ERRORS]], list[FieldError])
                if errors
                else None
            ),
        )


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class Invalid(BadRequest):
    """Input the published schema refuses, found invalid by code rather than by the decoder
    (the schema is built from the configuration): the same answer as a decoder's refusal."""

    slug, title = "validation", "Invalid request"


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ServiceError):
    status, slug, title = 409, "conflict", "Conflict"


class Unprocessable(ServiceError):
    status, slug, title = 422, "unprocessable", "Unprocessable request"


class TooManyRequests(ServiceError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class Unavailable(ServiceError):
    status, slug, title = 503, "unavailable", "Service unavailable"


class NotReady(Unavailable):
    slug, title = "not-ready", "Not ready"


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    408: "body-timeout",
    409: "conflict",
    413: "payload-too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
    429: "rate-limited",
    431: "headers-too-large",
    500: "internal",
    502: "bad-gateway",
    503: "unavailable",
    504: "upstream-timeout",
}


class _Problem(ProblemDetailsException):
    """Litestar's problem details, completed with the request path and id. A problem that
    stands for a failure of ours carries what to log (`log_as`), and is logged where the
    request is known, so that every logged error carries its request id."""

    log_as: tuple[int, str, BaseException | None] | None = None

    def to_response(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return _respond(request, self)


def _logged(
    problem: _Problem, level: int, message: str, exc: BaseException | None = None
) -> _Problem:
    problem.log_as = (level, message, exc)
    return problem


def _from_service_error(exc: ServiceError) -> ProblemDetailsException:
    return _Problem(
        status_code=exc.status,
        type_=problem_type(exc.slug),
        title=exc.title,
        detail=exc.detail or exc.title,
        headers=exc.headers,
        extra=exc.extra,
    )


#: a pattern as msgspec quotes it, ending with the code's `\Z` (contracts/bounds.py)
_CODE_PATTERN_END = re.compile(r"\\\\Z'")


def _published(message: str) -> str:
    r"""A field error names the pattern as the spec publishes it: `$`, not the code's `\Z`."""
    return _CODE_PATTERN_END.sub("$'", message)


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) or (status == 400 and isinstance(exc.extra, list)):
        slug, title = "validation", "Invalid request"
        extra["errors"] = [
            {
                "field": str(item.get("key") or ""),
                "message": _published(str(item.get("message") or "")),
                "source": _source(item.get("source")),
            }
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        ]
        missing = _MISSING.match(str(exc.detail or ""))
        if not extra["errors"] and missing:
            # Litestar names a missing parameter only in its message: make it a field error.
            extra["errors"] = [{"field": missing[2], "message": "required", "source": missing[1]}]
    else:
        # a status without its own type takes its class's: every type is in the catalogue
        slug = _HTTP_SLUGS.get(status) or ("internal" if status >= 500 else "bad-request")
        title = problem_title(slug)
    detail = exc.detail if exc.detail and exc.detail != phrase else title
    if slug == "validation" and detail.startswith("Validation failed for "):
        # Litestar names the service's own path there; the client called another (its
        # `instance` names that one)
        detail = "Validation failed: the errors name each field"
    problem = _Problem(
        status_code=status,
        type_=problem_type(slug),
        title=title,
        detail=phrase if status >= 500 else detail,
        headers=exc.headers,
        extra=extra,
    )
    if status >= 500:
        # Litestar's own 5xx details may carry internals; say nothing more than the phrase.
        return _logged(problem, logging.ERROR, f"server error {status}: {exc.detail}", exc)
    return problem


_MISSING = re.compile(r"^Missing required (\w+) parameter '([^']+)'")


def _source(value: Any) -> str | None:
    # Litestar reports where a parameter came from as an enum (ParamType.PATH) or a string.
    if value is None or value == "":
        return None
    return str(getattr(value, "value", value))


def _store_unavailable(detail: str) -> _Problem:
    return _Problem(
        status_code=503,
        type_=problem_type("store-unavailable"),
        title=problem_title("store-unavailable"),
        detail=detail,
        headers={"Retry-After": "1"},
    )


def _from_store_error(exc: RedisError) -> ProblemDetailsException:
    problem = _store_unavailable("a store the service needs did not answer; try again shortly")
    return _logged(problem, logging.WARNING, f"a store did not answer: {exc}")


def _from_database_error(exc: DBAPIError | PoolTimeout) -> ProblemDetailsException:
    # A full disk, a killed session, a database restarting, no connection free in time
    # (operational and interface errors; never an integrity error, which retrying would
    # not mend): the request may succeed later, and every write here is one transaction,
    # so nothing half-done stays.
    problem = _store_unavailable("the service's database did not answer; try again shortly")
    cause = type(getattr(exc, "orig", None) or exc).__name__
    return _logged(problem, logging.ERROR, f"database error: {cause}", exc)


def _from_timeout(exc: TimeoutError) -> ProblemDetailsException:
    # Something this request needed did not answer within its bound (a database command,
    # a lock): not the client's fault, and likely to pass.
    problem = _store_unavailable("a store the service needs did not answer in time; try again")
    return _logged(problem, logging.WARNING, "timed out", exc)


def _from_unexpected(exc: Exception) -> ProblemDetailsException:
    # The stack trace goes to the log, tied to the request id; never to the client.
    problem = _Problem(
        status_code=500,
        type_=problem_type("internal"),
        title="Internal error",
        detail="The service failed to handle the request; quote the request id to support.",
    )
    return _logged(problem, logging.ERROR, "unhandled error", exc)


def _respond(request: Request[Any, Any, Any], exc: ProblemDetailsException) -> Response[Any]:
    log_as = getattr(exc, "log_as", None)
    if log_as is not None:
        level, message, cause = log_as
        log.log(
            level,
            message,
            exc_info=cause,
            extra={"request_id": request_id(request.scope), "path": request.scope.get("path")},
        )
    # Extension members never overwrite the standard ones (RFC 9457 section 3.2): an error
    # that names a field `status` does not change the problem's HTTP status.
    body: dict[str, Any] = dict(exc.extra) if isinstance(exc.extra, dict) else {}
    if isinstance(body.get("errors"), list):
        body["errors"] = [_bounded(error) for error in body["errors"][:MAX_ERRORS]]
    # within the published bounds (contracts/problems.py), whatever a detail quotes
    body.update(
        type=exc.type_ or "about:blank",
        title=exc.title or "Error",
        status=exc.status_code,
        detail=clipped(exc.detail),
        instance=clipped(public_path(request.scope), MAX_INSTANCE),
        request_id=request_id(request.scope),
    )
    return Response(
        body, status_code=exc.status_code, headers=exc.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _bounded(error: Any) -> Any:
    if not isinstance(error, dict):
        return error
    out = dict(error)
    for key, limit in (("field", MAX_FIELD), ("message", MAX_DETAIL)):
        if isinstance(out.get(key), str):
            out[key] = clipped(out[key], limit)
    return out


_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+\Z")


def public_path(scope: Any) -> str:
    """The path the client used. Behind the gateway it starts with the gateway's mount
    point (`x-forwarded-prefix`) in place of the prefix the gateway put in front of the rest
    of the path (`x-upstream-prefix`, a version's path on its service)."""
    path: str = scope.get("path", "")
    mount: str | None = None
    added: str | None = None
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-prefix":
            mount = value.decode("latin-1")
        elif name == b"x-upstream-prefix":
            added = value.decode("latin-1")
    if mount is None or not _PREFIX.match(mount):
        return path
    if added is not None and _PREFIX.match(added) and path.startswith(added):
        path = path[len(added) :]
    return mount + path


def problem_details_plugin() -> ProblemDetailsPlugin:
    """The one place that maps exceptions to problem+json, for every service."""

    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_handler=_respond,
            exception_to_problem_detail_map={
                ServiceError: _from_service_error,
                HTTPException: _from_http_exception,
                RedisError: _from_store_error,
                OperationalError: _from_database_error,
                InterfaceError: _from_database_error,
                PoolTimeout: _from_database_error,
                TimeoutError: _from_timeout,
                Exception: _from_unexpected,
            },
        )
    )


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can answer; 400 (validation) is always there."""
    out: dict[int, ResponseSpec] = {}
    for status in sorted({400, *statuses}):
        out[status] = ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=HTTPStatus(status).phrase,
            generate_examples=False,
        )
    return out
