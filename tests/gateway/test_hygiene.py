"""Request hygiene at the door: body and header sizes, methods, CORS per route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import GatewaySettings, create_gateway
from services.kit.registry import Registry
from tests.conftest import Running
from tests.gateway.echo import echo

CONFIG = """
max_body_bytes = 4096

[upstreams.echo]
service = "echo"

[[apis]]
name = "things"
upstream = "echo"
  [[apis.versions]]
  version = "v1"

  [[apis.routes]]
  path = "/small"
  methods = ["POST"]
  auth = "none"
  max_body_bytes = 10

  [[apis.routes]]
  path = "/web/**"
  methods = ["GET", "POST"]
  auth = "none"
  cors_origins = ["https://shop.example.com"]

  [[apis.routes]]
  path = "/**"
  methods = ["GET", "POST"]
  auth = "none"
"""


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Running]:
    (tmp_path / "gateway.toml").write_text(CONFIG)
    settings = GatewaySettings(
        gateway_config=str(tmp_path / "gateway.toml"), data_dir=str(tmp_path), redis_mode="off"
    )
    async with Running(
        create_gateway(settings, Registry(apps={"echo": echo}), spec=lambda: {})
    ) as running:
        yield running


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_route_body_limit(gw: Running) -> None:
    assert (await gw.client.post("/v1/things/small", content=b"0123456789")).status_code == 200
    r = await gw.client.post("/v1/things/small", content=b"0123456789x")
    assert r.status_code == 413 and "10 bytes" in r.json()["detail"]
    assert (await gw.client.post("/v1/things/other", content=b"x" * 4096)).status_code == 200
    assert (await gw.client.post("/v1/things/other", content=b"x" * 4097)).status_code == 413


async def test_chunked_bodies_are_bounded_too(gw: Running) -> None:
    ok = await gw.client.post("/v1/things/other", content=chunks(b"a" * 2000, b"b" * 2000))
    assert ok.status_code == 200 and ok.json()["body_length"] == 4000
    big = await gw.client.post("/v1/things/other", content=chunks(b"a" * 3000, b"b" * 3000))
    assert big.status_code == 413


async def test_oversized_headers_are_431(gw: Running) -> None:
    r = await gw.client.get("/v1/things/x", headers={"x-big": "a" * 17000})
    assert r.status_code == 431
    many = {f"x-h{i}": "v" for i in range(120)}
    assert (await gw.client.get("/v1/things/x", headers=many)).status_code == 431


async def test_undeclared_method_is_405_with_allow(gw: Running) -> None:
    r = await gw.client.delete("/v1/things/x")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    options = await gw.client.options("/v1/things/x")
    assert options.status_code == 204 and options.headers["allow"] == "GET, POST, OPTIONS"


async def test_cors_preflight_and_response_headers_per_route(gw: Running) -> None:
    c = gw.client
    preflight = {
        "origin": "https://shop.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    r = await c.options("/v1/things/web/cart", headers=preflight)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"]

    evil = {**preflight, "origin": "https://evil.example"}
    assert (await c.options("/v1/things/web/cart", headers=evil)).status_code == 403
    # a route without CORS refuses every browser origin
    assert (await c.options("/v1/things/x", headers=preflight)).status_code == 403

    r = await c.get("/v1/things/web/cart", headers={"origin": "https://shop.example.com"})
    assert r.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert "ratelimit" in r.headers["access-control-expose-headers"]
    r = await c.get("/v1/things/web/cart", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_a_browser_reads_the_refusals_of_a_route_it_may_call(gw: Running) -> None:
    # a 413 (as a 401) carries CORS: the page learns why, rather than a network error
    r = await gw.client.post(
        "/v1/things/web/cart", content=b"x" * 5000, headers={"origin": "https://shop.example.com"}
    )
    assert r.status_code == 413
    assert r.headers["access-control-allow-origin"] == "https://shop.example.com"


async def test_control_characters_in_a_path_are_400_not_forwarded(gw: Running) -> None:
    for path in ("/v1/things/a%0Ab", "/v1/things/%00", "/v1/things/x%7F/y", "/v1/things/%0A"):
        r = await gw.client.get(path)
        assert r.status_code == 400, path
        assert r.json()["type"].endswith("/bad-path")
    assert (await gw.client.get("/v1/things/a%20b")).status_code == 200  # a space is fine
