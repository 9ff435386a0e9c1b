"""Idempotency-Key records (draft-ietf-httpapi-idempotency-key-header), shared by checkout and
returns: a key is the caller's, bound to a fingerprint of the request; its first response is
kept and replayed."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import select

from services.orders.errors import IdempotencyInFlight, IdempotencyKeyReused

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["KeyedResponse", "earlier_response", "fingerprint"]

_encoder = msgspec.json.Encoder()


class KeyedResponse(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    replayed: bool


def fingerprint(request: msgspec.Struct) -> str:
    """Of the decoded request, so that whitespace or key order do not make it another."""
    return hashlib.sha256(_encoder.encode(request)).hexdigest()


async def earlier_response(
    conn: AsyncConnection, table: Table, principal: str, key: str, digest: str
) -> KeyedResponse | None:
    """The key's first response; None for a new key. 422 when the key came with another
    request, 409 while its first request still runs."""
    c = table.c
    row = (
        await conn.execute(
            select(c.fingerprint, c.status_code, c.body).where(
                c.principal == principal, c.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != digest:
        raise IdempotencyKeyReused
    if row.status_code is None:
        raise IdempotencyInFlight
    return KeyedResponse(row.status_code, bytes(row.body), True)
