"""A store sale lowers the SKU's available-to-sell (POS → ERP → ATS). How fast is a
benchmark's question, not this test's: it waits for progress, whatever the machine."""

from __future__ import annotations

import uuid

from tests.conftest import dev_issuer
from tests.services.inventory.conftest import Mesh
from tests.support import settle

SKU = "SKU-000066"


async def test_a_store_sale_lowers_ats(mesh: Mesh, inventory_env: dict[str, str]) -> None:
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
        "tenders": [{"kind": "cash", "amount": {"amount": 2997, "currency": "EUR"}}],
    }
    r = await mesh.running.client.post(
        "/v1/pos/transactions/batches",
        json={"transactions": [sale]},
        headers={"Authorization": f"Bearer {till}"},
    )
    assert r.json()["accepted"] == 1
    # the sale reaches the ATS through the ERP's stock event: waited for by progress
    await settle(store_ats, lambda ats: ats == 9)
