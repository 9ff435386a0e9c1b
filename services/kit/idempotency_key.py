"""The `Idempotency-Key` request header (IETF httpapi draft): one declaration, so that every
API taking it documents and checks the same syntax (a structured-field string, quoted, or
the bare token older clients send)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

__all__ = ["IDEMPOTENCY_KEY_PATTERN", "IdempotencyKey"]

IDEMPOTENCY_KEY_PATTERN = r'^("[ !#-\[\]-~]{1,255}"|[!#-\[\]-~]{1,255})\Z'
IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description='A key of the client\'s, unique per checkout: "8e03978e-40d5-43e8-bc93"',
    ),
]
