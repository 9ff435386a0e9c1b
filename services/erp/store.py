"""The reference ERP's own database: products, locations, positions, postings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)

from contracts.models import MAX_LOCATIONS, InventoryPosition, Money, Product, StockLocation
from contracts.postings import PostingLine, PostingRecord
from services.kit.storage import as_utc

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["ErpTables"]


class ErpTables:
    def __init__(self, metadata: MetaData) -> None:
        self.products = Table(
            "erp_products",
            metadata,
            Column("sku", String(32), primary_key=True),
            Column("name", String(200), nullable=False),
            Column("price_amount", BigInteger, nullable=False),
            Column("currency", String(3), nullable=False),
            Column("active", Boolean, nullable=False, default=True),
            Column("category", String(32), nullable=True),
        )
        self.locations = Table(
            "erp_locations",
            metadata,
            Column("id", String(32), primary_key=True),
            Column("name", String(200), nullable=False),
            Column("kind", String(8), nullable=False),
            Column("region", String(64), nullable=False),
            Column("country", String(2), nullable=True),
            Column("postcode", String(16), nullable=True),
            Column("latitude", Float, nullable=True),
            Column("longitude", Float, nullable=True),
        )
        self.positions = Table(
            "erp_positions",
            metadata,
            Column("sku", String(32), ForeignKey("erp_products.sku"), primary_key=True),
            Column("location_id", String(32), ForeignKey("erp_locations.id"), primary_key=True),
            Column("on_hand", BigInteger, nullable=False),
            Column("version", BigInteger, nullable=False, default=1),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        self.postings = Table(
            "erp_postings",
            metadata,
            Column("posting_id", String(64), primary_key=True),
            Column("kind", String(8), nullable=False),
            Column("order_id", String(64), nullable=False, index=True),
            Column("fingerprint", LargeBinary, nullable=False),
            Column("document_number", String(32), nullable=False, unique=True),
            Column("amount", BigInteger, nullable=False),
            Column("currency", String(3), nullable=False),
            Column("occurred_at", DateTime(timezone=True), nullable=False),
            Column("booked_at", DateTime(timezone=True), nullable=False),
        )
        self.posting_lines = Table(
            "erp_posting_lines",
            metadata,
            Column(
                "posting_id", String(64), ForeignKey("erp_postings.posting_id"), primary_key=True
            ),
            Column("line_no", Integer, primary_key=True),
            Column("sku", String(32), nullable=False),
            Column("location_id", String(32), nullable=False),
            Column("quantity", BigInteger, nullable=False),
            Column("unit_amount", BigInteger, nullable=False),
            Column("discount", BigInteger, nullable=False, server_default="0"),
            Column("currency", String(3), nullable=False),
            Index("ix_erp_posting_lines_sku", "sku"),
        )
        self.adjustments = Table(
            "erp_adjustments",
            metadata,
            Column("adjustment_id", String(64), primary_key=True),
            Column("fingerprint", LargeBinary, nullable=False),
            Column("sku", String(32), nullable=False),
            Column("location_id", String(32), nullable=False),
            Column("on_hand_after", BigInteger, nullable=False),
            Column("version_after", BigInteger, nullable=False),
            Column("booked_at", DateTime(timezone=True), nullable=False),
        )
        self.sequences = Table(
            "erp_sequences",
            metadata,
            Column("name", String(32), primary_key=True),
            Column("value", BigInteger, nullable=False),
        )

    # products and locations

    async def product(self, conn: AsyncConnection, sku: str) -> Product | None:
        row = (await conn.execute(select(self.products).where(self.products.c.sku == sku))).first()
        return _product(row) if row else None

    async def products_page(
        self, conn: AsyncConnection, after: str | None, limit: int
    ) -> list[Product]:
        query = select(self.products).order_by(self.products.c.sku).limit(limit)
        if after:
            query = query.where(self.products.c.sku > after)
        return [_product(r) for r in (await conn.execute(query)).all()]

    async def known_skus(self, conn: AsyncConnection, skus: Sequence[str]) -> set[str]:
        query = select(self.products.c.sku).where(self.products.c.sku.in_(list(skus)))
        return {r.sku for r in (await conn.execute(query)).all()}

    async def locations_all(self, conn: AsyncConnection) -> list[StockLocation]:
        query = select(self.locations).order_by(self.locations.c.id).limit(MAX_LOCATIONS)
        rows = (await conn.execute(query)).all()
        return [
            StockLocation(
                id=r.id,
                name=r.name,
                kind=r.kind,
                region=r.region,
                country=r.country,
                postcode=r.postcode,
                latitude=r.latitude,
                longitude=r.longitude,
            )
            for r in rows
        ]

    async def known_locations(self, conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
        query = select(self.locations.c.id).where(self.locations.c.id.in_(list(ids)))
        return {r.id for r in (await conn.execute(query)).all()}

    async def count_products(self, conn: AsyncConnection) -> int:
        return int(
            (await conn.execute(select(func.count()).select_from(self.products))).scalar_one()
        )

    # positions

    async def positions_of(
        self, conn: AsyncConnection, skus: Sequence[str]
    ) -> list[InventoryPosition]:
        query = (
            select(self.positions)
            .where(self.positions.c.sku.in_(list(skus)))
            .order_by(self.positions.c.sku, self.positions.c.location_id)
        )
        return [_position(r) for r in (await conn.execute(query)).all()]

    async def move_stock(
        self, conn: AsyncConnection, sku: str, location_id: str, delta: int
    ) -> InventoryPosition:
        """Add `delta` to on hand (creating the position at 0 first) and bump its version."""
        now = datetime.now(UTC)
        where = (self.positions.c.sku == sku) & (self.positions.c.location_id == location_id)
        result = await conn.execute(
            update(self.positions)
            .where(where)
            .values(
                on_hand=self.positions.c.on_hand + delta,
                version=self.positions.c.version + 1,
                updated_at=now,
            )
        )
        if not result.rowcount:
            await conn.execute(
                insert(self.positions).values(
                    sku=sku, location_id=location_id, on_hand=delta, version=1, updated_at=now
                )
            )
        row = (await conn.execute(select(self.positions).where(where))).one()
        return _position(row)

    async def move_stock_many(
        self, conn: AsyncConnection, moves: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """Apply (sku, location, delta) moves as `move_stock` would one after the other (a
        version per move, a missing position created at 0): a statement per kind of work,
        not per move. Returns each position's (on hand, version) after all of them."""
        if not moves:
            return {}
        total: dict[tuple[str, str], list[int]] = {}
        for sku, location, delta in moves:
            entry = total.setdefault((sku, location), [0, 0])
            entry[0] += delta
            entry[1] += 1
        c = self.positions.c
        skus = sorted({sku for sku, _ in total})
        locations = sorted({loc for _, loc in total})
        in_pairs = c.sku.in_(skus) & c.location_id.in_(locations)
        present = {
            (r.sku, r.location_id)
            for r in (await conn.execute(select(c.sku, c.location_id).where(in_pairs))).all()
        }
        now = datetime.now(UTC)
        missing = [pair for pair in total if pair not in present]
        if missing:
            await conn.execute(
                insert(self.positions),
                [
                    {"sku": s, "location_id": loc, "on_hand": 0, "version": 0, "updated_at": now}
                    for s, loc in missing
                ],
            )
        await conn.execute(
            update(self.positions)
            .where((c.sku == bindparam("p_sku")) & (c.location_id == bindparam("p_location")))
            .values(
                on_hand=c.on_hand + bindparam("p_delta"),
                version=c.version + bindparam("p_moves"),
                updated_at=now,
            ),
            [
                {"p_sku": s, "p_location": loc, "p_delta": delta, "p_moves": count}
                for (s, loc), (delta, count) in total.items()
            ],
        )
        rows = (
            await conn.execute(select(c.sku, c.location_id, c.on_hand, c.version).where(in_pairs))
        ).all()
        return {
            (r.sku, r.location_id): (int(r.on_hand), int(r.version))
            for r in rows
            if (r.sku, r.location_id) in total
        }

    # postings

    async def next_numbers(self, conn: AsyncConnection, name: str, count: int) -> int:
        """Take `count` numbers of the sequence `name`; returns the first of them."""
        where = self.sequences.c.name == name
        result = await conn.execute(
            update(self.sequences).where(where).values(value=self.sequences.c.value + count)
        )
        if not result.rowcount:
            await conn.execute(insert(self.sequences).values(name=name, value=count))
        last = int((await conn.execute(select(self.sequences.c.value).where(where))).scalar_one())
        return last - count + 1

    async def fingerprints(self, conn: AsyncConnection, ids: Sequence[str]) -> dict[str, bytes]:
        """posting id → fingerprint of the booked content, for those of `ids` booked."""
        query = select(self.postings.c.posting_id, self.postings.c.fingerprint).where(
            self.postings.c.posting_id.in_(list(ids))
        )
        return {r.posting_id: bytes(r.fingerprint) for r in (await conn.execute(query)).all()}

    async def insert_postings(
        self, conn: AsyncConnection, booked: Sequence[tuple[PostingRecord, bytes]]
    ) -> None:
        """Postings with their lines (record, fingerprint), two statements for all."""
        if not booked:
            return
        await conn.execute(
            insert(self.postings),
            [
                {
                    "posting_id": record.posting_id,
                    "kind": record.kind,
                    "order_id": record.order_id,
                    "fingerprint": fingerprint,
                    "document_number": record.document_number,
                    "amount": record.amount.amount,
                    "currency": record.amount.currency,
                    "occurred_at": record.occurred_at,
                    "booked_at": record.booked_at,
                }
                for record, fingerprint in booked
            ],
        )
        await conn.execute(
            insert(self.posting_lines),
            [
                {
                    "posting_id": record.posting_id,
                    "line_no": n,
                    "sku": line.sku,
                    "location_id": line.location_id,
                    "quantity": line.quantity,
                    "unit_amount": line.unit_price.amount,
                    "discount": line.discount,
                    "currency": line.unit_price.currency,
                }
                for record, _ in booked
                for n, line in enumerate(record.lines, 1)
            ],
        )

    async def postings_by_id(
        self, conn: AsyncConnection, ids: Sequence[str]
    ) -> list[PostingRecord]:
        if not ids:
            return []
        heads = (
            await conn.execute(
                select(self.postings)
                .where(self.postings.c.posting_id.in_(list(ids)))
                .order_by(self.postings.c.posting_id)
            )
        ).all()
        lines = (
            await conn.execute(
                select(self.posting_lines)
                .where(self.posting_lines.c.posting_id.in_(list(ids)))
                .order_by(self.posting_lines.c.posting_id, self.posting_lines.c.line_no)
            )
        ).all()
        by_posting: dict[str, list[PostingLine]] = {}
        for r in lines:
            by_posting.setdefault(r.posting_id, []).append(
                PostingLine(
                    sku=r.sku,
                    location_id=r.location_id,
                    quantity=r.quantity,
                    unit_price=Money(r.unit_amount, r.currency),
                    discount=r.discount,
                )
            )
        return [
            PostingRecord(
                posting_id=h.posting_id,
                kind=h.kind,
                order_id=h.order_id,
                document_number=h.document_number,
                booked_at=as_utc(h.booked_at),
                occurred_at=as_utc(h.occurred_at),
                amount=Money(h.amount, h.currency),
                lines=by_posting.get(h.posting_id, []),
            )
            for h in heads
        ]

    async def posting_ids(
        self,
        conn: AsyncConnection,
        *,
        order_id: str | None,
        sku: str | None,
        kind: str | None,
        after: str | None,
        limit: int,
    ) -> list[str]:
        query = select(self.postings.c.posting_id).order_by(self.postings.c.posting_id).limit(limit)
        if order_id:
            query = query.where(self.postings.c.order_id == order_id)
        if kind:
            query = query.where(self.postings.c.kind == kind)
        if after:
            query = query.where(self.postings.c.posting_id > after)
        if sku:
            query = query.where(
                self.postings.c.posting_id.in_(
                    select(self.posting_lines.c.posting_id).where(self.posting_lines.c.sku == sku)
                )
            )
        return [r.posting_id for r in (await conn.execute(query)).all()]

    async def totals(self, conn: AsyncConnection, sku: str) -> dict[str, tuple[int, int]]:
        """kind → (postings, units) for one SKU."""
        query = (
            select(
                self.postings.c.kind,
                func.count(func.distinct(self.postings.c.posting_id)),
                func.coalesce(func.sum(self.posting_lines.c.quantity), 0),
            )
            .select_from(self.posting_lines.join(self.postings))
            .where(self.posting_lines.c.sku == sku)
            .group_by(self.postings.c.kind)
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in (await conn.execute(query)).all()}

    # adjustments

    async def adjustment(
        self, conn: AsyncConnection, adjustment_id: str
    ) -> tuple[bytes, InventoryPosition] | None:
        row = (
            await conn.execute(
                select(self.adjustments).where(self.adjustments.c.adjustment_id == adjustment_id)
            )
        ).first()
        if row is None:
            return None
        return bytes(row.fingerprint), InventoryPosition(
            sku=row.sku,
            location_id=row.location_id,
            on_hand=row.on_hand_after,
            version=row.version_after,
            updated_at=as_utc(row.booked_at),
        )

    async def insert_adjustment(
        self,
        conn: AsyncConnection,
        adjustment_id: str,
        fingerprint: bytes,
        after: InventoryPosition,
    ) -> None:
        await conn.execute(
            insert(self.adjustments).values(
                adjustment_id=adjustment_id,
                fingerprint=fingerprint,
                sku=after.sku,
                location_id=after.location_id,
                on_hand_after=after.on_hand,
                version_after=after.version,
                booked_at=after.updated_at,
            )
        )


def _product(r: object) -> Product:
    return Product(
        sku=r.sku,  # type: ignore[attr-defined]
        name=r.name,  # type: ignore[attr-defined]
        price=Money(r.price_amount, r.currency),  # type: ignore[attr-defined]
        active=r.active,  # type: ignore[attr-defined]
        category=r.category,  # type: ignore[attr-defined]
    )


def _position(r: object) -> InventoryPosition:
    return InventoryPosition(
        sku=r.sku,  # type: ignore[attr-defined]
        location_id=r.location_id,  # type: ignore[attr-defined]
        on_hand=r.on_hand,  # type: ignore[attr-defined]
        version=r.version,  # type: ignore[attr-defined]
        updated_at=as_utc(r.updated_at),  # type: ignore[attr-defined]
    )
