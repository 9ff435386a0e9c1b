"""Deterministic demo data: 200 products, 10 stores, 2 distribution centres, stock for each."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert

if TYPE_CHECKING:
    from services.erp.store import ErpTables
    from services.kit.storage import Database

__all__ = ["PRODUCT_COUNT", "STORES", "seed_erp"]

PRODUCT_COUNT = 200
STORES = [
    ("STORE-001", "Amsterdam Centraal", "nl-north"),
    ("STORE-002", "Rotterdam Lijnbaan", "nl-south"),
    ("STORE-003", "Utrecht Hoog Catharijne", "nl-north"),
    ("STORE-004", "Eindhoven Piazza", "nl-south"),
    ("STORE-005", "Groningen Herestraat", "nl-north"),
    ("STORE-006", "Antwerp Meir", "be"),
    ("STORE-007", "Brussels Nieuwstraat", "be"),
    ("STORE-008", "Ghent Veldstraat", "be"),
    ("STORE-009", "Cologne Schildergasse", "de-west"),
    ("STORE-010", "Dusseldorf Konigsallee", "de-west"),
]
DCS = [
    ("DC-NORTH", "Distribution centre North", "nl-north"),
    ("DC-SOUTH", "Distribution centre South", "nl-south"),
]
_ADJECTIVES = [
    "Classic",
    "Organic",
    "Slim",
    "Urban",
    "Trail",
    "Soft",
    "Bold",
    "Pure",
    "Warm",
    "Light",
]
_NOUNS = [
    "Tee",
    "Hoodie",
    "Sneaker",
    "Backpack",
    "Water Bottle",
    "Jacket",
    "Beanie",
    "Scarf",
    "Sock Pack",
    "Cap",
    "Jeans",
    "Shorts",
    "Belt",
    "Wallet",
    "Umbrella",
    "Lamp",
    "Mug",
    "Notebook",
    "Headphones",
    "Charger",
]


async def seed_erp(db: Database, t: ErpTables, *, reset: bool = False) -> bool:
    """Load the demo data when the ERP is empty (or always, with `reset`); True if loaded."""
    async with db.write() as conn:
        if not reset and await t.count_products(conn) > 0:
            return False
        for table in (
            t.posting_lines,
            t.postings,
            t.adjustments,
            t.positions,
            t.products,
            t.locations,
            t.sequences,
        ):
            await conn.execute(delete(table))
        rng = random.Random(20261124)
        products = [
            {
                "sku": f"SKU-{n:06d}",
                "name": f"{_ADJECTIVES[n % len(_ADJECTIVES)]} {_NOUNS[n % len(_NOUNS)]} {n}",
                "price_amount": rng.randrange(299, 19999, 100),
                "currency": "EUR",
                "active": True,
            }
            for n in range(1, PRODUCT_COUNT + 1)
        ]
        await conn.execute(insert(t.products), products)
        locations = [{"id": i, "name": n, "kind": "store", "region": r} for i, n, r in STORES]
        locations += [{"id": i, "name": n, "kind": "dc", "region": r} for i, n, r in DCS]
        await conn.execute(insert(t.locations), locations)
        now = datetime.now(UTC)
        positions = [
            {
                "sku": p["sku"],
                "location_id": loc["id"],
                "on_hand": rng.randint(200, 2000) if loc["kind"] == "dc" else rng.randint(0, 40),
                "version": 1,
                "updated_at": now,
            }
            for p in products
            for loc in locations
        ]
        await conn.execute(insert(t.positions), positions)
    return True
