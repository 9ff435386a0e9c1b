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
#: id, name, region, then where: country, postcode, latitude, longitude
STORES = [
    ("STORE-001", "Amsterdam Centraal", "nl-north", "NL", "1012 AB", 52.3791, 4.9003),
    ("STORE-002", "Rotterdam Lijnbaan", "nl-south", "NL", "3012 EL", 51.9205, 4.4753),
    ("STORE-003", "Utrecht Hoog Catharijne", "nl-north", "NL", "3511 ER", 52.0894, 5.1110),
    ("STORE-004", "Eindhoven Piazza", "nl-south", "NL", "5611 AZ", 51.4393, 5.4797),
    ("STORE-005", "Groningen Herestraat", "nl-north", "NL", "9711 LM", 53.2143, 6.5665),
    ("STORE-006", "Antwerp Meir", "be", "BE", "2000", 51.2181, 4.4050),
    ("STORE-007", "Brussels Nieuwstraat", "be", "BE", "1000", 50.8522, 4.3567),
    ("STORE-008", "Ghent Veldstraat", "be", "BE", "9000", 51.0514, 3.7214),
    ("STORE-009", "Cologne Schildergasse", "de-west", "DE", "50667", 50.9364, 6.9517),
    ("STORE-010", "Dusseldorf Konigsallee", "de-west", "DE", "40212", 51.2229, 6.7795),
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
#: what is sold, and the category the web shop files it under
_NOUNS = [
    ("Tee", "apparel"),
    ("Hoodie", "apparel"),
    ("Sneaker", "footwear"),
    ("Backpack", "bags"),
    ("Water Bottle", "outdoor"),
    ("Jacket", "apparel"),
    ("Beanie", "accessories"),
    ("Scarf", "accessories"),
    ("Sock Pack", "apparel"),
    ("Cap", "accessories"),
    ("Jeans", "apparel"),
    ("Shorts", "apparel"),
    ("Belt", "accessories"),
    ("Wallet", "accessories"),
    ("Umbrella", "outdoor"),
    ("Lamp", "home"),
    ("Mug", "home"),
    ("Notebook", "home"),
    ("Headphones", "electronics"),
    ("Charger", "electronics"),
]


_NOWHERE = {"country": None, "postcode": None, "latitude": None, "longitude": None}


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
                "name": f"{_ADJECTIVES[n % len(_ADJECTIVES)]} {_NOUNS[n % len(_NOUNS)][0]} {n}",
                "category": _NOUNS[n % len(_NOUNS)][1],
                "price_amount": rng.randrange(299, 19999, 100),
                "currency": "EUR",
                "active": True,
            }
            for n in range(1, PRODUCT_COUNT + 1)
        ]
        await conn.execute(insert(t.products), products)
        locations = [
            {
                "id": i,
                "name": n,
                "kind": "store",
                "region": r,
                "country": country,
                "postcode": postcode,
                "latitude": lat,
                "longitude": lon,
            }
            for i, n, r, country, postcode, lat, lon in STORES
        ]
        locations += [
            {"id": i, "name": n, "kind": "dc", "region": r, **_NOWHERE} for i, n, r in DCS
        ]
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
