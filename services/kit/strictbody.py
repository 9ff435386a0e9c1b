"""Strict request bodies: a JSON body is validated as msgspec decodes it, with no coercion.

Litestar converts handler arguments with `strict=False`, which turns `"100"` into `100`; a
published contract that says `integer` must refuse a string. This `before_request` hook
converts the body strictly against the handler's `data` type and answers 400 with the
offending field; the handler then receives the same value Litestar would have given it.
JSON Schema counts `1.0` as an integer (draft 2020-12, section 6.1.1 of the validation
vocabulary), so integral floats are made ints first: the contract's word, not msgspec's.
"""

from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import msgspec
from litestar.exceptions import HTTPException, ValidationException

if TYPE_CHECKING:
    from litestar import Request

__all__ = ["MAX_DEPTH", "strict_body"]

#: no contract here nests deeper than a handful of levels; a body that does is refused (400)
#: before anything walks it recursively.
MAX_DEPTH = 32
_JSON_MEDIA = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json\Z")

# handler → its body type, found on first use. Weak: an app that is gone takes its entries
# with it (a process that builds many apps, as the tests do, would keep every one alive).
_types: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_NONE = object()
_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?\Z", re.DOTALL)


def _body_type(handler: Any) -> Any:
    cached = _types.get(handler)
    if cached is None:
        field = handler.parsed_fn_signature.parameters.get("data")
        annotation = getattr(field, "annotation", None) if field is not None else None
        cached = _NONE
        if annotation is not None:
            try:
                msgspec.json.Decoder(annotation)
                cached = annotation
            except TypeError:
                cached = _NONE
        _types[handler] = cached
    return None if cached is _NONE else cached


def _repeated_query_parameter(query: bytes) -> str | None:
    # No handler here takes a list from the query string: a repeated parameter is an
    # ambiguity (first? last?) to refuse, not to resolve silently.
    seen: set[bytes] = set()
    for pair in query.split(b"&"):
        name = pair.split(b"=", 1)[0]
        if not name:
            continue
        if name in seen:
            return unquote_to_bytes(name).decode("utf-8", "replace")
        seen.add(name)
    return None


async def strict_body(request: Request[Any, Any, Any]) -> None:
    repeated = _repeated_query_parameter(request.scope.get("query_string", b""))
    if repeated is not None:
        raise ValidationException(
            detail="Validation failed: the errors name each field",
            extra=[{"key": repeated, "message": "given more than once", "source": "query"}],
        )
    body_type = _body_type(request.route_handler)
    if body_type is None:
        return
    body = await request.body()
    if not body:
        return  # Litestar reports the missing body itself
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not _JSON_MEDIA.match(media_type):
        # Litestar would decode any body as JSON; a form or text/plain is not what this
        # operation takes, and a browser can send those cross-origin without a preflight.
        raise HTTPException(
            status_code=415,
            detail=f"this operation takes application/json, not {media_type or 'no media type'}",
        )
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return  # malformed JSON: Litestar answers 400 with its own message
    except RecursionError:
        document = None  # msgspec stops at the interpreter's depth: too deep either way
    if document is None or _too_deep(document, MAX_DEPTH):
        raise ValidationException(
            detail="Validation failed: the errors name each field",
            extra=[
                {"key": "", "message": f"nested deeper than {MAX_DEPTH} levels", "source": "body"}
            ],
        )
    try:
        msgspec.convert(_integral(document), type=body_type, strict=True)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        message = match.group(1) if match else str(exc)
        path = (match.group(2) or "").lstrip(".") if match else ""
        raise ValidationException(
            detail="Validation failed: the errors name each field",
            extra=[{"key": path, "message": message, "source": "body"}],
        ) from None


def _too_deep(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit`: walked with a list, not recursion,
    so that what comes after (conversion, `_integral`) only ever sees a bounded depth."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth >= limit:
            return True
        stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False


def _integral(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value
