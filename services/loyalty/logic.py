"""A points ledger that never double-counts and never goes below zero.

Every entry is unique by (member, kind, source id): an earn for a till transaction, a
reversal for a return, a redemption for a captured hold, an operator's adjustment. Writing
an entry and moving the member's balance happen in one transaction, under the member's row
lock (PostgreSQL) or the single writer (SQLite), so concurrent holds see each other.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from contracts.models import (
    MAX_LEDGER_ENTRIES,
    Adjustment,
    ExpiryRun,
    HoldRequest,
    Ledger,
    LedgerEntry,
    LoyaltyAccount,
    MemberEmail,
    MemberIn,
    MemberLookup,
    MemberProfile,
    PointsHold,
)
from services.kit.storage import as_utc
from services.loyalty.errors import (
    HoldConflict,
    InsufficientPoints,
    MemberExists,
    UnknownHold,
    UnknownMember,
)
from services.loyalty.rules import EarningRules
from services.loyalty.vault import EmailVault, mask_email

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from services.kit.identity import Identity
    from services.kit.storage import Database
    from services.loyalty.store import LoyaltyTables

__all__ = ["LoyaltyService"]


class LoyaltyService:
    def __init__(
        self,
        db: Database,
        tables: LoyaltyTables,
        rules: EarningRules,
        lookup_key: bytes,
        vault: EmailVault,
    ) -> None:
        self.db, self.t, self.rules, self._lookup_key = db, tables, rules, lookup_key
        self.vault = vault

    def _hash(self, kind: str, value: str) -> str:
        normalized = value.strip().lower() if kind == "email" else value.strip()
        return hmac.new(
            self._lookup_key, f"{kind}:{normalized}".encode(), hashlib.sha256
        ).hexdigest()

    # members

    async def enrol(self, data: MemberIn) -> LoyaltyAccount:
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    insert(self.t.members).values(
                        member_id=data.member_id,
                        tier=data.tier,
                        customer_sub=data.customer_sub,
                        card_hash=self._hash("card", data.card_number)
                        if data.card_number
                        else None,
                        email_hash=self._hash("email", data.email) if data.email else None,
                        email_masked=mask_email(data.email) if data.email else None,
                        email_sealed=self.vault.seal(data.email, data.member_id)
                        if data.email
                        else None,
                        balance=0,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            raise MemberExists("a member with this id, card or email exists") from None
        return await self.account(data.member_id, None)

    async def count_members(self) -> int:
        async with self.db.read() as conn:
            query = select(func.count()).select_from(self.t.members)
            return int((await conn.execute(query)).scalar_one())

    async def _member(self, conn: AsyncConnection, member_id: str, *, lock: bool = False) -> Any:
        query = select(self.t.members).where(self.t.members.c.member_id == member_id)
        if lock and not self.db.is_sqlite:
            query = query.with_for_update()
        return (await conn.execute(query)).first()

    async def _held(self, conn: AsyncConnection, member_id: str, now: datetime) -> int:
        query = select(func.coalesce(func.sum(self.t.holds.c.points), 0)).where(
            self.t.holds.c.member_id == member_id,
            self.t.holds.c.status == "held",
            self.t.holds.c.expires_at > now,
        )
        return int((await conn.execute(query)).scalar_one())

    @staticmethod
    def visible(row: Any, identity: Identity | None) -> bool:
        """A customer sees only their own account; operators and services see any."""
        if identity is None or identity.is_admin or identity.kind == "service":
            return True
        return _shopper(identity) and row.customer_sub == identity.sub

    async def account(self, member_id: str, identity: Identity | None) -> LoyaltyAccount:
        async with self.db.read() as conn:
            row = await self._member(conn, member_id)
            if row is None or not self.visible(row, identity):
                raise UnknownMember  # the same answer for "not yours": nothing to probe
            held = await self._held(conn, member_id, datetime.now(UTC))
        return LoyaltyAccount(
            member_id=row.member_id,
            tier=row.tier,
            balance=row.balance,
            held=held,
            available=row.balance - held,
        )

    async def of_customer(self, identity: Identity) -> LoyaltyAccount:
        """The signed-in customer's own account (by their JWT subject; the lowest member id
        if they hold several), or UnknownMember."""
        if not _shopper(identity):
            raise UnknownMember
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(self.t.members.c.member_id)
                    .where(self.t.members.c.customer_sub == identity.sub)
                    .order_by(self.t.members.c.member_id)
                    .limit(1)
                )
            ).first()
        if row is None:
            raise UnknownMember
        return await self.account(row.member_id, identity)

    async def lookup(self, by: MemberLookup) -> LoyaltyAccount:
        """The member a card, an email or a customer's subject names (the lowest member id
        of a customer who holds several)."""
        m = self.t.members.c
        if by.card_number:
            where = m.card_hash == self._hash("card", by.card_number)
        elif by.email:
            where = m.email_hash == self._hash("email", by.email)
        else:
            where = m.customer_sub == by.customer_sub
        async with self.db.read() as conn:
            query = select(m.member_id).where(where).order_by(m.member_id).limit(1)
            row = (await conn.execute(query)).first()
        if row is None:
            raise UnknownMember
        return await self.account(row.member_id, None)

    async def profile(self, member_id: str) -> MemberProfile:
        account = await self.account(member_id, None)
        async with self.db.read() as conn:
            row = await self._member(conn, member_id)
        return MemberProfile(
            member_id=member_id,
            tier=row.tier,
            customer_sub=row.customer_sub,
            email_masked=row.email_masked,
            balance=account.balance,
            held=account.held,
            available=account.available,
        )

    async def email(self, member_id: str) -> MemberEmail:
        async with self.db.read() as conn:
            row = await self._member(conn, member_id)
        if row is None or row.email_sealed is None:
            raise UnknownMember
        return MemberEmail(member_id=member_id, email=self.vault.open(row.email_sealed, member_id))

    async def ledger(self, member_id: str, identity: Identity | None) -> Ledger:
        await self.account(member_id, identity)
        async with self.db.read() as conn:
            # the newest MAX_LEDGER_ENTRIES, answered oldest first
            rows = (
                await conn.execute(
                    select(self.t.ledger)
                    .where(self.t.ledger.c.member_id == member_id)
                    .order_by(self.t.ledger.c.id.desc())
                    .limit(MAX_LEDGER_ENTRIES)
                )
            ).all()[::-1]
        return Ledger(
            member_id=member_id,
            entries=[
                LedgerEntry(
                    kind=r.kind,
                    points=r.points,
                    source_id=r.source_id,
                    created_at=as_utc(r.created_at),
                    by=r.actor,
                    reason=r.reason,
                )
                for r in rows
            ],
        )

    # the ledger

    async def _entry(
        self,
        conn: AsyncConnection,
        member_id: str,
        kind: str,
        points: int,
        source_id: str,
        amount: int | None = None,
        *,
        by: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Append an entry unless its source was booked already; move the balance with it."""
        exists = (
            await conn.execute(
                select(self.t.ledger.c.id).where(
                    self.t.ledger.c.member_id == member_id,
                    self.t.ledger.c.kind == kind,
                    self.t.ledger.c.source_id == source_id,
                )
            )
        ).first()
        if exists is not None:
            return False
        await conn.execute(
            insert(self.t.ledger).values(
                member_id=member_id,
                kind=kind,
                points=points,
                source_id=source_id,
                amount=amount,
                actor=by,
                reason=reason,
                created_at=datetime.now(UTC),
            )
        )
        await conn.execute(
            update(self.t.members)
            .where(self.t.members.c.member_id == member_id)
            .values(balance=self.t.members.c.balance + points)
        )
        return True

    async def earn(self, member_id: str, source_id: str, amount: int) -> int:
        """Points for a purchase, once per source; returns the points booked (0 if not)."""
        async with self.db.write() as conn:
            member = await self._member(conn, member_id, lock=True)
            if member is None:
                return 0
            points = self.rules.points(member.tier, amount)
            cap = self.rules.max_points_per_day
            if cap is not None:
                points = max(0, min(points, cap - await self._earned_today(conn, member_id)))
            booked = await self._entry(conn, member_id, "earn", points, source_id, amount)
        return points if booked else 0

    async def _earned_today(self, conn: AsyncConnection, member_id: str) -> int:
        le = self.t.ledger.c
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        query = select(func.coalesce(func.sum(le.points), 0)).where(
            le.member_id == member_id, le.kind == "earn", le.created_at >= midnight
        )
        return int((await conn.execute(query)).scalar_one())

    async def reverse(self, member_id: str, source_id: str, original_id: str, amount: int) -> int:
        """Take back, pro rata, what the returned part of a purchase earned, once per return;
        never more than the purchase earned, whatever the returns add up to."""
        async with self.db.write() as conn:
            member = await self._member(conn, member_id, lock=True)
            if member is None:
                return 0
            earned = (
                await conn.execute(
                    select(self.t.ledger.c.points, self.t.ledger.c.amount).where(
                        self.t.ledger.c.member_id == member_id,
                        self.t.ledger.c.kind == "earn",
                        self.t.ledger.c.source_id == original_id,
                    )
                )
            ).first()
            if earned is None or not earned.amount:
                return 0
            reversed_so_far = int(
                (
                    await conn.execute(
                        select(func.coalesce(func.sum(self.t.ledger.c.points), 0)).where(
                            self.t.ledger.c.member_id == member_id,
                            self.t.ledger.c.kind == "reverse",
                            self.t.ledger.c.source_id.like(original_id + "/%"),
                        )
                    )
                ).scalar_one()
            )
            share = math.floor(earned.points * min(amount, earned.amount) / earned.amount)
            points = min(share, earned.points + reversed_so_far)  # reversals are negative
            # down to the floor of available points, not below: what was spent stays spent
            available = member.balance - await self._held(conn, member_id, datetime.now(UTC))
            points = min(points, available - self.rules.reversal_floor)
            if points <= 0:
                return 0
            booked = await self._entry(
                conn, member_id, "reverse", -points, f"{original_id}/{source_id}", amount
            )
        return points if booked else 0

    async def adjust(self, member_id: str, data: Adjustment, by: str) -> LoyaltyAccount:
        """An operator's correction, past the earning bounds but never below zero available
        points; the ledger keeps who made it and why."""
        async with self.db.write() as conn:
            member = await self._member(conn, member_id, lock=True)
            if member is None:
                raise UnknownMember
            available = member.balance - await self._held(conn, member_id, datetime.now(UTC))
            if data.points < 0 and available + data.points < 0:
                raise InsufficientPoints(-data.points, available)
            await self._entry(
                conn, member_id, "adjust", data.points, data.source_id, by=by, reason=data.reason
            )
        return await self.account(member_id, None)

    # expiry

    async def expire_inactive(self, now: datetime | None = None) -> ExpiryRun:
        """Expire the available points of members inactive for the configured days. The
        entry's source is the member's last activity, so one period expires once."""
        days = self.rules.expire_after_inactive_days
        if days is None:
            return ExpiryRun(members=0, points=0)
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(days=days)
        m, le = self.t.members.c, self.t.ledger.c
        active = (
            select(le.id)
            .where(
                le.member_id == m.member_id,
                le.kind.in_(("earn", "redeem", "adjust")),
                le.created_at >= cutoff,
            )
            .exists()
        )
        async with self.db.read() as conn:
            candidates = [
                r.member_id
                for r in await conn.execute(select(m.member_id).where(m.balance > 0, ~active))
            ]
        members = points = 0
        for member_id in candidates:
            async with self.db.write() as conn:
                member = await self._member(conn, member_id, lock=True)
                if member is None:
                    continue
                last = (
                    await conn.execute(
                        select(func.max(le.created_at)).where(
                            le.member_id == member_id, le.kind.in_(("earn", "redeem", "adjust"))
                        )
                    )
                ).scalar_one()
                if last is not None and as_utc(last) >= cutoff:
                    continue  # active since the candidates were read
                available = member.balance - await self._held(conn, member_id, now)
                if available <= 0:
                    continue
                # the period is named by its last activity, to the microsecond: a later
                # period never takes an earlier one's name (the ledger books a source once)
                source = "inactive-since-" + (
                    as_utc(last).strftime("%Y%m%dT%H%M%S.%f") if last is not None else "enrolment"
                )
                if await self._entry(conn, member_id, "expire", -available, source):
                    members += 1
                    points += available
        return ExpiryRun(members=members, points=points)

    # holds (two-phase redemption)

    async def hold(
        self, member_id: str, data: HoldRequest, identity: Identity
    ) -> tuple[PointsHold, bool]:
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            member = await self._member(conn, member_id, lock=True)
            if member is None or not self.visible(member, identity):
                raise UnknownMember
            earlier = (
                await conn.execute(
                    select(self.t.holds).where(self.t.holds.c.hold_id == data.hold_id)
                )
            ).first()
            if earlier is not None:
                if earlier.member_id != member_id or earlier.points != data.points:
                    raise HoldConflict(f"hold {data.hold_id} exists with other content")
                return self._hold(earlier, now), False
            available = member.balance - await self._held(conn, member_id, now)
            if data.points > available:
                raise InsufficientPoints(data.points, available)
            expires = now + timedelta(seconds=data.ttl_s)
            await conn.execute(
                insert(self.t.holds).values(
                    hold_id=data.hold_id,
                    member_id=member_id,
                    points=data.points,
                    status="held",
                    expires_at=expires,
                    created_at=now,
                )
            )
        return PointsHold(
            hold_id=data.hold_id,
            member_id=member_id,
            points=data.points,
            status="held",
            expires_at=expires,
        ), True

    def _hold(self, row: Any, now: datetime) -> PointsHold:
        expires = as_utc(row.expires_at)
        status = "expired" if row.status == "held" and expires <= now else row.status
        return PointsHold(
            hold_id=row.hold_id,
            member_id=row.member_id,
            points=row.points,
            status=status,  # type: ignore[arg-type]
            expires_at=expires,
        )

    async def settle(self, hold_id: str, action: str, identity: Identity) -> PointsHold:
        """Capture (redeem the points) or release; both idempotent."""
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            row = (
                await conn.execute(select(self.t.holds).where(self.t.holds.c.hold_id == hold_id))
            ).first()
            if row is None:
                raise UnknownHold(hold_id)
            member = await self._member(conn, row.member_id, lock=True)
            if member is None or not self.visible(member, identity):
                raise UnknownHold(hold_id)
            current = self._hold(row, now)
            target = "captured" if action == "capture" else "released"
            if current.status == target:
                return current
            if current.status != "held":
                raise HoldConflict(f"hold {hold_id} is {current.status}")
            await conn.execute(
                update(self.t.holds).where(self.t.holds.c.hold_id == hold_id).values(status=target)
            )
            if target == "captured":
                await self._entry(conn, row.member_id, "redeem", -row.points, hold_id)
        return PointsHold(
            hold_id=hold_id,
            member_id=row.member_id,
            points=row.points,
            status=target,  # type: ignore[arg-type]
            expires_at=current.expires_at,
        )


def _shopper(identity: Identity) -> bool:
    """A signed-in customer: not a partner's token nor a till's, whatever their subject."""
    return (
        identity.kind == "user"
        and identity.sub is not None
        and identity.partner_id is None
        and identity.store_id is None
    )
