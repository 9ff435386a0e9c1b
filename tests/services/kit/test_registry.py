"""Calling another service by name: in-process or over HTTP, with timeouts on every call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.models import Product
from services.erp.app import ErpSettings, create_app
from services.kit.identity import SigningClient
from services.kit.registry import Registry, ServiceTimeout, ServiceUnreachable, parse_service_urls
from tests.conftest import Running
from tests.gateway.echo import echo
from tests.support import ServedApp, free_port


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ServedApp]:
    server = ServedApp("tests.gateway.echo:create", {}).start()
    yield server
    server.stop()


async def test_in_process_call_returns_the_services_answer(tmp_path: Path) -> None:
    app = create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))
    registry = Registry(apps={"erp": app})
    async with Running(app):
        # a service calls as itself (the runtime's client signs its identity) ...
        signed = SigningClient(registry.client("erp"), "inventory", app.state.runtime.identity)
        r = await signed.request("GET", "/products/SKU-000003")
        # ... and an unsigned call is refused, in-process as over HTTP
        bare = await registry.client("erp").request("GET", "/products/SKU-000003")
    assert r.status == 200
    assert r.decode(Product).sku == "SKU-000003"
    assert bare.status == 401


async def test_http_call_and_timeout(echo_server: ServedApp) -> None:
    registry = Registry(urls={"echo": echo_server.url}, timeout=0.3)
    try:
        r = await registry.client("echo").request("POST", "/x", params={"a": 1}, json={"k": "v"})
        assert r.status == 200 and r.headers["x-upstream"] == "echo"
        assert b'"query":"a=1"' in r.body
        with pytest.raises(ServiceTimeout):
            await registry.client("echo").request("GET", "/slow")
    finally:
        await registry.close()


async def test_in_process_timeout() -> None:
    registry = Registry(apps={"echo": echo}, timeout=0.2)
    with pytest.raises(ServiceTimeout):
        await registry.client("echo").request("GET", "/slow")


async def test_unreachable_and_unknown_services() -> None:
    registry = Registry(urls={"gone": f"http://127.0.0.1:{free_port()}"})
    try:
        with pytest.raises(ServiceUnreachable):
            await registry.client("gone").request("GET", "/")
        with pytest.raises(ServiceUnreachable):
            registry.client("nobody")
    finally:
        await registry.close()


def test_service_urls_are_parsed_and_checked() -> None:
    assert parse_service_urls("erp=http://h:1, pos=https://p") == {
        "erp": "http://h:1",
        "pos": "https://p",
    }
    with pytest.raises(ValueError, match="bad service URL"):
        parse_service_urls("erp=ftp://h")
