"""Idempotency-Key records (draft-ietf-httpapi-idempotency-key-header), shared by checkout and
returns: a key is the caller's, bound to a fingerprint of the request; its first response is
kept and replayed."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select, tuple_

from services.kit.coalesce import Coalescer
from services.orders.errors import IdempotencyInFlight, IdempotencyKeyReused

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.storage import Database

__all__ = ["KeyLookups", "KeyedResponse", "earlier_response", "fingerprint"]

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
    return _judge(row, digest)


def _judge(row: Any, digest: str) -> KeyedResponse | None:
    if row is None:
        return None
    if row.fingerprint != digest:
        raise IdempotencyKeyReused
    if row.status_code is None:
        raise IdempotencyInFlight
    return KeyedResponse(row.status_code, bytes(row.body), True)


class KeyLookups:
    """`earlier_response` for many requests at once. Every checkout first asks whether its
    key was seen; in a rush a thousand of them ask within a second, and a thousand reads
    queued on the connection pool took 0.7 s each (p50) before any could be refused. The
    callers of the same moment share one query (a key looked up after a commit is in a
    later query, which sees it)."""

    def __init__(self, db: Database, table: Table, max_batch: int = 500) -> None:
        self.db, self.table = db, table
        self._batches: Coalescer[tuple[str, str], Any] = Coalescer(self._fetch, max_batch)

    async def earlier(self, principal: str, key: str, digest: str) -> KeyedResponse | None:
        return _judge(await self._batches.submit((principal, key)), digest)

    async def _fetch(self, pairs: list[tuple[str, str]]) -> list[Any]:
        c = self.table.c
        query = select(c.principal, c.key, c.fingerprint, c.status_code, c.body).where(
            tuple_(c.principal, c.key).in_(sorted(set(pairs)))
        )
        async with self.db.read() as conn:
            found = {(r.principal, r.key): r for r in await conn.execute(query)}
        return [found.get(pair) for pair in pairs]
