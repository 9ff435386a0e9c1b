"""The mesh mode: the ERP and the gateway as separate processes talking HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ServedApp


@pytest.fixture
def mesh_processes(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[str]:
    env = {
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "REDIS_MODE": "required",
        "LOG_LEVEL": "WARNING",
    }
    erp = ServedApp("services.erp.app:create_app_from_env", env).start()
    gateway = ServedApp("services.mesh:gateway_from_env", {**env, "SERVICE_URLS": f"erp={erp.url}"})
    try:
        gateway.start()
        yield gateway.url
    finally:
        gateway.stop()
        erp.stop()


def test_a_request_crosses_the_gateway_process_to_the_erp_process(mesh_processes: str) -> None:
    with httpx.Client(base_url=mesh_processes, timeout=10) as client:
        r = client.get("/v1/erp/products/SKU-000001", headers={"x-request-id": "mesh-test-0001"})
        assert r.status_code == 200
        assert r.json()["sku"] == "SKU-000001"
        assert r.headers["x-request-id"] == "mesh-test-0001"
        assert r.headers["server"] == "granian"
        bad = client.post("/v1/erp/postings/orders", content=b"{not json")
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        spec = client.get("/openapi.json").json()
        assert "/v1/erp/products/{sku}" in spec["paths"]
