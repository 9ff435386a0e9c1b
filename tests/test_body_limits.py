"""Body limits agree end to end: what the gateway lets through to a route, the service
behind it accepts (a valid 500-transaction POS batch was refused with 413 by the POS after
the gateway had let it pass), and every limit is in the published spec."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from gateway.config import load_config
from services.mesh import SERVICES
from tests.conftest import Running

ROOT = Path(__file__).parent.parent


def test_every_routes_body_limit_fits_its_service() -> None:
    config = load_config(ROOT / "deploy/config/gateway.toml")
    for api in config.apis:
        settings_type, _ = SERVICES[config.upstreams[api.upstream].service]
        accepted = settings_type().max_body_bytes
        for route in api.routes:
            limit = config.max_body_bytes if route.max_body_bytes is None else route.max_body_bytes
            assert limit <= accepted, (api.name, route.path, limit, accepted)


def test_the_published_spec_states_each_operations_body_limit() -> None:
    spec = json.loads((ROOT / "openapi/gateway.json").read_text())
    with_body = [
        (path, op)
        for path, item in spec["paths"].items()
        for op in item.values()
        if isinstance(op, dict) and "requestBody" in op and path.startswith("/v")
    ]
    assert with_body
    for path, op in with_body:
        assert isinstance(op["x-max-body-bytes"], int), path
        assert {"408", "413", "415"} <= set(op["responses"]), path
    batches = spec["paths"]["/v1/pos/transactions/batches"]["post"]
    assert batches["x-max-body-bytes"] == 4 * 1024 * 1024


def batch(store: str, n: int) -> dict[str, Any]:
    return {
        "transactions": [
            {
                "transaction_id": str(uuid.uuid4()),
                "kind": "sale",
                "store_id": store,
                "till_id": "T1",
                "sequence": i + 1,
                "occurred_at": "2026-11-24T09:00:00Z",
                "lines": [
                    {
                        "sku": f"SKU-{(i % 50) + 1:06d}",
                        "quantity": 1,
                        "unit_price": {"amount": 1999, "currency": "EUR"},
                    }
                    for _ in range(25)
                ],
                "tenders": [{"kind": "card", "amount": {"amount": 25 * 1999, "currency": "EUR"}}],
            }
            for i in range(n)
        ]
    }


async def test_a_full_pos_batch_of_more_than_a_mebibyte_is_accepted(
    mesh: Running, bearer: Any
) -> None:
    body = batch("STORE-001", 500)
    size = len(json.dumps(body, separators=(",", ":")))
    assert size > 1024 * 1024  # past the default limit, within the route's
    till = bearer("till-1", "pos:write", store_id="STORE-001")
    r = await mesh.client.post("/v1/pos/transactions/batches", json=body, headers=till)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["accepted"] == 500
