"""Claims on a store sale from outside the tills: a return by receipt through the orders
service takes its units here first, where the sale and the tills' returns are, under the
sale's lock. A till return counts the claims, a claim counts the till returns: whichever
comes second finds the units gone, so a sale is never taken back twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, insert, text

from contracts.models import ReturnClaim, TillTransaction
from services.kit.errors import Conflict, Forbidden
from services.pos.errors import UnknownTransaction
from services.pos.intake import Rejected, check_return

if TYPE_CHECKING:
    from services.kit.identity import Identity
    from services.kit.storage import Database
    from services.pos.store import PosTables

__all__ = ["ClaimRefused", "ReturnClaims"]

_decoder = msgspec.json.Decoder(TillTransaction)


class ClaimRefused(Conflict):
    """The claim does not fit the sale (its code: too-many-units, not-on-sale, ...)."""

    slug, title = "claim-refused", "Return claim refused"


class ReturnClaims:
    def __init__(self, db: Database, tables: PosTables) -> None:
        self.db, self.t = db, tables

    @staticmethod
    def _authorize(identity: Identity) -> None:
        if identity.kind != "service" and not identity.is_admin:
            raise Forbidden("claims come from the services of the mesh")

    async def claim(self, sale_id: str, data: ReturnClaim, identity: Identity) -> bool:
        """Take the units, once per claim id; True when taken now, False for a replay."""
        self._authorize(identity)
        sale_id = sale_id.lower()
        async with self.db.write() as conn:
            await self._lock(conn, sale_id)
            row = await self.t.get(conn, sale_id)
            if row is None:
                raise UnknownTransaction(sale_id)
            earlier = {
                sku: qty
                for cid, sku, qty in await self.t.claimed(conn, sale_id)
                if cid == data.claim_id
            }
            wanted: Counter[str] = Counter()
            for line in data.lines:
                wanted[line.sku] += line.quantity
            if earlier:
                if earlier != dict(wanted):
                    raise Conflict(f"claim {data.claim_id} exists with other lines")
                return False
            sale = _decoder.decode(row.body)
            # one line per SKU claimed, whatever lines the sale rang it up on (a line per
            # sale line counted a SKU sold on two lines twice)
            first = {sold.sku: sold for sold in reversed(sale.lines) if sold.sku in wanted}
            as_return = msgspec.structs.replace(
                sale,
                kind="return",
                lines=[
                    msgspec.structs.replace(sold, quantity=wanted[sku])
                    for sku, sold in first.items()
                ],
                original_transaction_id=sale_id,
            )
            unknown = sorted(set(wanted) - {line.sku for line in sale.lines})
            try:
                if unknown:
                    raise Rejected("not-on-sale", f"{', '.join(unknown)} not on the sale")
                check_return(as_return, sale, await self.t.returned(conn, sale_id))
            except Rejected as refusal:
                raise ClaimRefused(refusal.reason, code=refusal.code) from None
            now = datetime.now(UTC)
            await conn.execute(
                insert(self.t.claims),
                [
                    {
                        "claim_id": data.claim_id,
                        "sku": sku,
                        "sale_id": sale_id,
                        "quantity": qty,
                        "created_at": now,
                    }
                    for sku, qty in wanted.items()
                ],
            )
        return True

    async def release(self, sale_id: str, claim_id: str, identity: Identity) -> None:
        """Give a claim's units back (its return did not happen); idempotent."""
        self._authorize(identity)
        async with self.db.write() as conn:
            await self._lock(conn, sale_id.lower())
            c = self.t.claims.c
            await conn.execute(
                delete(self.t.claims).where(c.claim_id == claim_id, c.sale_id == sale_id.lower())
            )

    async def _lock(self, conn: Any, sale_id: str) -> None:
        if not self.db.is_sqlite:  # SQLite has one writer already
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": sale_id})
