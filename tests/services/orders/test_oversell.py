"""The oversell test end to end: 1,000 concurrent checkouts through the gateway for a SKU
with 100 units. Exactly 100 confirmed, 900 refused with 409, the ERP books exactly 100
units, and available-to-sell ends at 0."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.services.orders.conftest import SKU, Shop, cart
from tests.support import settle


async def test_1000_checkouts_for_100_units_confirm_exactly_100(shop: Shop) -> None:
    await shop.set_on_hand(SKU, "DC-NORTH", 60)
    await shop.set_on_hand(SKU, "DC-SOUTH", 40)
    assert await shop.ats(SKU) == 100
    results = await asyncio.gather(
        *(shop.checkout_to_the_end(f"customer-{n}", cart((SKU, 1))) for n in range(1000))
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 100, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(409) == 900, {s: statuses.count(s) for s in set(statuses)}
    assert all(r.json()["type"].endswith("/out-of-stock") for r in results if r.status_code == 409)
    confirmed = [r.json()["order_id"] for r in results if r.status_code == 201]
    assert await shop.ats(SKU) == 0

    async def booked_units() -> int:
        totals: dict[str, Any] = (await shop.erp.get(f"/postings/totals/{SKU}")).json()
        return int(totals["ordered_units"])

    await settle(booked_units, lambda units: units >= 100)  # as long as postings arrive
    totals = (await shop.erp.get(f"/postings/totals/{SKU}")).json()
    assert totals["ordered_units"] == 100 and totals["order_postings"] == 100
    booked = {(await shop.postings(oid))[0]["order_id"] for oid in confirmed[:10]}
    assert booked == set(confirmed[:10])
    # the ERP's stock moved and the reservations were committed: still 0, never below
    positions = (await shop.erp.get(f"/inventory/{SKU}")).json()["positions"]
    web = {p["location_id"]: p["on_hand"] for p in positions if p["location_id"].startswith("DC")}
    assert web == {"DC-NORTH": 0, "DC-SOUTH": 0}
    assert await shop.ats(SKU) == 0
