"""Partner API keys: minting, storage, rotation and revocation (the hot-path lookup is
`gateway/auth/keycache.py`).

A key reads `rm_live_<32 base62 chars><6 base62 chars of CRC32>` (190 bits of randomness);
the checksum refuses a mistyped key without a lookup. Only HMAC-SHA256(pepper, key) is
stored, with the pepper kept outside the database, so a stolen table yields nothing usable.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import string
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, insert, select, update

from contracts.bounds import Name, Timestamp

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.storage import Database

__all__ = [
    "ApiKey",
    "KeyRefused",
    "KeyState",
    "KeyStore",
    "NewKey",
    "Partner",
    "checksum_ok",
    "hash_key",
    "list_partners",
    "new_key",
]

log = logging.getLogger("retailmesh.gateway.keys")

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_FORMAT = re.compile(r"^rm_(live|test)_([0-9A-Za-z]{32})([0-9A-Za-z]{6})\Z")


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _checksum(prefix_and_body: str) -> str:
    return _base62(zlib.crc32(prefix_and_body.encode()), 6)


def new_key(env: Literal["live", "test"] = "live") -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    head = f"rm_{env}_{body}"
    return head + _checksum(head)


def checksum_ok(key: str) -> bool:
    match = _FORMAT.match(key)
    if match is None:
        return False
    return hmac.compare_digest(_checksum(key[:-6]), match.group(3))


def hash_key(pepper: bytes, key: str) -> str:
    return hmac.new(pepper, key.encode(), sha256).hexdigest()


#: A key's life. Stored: active, rotating, revoked; `retired` (a rotating key past its grace)
#: and `expired` (past `expires_at`) follow from the clock.
#:
#:     active ──rotate──► rotating ──grace ends──► retired
#:     active ──expires_at──► expired
#:     any ──revoke──► revoked
#:
#: Only an active key can be rotated, and nothing leads back to active or rotating: a
#: retired, expired or revoked key never works again.
KeyState = Literal["active", "rotating", "retired", "expired", "revoked"]


class KeyRefused(ValueError):
    """A key cannot be created or changed so; the message says why (safe to show)."""


#: the most keys or partners one admin listing answers
MAX_LISTED = 1_000
#: a key's id (`key_` and 16 hex digits; its column has room for 40)
KeyIdText = Annotated[str, msgspec.Meta(max_length=40)]
ScopeText = Annotated[str, msgspec.Meta(max_length=64)]


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as stored (never the key itself), with its state at the time it was read."""

    id: KeyIdText
    partner_id: Annotated[str, msgspec.Meta(max_length=64)]
    label: Annotated[str, msgspec.Meta(max_length=200)]
    prefix: Annotated[str, msgspec.Meta(max_length=16)]
    scopes: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=50)
    ]
    plan: Annotated[str, msgspec.Meta(max_length=32)]
    status: KeyState
    created_at: Timestamp
    expires_at: Timestamp | None = None
    #: a rotating key works until then, and is retired after
    grace_until: Timestamp | None = None
    #: the key that replaced this one
    rotated_to: KeyIdText | None = None

    def state(self, now: datetime) -> KeyState:
        if self.status in ("revoked", "retired", "expired"):
            return self.status  # ends: nothing leads out of them
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        # (keys rotated before the states were stored stayed `active` with a successor)
        if self.status == "rotating" or self.rotated_to is not None:
            if self.grace_until is None or now >= self.grace_until:
                return "retired"
            return "rotating"
        return "active"

    def usable(self, now: datetime) -> bool:
        return self.state(now) in ("active", "rotating")


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    """A freshly minted key: the only time the plaintext exists outside the client."""

    key: str
    record: ApiKey


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class KeyStore:
    def __init__(self, metadata: MetaData, pepper: bytes) -> None:
        self.pepper = pepper
        #: the time keys are judged by (a test moves it)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.partners = Table(
            "gateway_partners",
            metadata,
            Column("id", String(64), primary_key=True),
            Column("name", String(200), nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )
        self.keys = Table(
            "gateway_api_keys",
            metadata,
            Column("id", String(40), primary_key=True),
            Column("hash", String(64), nullable=False, unique=True),
            Column("partner_id", String(64), nullable=False, index=True),
            Column("label", String(200), nullable=False),
            Column("prefix", String(16), nullable=False),
            Column("scopes", Text, nullable=False),
            Column("plan", String(32), nullable=False),
            Column("status", String(8), nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("expires_at", DateTime(timezone=True), nullable=True),
            Column("grace_until", DateTime(timezone=True), nullable=True),
            Column("rotated_to", String(40), nullable=True),
        )

    def _record(self, row: Any) -> ApiKey:
        record = self._stored(row)
        return msgspec.structs.replace(record, status=record.state(self.clock()))

    def _stored(self, row: Any) -> ApiKey:
        return ApiKey(
            id=row.id,
            partner_id=row.partner_id,
            label=row.label,
            prefix=row.prefix,
            scopes=json.loads(row.scopes),
            plan=row.plan,
            status=row.status,
            created_at=_utc(row.created_at),  # type: ignore[arg-type]
            expires_at=_utc(row.expires_at),
            grace_until=_utc(row.grace_until),
            rotated_to=row.rotated_to,
        )

    async def partner_exists(self, conn: AsyncConnection, partner_id: str) -> bool:
        query = select(self.partners.c.id).where(self.partners.c.id == partner_id)
        return (await conn.execute(query)).first() is not None

    async def ensure_partner(self, db: Database, partner_id: str, name: str | None = None) -> None:
        async with db.write() as conn:
            if not await self.partner_exists(conn, partner_id):
                await conn.execute(
                    insert(self.partners).values(
                        id=partner_id, name=name or partner_id, created_at=datetime.now(UTC)
                    )
                )

    async def create(
        self,
        db: Database,
        *,
        partner_id: str,
        scopes: list[str],
        plan: str,
        label: str = "",
        expires_in: timedelta | None = None,
        env: Literal["live", "test"] = "live",
    ) -> NewKey:
        """Mint a key for an existing partner (`KeyRefused` otherwise); the caller checks
        its scopes against the gateway's config (`GatewayConfig.key_scope_problem`)."""
        async with db.read() as conn:
            exists = await self.partner_exists(conn, partner_id)
        if not exists:
            raise KeyRefused(f"no partner {partner_id}: register the partner first")
        key = new_key(env)
        now = self.clock()
        record = ApiKey(
            id="key_" + uuid.uuid4().hex[:16],
            partner_id=partner_id,
            label=label,
            prefix=key[:12],
            scopes=sorted(set(scopes)),
            plan=plan,
            status="active",
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
        async with db.write() as conn:
            await conn.execute(
                insert(self.keys).values(
                    id=record.id,
                    hash=hash_key(self.pepper, key),
                    partner_id=partner_id,
                    label=label,
                    prefix=record.prefix,
                    scopes=json.dumps(record.scopes),
                    plan=plan,
                    status="active",
                    created_at=now,
                    expires_at=record.expires_at,
                )
            )
        return NewKey(key=key, record=record)

    async def by_hash(self, db: Database, digest: str) -> ApiKey | None:
        async with db.read() as conn:
            row = (await conn.execute(select(self.keys).where(self.keys.c.hash == digest))).first()
        return self._record(row) if row else None

    async def get(self, db: Database, key_id: str) -> tuple[ApiKey, str] | None:
        async with db.read() as conn:
            row = (await conn.execute(select(self.keys).where(self.keys.c.id == key_id))).first()
        return (self._record(row), row.hash) if row else None

    async def list(self, db: Database, partner_id: str | None = None) -> list[ApiKey]:
        """The oldest MAX_LISTED keys (of one partner, when named)."""
        query = select(self.keys).order_by(self.keys.c.created_at, self.keys.c.id).limit(MAX_LISTED)
        if partner_id:
            query = query.where(self.keys.c.partner_id == partner_id)
        async with db.read() as conn:
            return [self._record(r) for r in (await conn.execute(query)).all()]

    async def revoke(self, db: Database, key_id: str) -> str | None:
        """Revoke a key from any state; returns its hash (to invalidate caches) or None if
        unknown."""
        found = await self.get(db, key_id)
        if found is None:
            return None
        async with db.write() as conn:
            await conn.execute(
                update(self.keys).where(self.keys.c.id == key_id).values(status="revoked")
            )
        return found[1]

    async def rotate(
        self, db: Database, key_id: str, grace: timedelta
    ) -> tuple[NewKey, str] | None:
        """A new key with the same partner, scopes and plan; the old one goes from active to
        rotating and works for `grace`, then is retired. Only an active key rotates (None
        otherwise): a retired key is never brought back by rotating it again. Returns the
        new key and the old key's hash (to invalidate caches)."""
        found = await self.get(db, key_id)
        now = self.clock()
        if found is None or found[0].state(now) != "active":
            return None
        old, old_hash = found
        expires_in = old.expires_at - now if old.expires_at else None
        fresh = await self.create(
            db,
            partner_id=old.partner_id,
            scopes=old.scopes,
            plan=old.plan,
            label=old.label,
            expires_in=expires_in,
            env="test" if old.prefix.startswith("rm_test_") else "live",
        )
        async with db.write() as conn:
            # conditional: of two rotations racing, one moves the key; the other's new key
            # is revoked at once and it answers as if the key were not active
            moved = await conn.execute(
                update(self.keys)
                .where(
                    self.keys.c.id == key_id,
                    self.keys.c.status == "active",
                    self.keys.c.rotated_to.is_(None),
                )
                .values(status="rotating", grace_until=now + grace, rotated_to=fresh.record.id)
            )
            if moved.rowcount != 1:
                await conn.execute(
                    update(self.keys)
                    .where(self.keys.c.id == fresh.record.id)
                    .values(status="revoked")
                )
                return None
        return fresh, old_hash


class Partner(msgspec.Struct, frozen=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(max_length=64)]
    name: Name
    created_at: Timestamp


async def list_partners(
    store: KeyStore, db: Database, partner_id: str | None = None
) -> list[Partner]:
    """The first MAX_LISTED partners by id (or the one named)."""
    query = select(store.partners).order_by(store.partners.c.id).limit(MAX_LISTED)
    if partner_id is not None:
        query = query.where(store.partners.c.id == partner_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [Partner(id=r.id, name=r.name, created_at=_utc(r.created_at)) for r in rows]  # type: ignore[arg-type]
