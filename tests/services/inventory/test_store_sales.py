"""A store sale lowers the SKU's available-to-sell within a second (POS → ERP → ATS)."""

from __future__ import annotations

import asyncio
import time
import uuid

from tests.conftest import dev_issuer
from tests.services.inventory.conftest import Mesh

SKU = "SKU-000066"


async def test_a_store_sale_lowers_ats_within_one_second(
    mesh: Mesh, inventory_env: dict[str, str]
) -> None:
    await mesh.set_on_hand(SKU, "STORE-001", 12)

    async def store_ats() -> int:
        r = await mesh.inventory.get(f"/availability/{SKU}", params={"channel": "pickup"})
        return int(next(x["ats"] for x in r.json()["locations"] if x["location_id"] == "STORE-001"))

    assert await store_ats() == 12
    till = dev_issuer(inventory_env).mint("till", scopes=["pos:write"], store_id="STORE-001")
    sale = {
        "transaction_id": str(uuid.uuid4()),
        "kind": "sale",
        "store_id": "STORE-001",
        "till_id": "T1",
        "sequence": 1,
        "occurred_at": "2026-11-24T09:00:00Z",
        "lines": [{"sku": SKU, "quantity": 3, "unit_price": {"amount": 999, "currency": "EUR"}}],
    }
    r = await mesh.running.client.post(
        "/v1/pos/transactions/batches",
        json={"transactions": [sale]},
        headers={"Authorization": f"Bearer {till}"},
    )
    assert r.json()["accepted"] == 1
    sold_at = time.monotonic()
    while await store_ats() != 9:
        assert time.monotonic() - sold_at < 1.0, "the sale did not reach the ATS within 1 s"
        await asyncio.sleep(0.02)
