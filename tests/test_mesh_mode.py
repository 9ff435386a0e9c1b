"""The mesh mode: the ERP and the gateway as separate processes talking HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import dev_issuer
from tests.support import ServedApp


@pytest.fixture
def mesh_processes(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> Iterator[tuple[str, dict[str, str]]]:
    env = {
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "REDIS_MODE": "required",
        "LOG_LEVEL": "WARNING",
    }
    erp = ServedApp("services.erp.app:create_app_from_env", env)
    inventory = ServedApp(
        "services.inventory.app:create_app_from_env", {**env, "SERVICE_URLS": f"erp={erp.url}"}
    )
    pos = ServedApp(
        "services.pos.app:create_app_from_env", {**env, "SERVICE_URLS": f"erp={erp.url}"}
    )
    loyalty = ServedApp("services.loyalty.app:create_app_from_env", env)
    deps = f"erp={erp.url},inventory={inventory.url},loyalty={loyalty.url}"
    orders = ServedApp(  # the POS too: a store sale's return by its receipt
        "services.orders.app:create_app_from_env", {**env, "SERVICE_URLS": f"{deps},pos={pos.url}"}
    )
    web = ServedApp(
        "services.web.app:create_app_from_env",
        {**env, "SERVICE_URLS": f"{deps},orders={orders.url}"},
    )
    store = ServedApp(
        "services.store.app:create_app_from_env",
        {**env, "SERVICE_URLS": f"{deps},orders={orders.url},pos={pos.url}"},
    )
    partner = ServedApp(
        "services.partner.app:create_app_from_env",
        {**env, "SERVICE_URLS": f"{deps},orders={orders.url}"},
    )
    care = ServedApp(
        "services.care.app:create_app_from_env",
        {**env, "SERVICE_URLS": f"{deps},orders={orders.url}"},
    )
    channels = f"web={web.url},store={store.url},partner={partner.url},care={care.url}"
    urls = f"{deps},pos={pos.url},orders={orders.url},{channels}"
    gateway = ServedApp("services.mesh:gateway_from_env", {**env, "SERVICE_URLS": urls})
    try:
        ServedApp.start_together(
            [erp, inventory, pos, loyalty, orders, web, store, partner, care, gateway]
        )
        token = dev_issuer(env).mint("ops", roles=["admin"])
        yield gateway.url, {"Authorization": f"Bearer {token}"}
    finally:
        gateway.stop()
        care.stop()
        partner.stop()
        store.stop()
        web.stop()
        orders.stop()
        loyalty.stop()
        pos.stop()
        inventory.stop()
        erp.stop()


def test_a_request_crosses_the_gateway_process_to_the_erp_process(
    mesh_processes: tuple[str, dict[str, str]],
) -> None:
    base, admin = mesh_processes
    with httpx.Client(base_url=base, timeout=10) as client:
        r = client.get("/v1/erp/products/SKU-000001", headers={"x-request-id": "mesh-test-0001"})
        assert r.status_code == 200
        assert r.json()["sku"] == "SKU-000001"
        assert r.headers["x-request-id"] == "mesh-test-0001"
        assert r.headers["server"] == "granian"
        assert client.post("/v1/erp/postings/orders", json={}).status_code == 401
        bad = client.post(
            "/v1/erp/postings/orders",
            content=b"{not json",
            headers={**admin, "content-type": "application/json"},
        )
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        # the identity the gateway signs is accepted by the ERP in its own process
        posting = {
            "posting_id": "mesh-1",
            "order_id": "mesh-1",
            "lines": [
                {
                    "sku": "SKU-000001",
                    "location_id": "STORE-001",
                    "quantity": 1,
                    "unit_price": {"amount": 100, "currency": "EUR"},
                }
            ],
            "total": {"amount": 100, "currency": "EUR"},
            "occurred_at": "2026-11-24T10:00:00Z",
        }
        booked = client.post("/v1/erp/postings/orders", json=posting, headers=admin)
        assert booked.status_code == 201, booked.text
        # gateway → inventory process → ERP process, over HTTP both hops
        stock = client.get("/v1/inventory/availability/SKU-000001", headers=admin)
        assert stock.status_code == 200, stock.text
        assert "fwd=miss" in stock.headers["cache-status"]
        # a checkout: gateway → orders → inventory, loyalty and ERP processes
        checkout = client.post(
            "/v1/orders/orders",
            json={"lines": [{"sku": "SKU-000002", "quantity": 1}], "payment_reference": "psp-1"},
            headers={**admin, "Idempotency-Key": '"mesh-checkout-1"'},
        )
        assert checkout.status_code == 201, checkout.text
        assert checkout.json()["status"] == "confirmed"
        spec = client.get("/openapi.json").json()
        assert "/v1/erp/products/{sku}" in spec["paths"]
