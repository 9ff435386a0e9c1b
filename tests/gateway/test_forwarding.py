"""Forwarding: in-process and over HTTP, what the upstream sees and what the client gets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway, GatewaySettings, create_gateway
from services.kit.registry import Registry
from tests.conftest import Running
from tests.gateway.echo import echo
from tests.support import ServedApp, free_port

CONFIG = """
max_body_bytes = 2048

[upstreams.echo]
service = "echo"
timeout_s = {timeout}

[[apis]]
name = "things"
upstream = "echo"

  [[apis.versions]]
  version = "v1"
  status = "retired"
  successor = "v3"

  [[apis.versions]]
  version = "v2"
  prefix = "/api"
  status = "deprecated"
  deprecated_at = 2026-06-01T00:00:00Z
  sunset = 2027-01-31T00:00:00Z
  successor = "v3"

  [[apis.versions]]
  version = "v3"
  prefix = "/api"

  [[apis.routes]]
  path = "/**"
  methods = ["GET", "POST"]
  auth = "none"
"""


def gateway(tmp_path: Path, registry: Registry, timeout: float = 2.0) -> Gateway:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.replace("{timeout}", str(timeout)))
    settings = GatewaySettings(gateway_config=str(path), data_dir=str(tmp_path), redis_mode="off")
    return create_gateway(settings, registry, spec=lambda: {})


@pytest.fixture
async def in_process(tmp_path: Path) -> AsyncIterator[Running]:
    registry = Registry(apps={"echo": echo})
    async with Running(gateway(tmp_path, registry, timeout=0.5)) as running:
        yield running


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ServedApp]:
    server = ServedApp("tests.gateway.echo:create", {}).start(ready_path="/readyz")
    yield server
    server.stop()


@pytest.fixture
async def over_http(tmp_path: Path, echo_server: ServedApp) -> AsyncIterator[Running]:
    registry = Registry(urls={"echo": echo_server.url})
    async with Running(gateway(tmp_path, registry, timeout=0.5)) as running:
        yield running


@pytest.fixture(params=["in_process", "over_http"])
def gw(request: pytest.FixtureRequest) -> Running:
    running: Running = request.getfixturevalue(request.param)
    return running


def headers_of(body: dict[str, Any]) -> dict[str, str]:
    return {n: v for n, v in body["headers"]}


async def test_path_query_and_body_reach_the_upstream(gw: Running) -> None:
    r = await gw.client.post("/v2/things/a/b?x=1&y=%20z", content=b"x" * 1500)
    assert r.status_code == 200
    body = r.json()
    assert body["method"] == "POST"
    assert body["path"] == "/api/a/b"
    assert body["query"] == "x=1&y=%20z"
    assert body["body_length"] == 1500


@pytest.mark.parametrize(
    ("sent", "decoded", "raw"),
    [
        ("/v3/things/orders/%23/ready", "/api/orders/#/ready", "/api/orders/%23/ready"),
        ("/v3/things/a%3Fb/c", "/api/a?b/c", "/api/a%3Fb/c"),
        ("/v3/things/caf%C3%A9/%25", "/api/café/%", "/api/caf%C3%A9/%25"),
        ("/v3/things/a%2Fb", "/api/a/b", "/api/a%2Fb"),
    ],
)
async def test_the_path_reaches_the_upstream_as_the_client_wrote_it(
    gw: Running, sent: str, decoded: str, raw: str
) -> None:
    """Percent-encoding is kept: `%23` or `%3F` never cut the path the gateway authorized
    (before, `/orders/%23/ready` arrived upstream as `/orders/#/ready`, routed as `/orders`)."""
    r = await gw.client.get(sent + "?q=1")
    body = r.json()
    assert (body["path"], body["query"]) == (decoded, "q=1")
    assert body["raw_path"] == raw


async def test_forwarding_headers_and_hop_by_hop_rules(gw: Running) -> None:
    r = await gw.client.get(
        "/v2/things/h",
        headers={
            "connection": "keep-alive, x-drop-me",
            "x-drop-me": "secret",
            "keep-alive": "timeout=5",
            "x-forwarded-for": "10.0.0.1",
            "forwarded": "for=evil",
            "x-retailmesh-identity": "forged",
            "x-custom": "kept",
        },
    )
    seen = headers_of(r.json())
    assert "x-drop-me" not in seen and "keep-alive" not in seen
    # the client's identity header is replaced by the gateway's own, signed one
    identity = gw.app.runtime.identity.verify(seen["x-retailmesh-identity"])
    assert identity.kind == "anonymous" and identity.consumer == "ip:203.0.113.7"
    assert seen["x-custom"] == "kept"
    assert seen["x-forwarded-for"] == "10.0.0.1, 203.0.113.7"
    assert seen["forwarded"].startswith("for=203.0.113.7;proto=http")
    assert seen["x-forwarded-prefix"] == "/v2/things"
    # the upstream's hop-by-hop headers do not reach the client
    assert "x-upstream-secret" not in r.headers
    assert r.headers["x-upstream"] == "echo"


async def test_request_id_is_kept_when_well_formed_and_replaced_otherwise(gw: Running) -> None:
    r = await gw.client.get("/v2/things/rid", headers={"x-request-id": "client-id-0001"})
    assert r.headers["x-request-id"] == "client-id-0001"
    assert headers_of(r.json())["x-request-id"] == "client-id-0001"
    r = await gw.client.get("/v2/things/rid", headers={"x-request-id": "bad id\twith spaces"})
    rid = r.headers["x-request-id"]
    assert rid != "bad id\twith spaces" and len(rid) == 32
    assert headers_of(r.json())["x-request-id"] == rid


async def test_trace_context_is_propagated_or_started(gw: Running) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = await gw.client.get("/v2/things/t", headers={"traceparent": parent, "tracestate": "a=b"})
    seen = headers_of(r.json())
    assert seen["traceparent"] == parent and seen["tracestate"] == "a=b"
    r = await gw.client.get("/v2/things/t", headers={"traceparent": "garbage"})
    started = headers_of(r.json())["traceparent"]
    assert started != "garbage" and started.startswith("00-") and len(started) == 55


async def test_unknown_api_version_and_retired_version(gw: Running) -> None:
    c = gw.client
    r = await c.get("/v2/nothing/x")
    assert (r.status_code, r.json()["type"]) == (404, "https://retailmesh.dev/problems/not-found")
    r = await c.get("/v9/things/x")
    assert r.status_code == 404 and r.json()["versions"] == ["v1", "v2", "v3"]
    r = await c.get("/v1/things/x")
    assert r.status_code == 410
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["successor"] == "v3"
    assert r.headers["link"] == '</v3/things/x>; rel="successor-version"'
    r = await c.get("/nowhere")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_deprecated_version_answers_with_its_lifecycle_headers(gw: Running) -> None:
    r = await gw.client.get("/v2/things/items/1?x=1")
    assert r.status_code == 200
    assert r.headers["deprecation"] == "@1780272000"  # RFC 9745: a Structured Field Date
    assert r.headers["sunset"] == "Sun, 31 Jan 2027 00:00:00 GMT"  # RFC 8594: an HTTP-date
    assert r.headers["link"] == '</v3/things/items/1>; rel="successor-version"'
    current = await gw.client.get("/v3/things/items/1")
    assert "deprecation" not in current.headers and "sunset" not in current.headers


async def test_oversized_body_is_refused_before_the_upstream(gw: Running) -> None:
    r = await gw.client.post("/v2/things/big", content=b"x" * 4096)
    assert r.status_code == 413
    assert r.json()["type"].endswith("/payload-too-large")


async def test_slow_upstream_answers_504_problem(gw: Running) -> None:
    r = await gw.client.get("/v2/things/slow")
    assert r.status_code == 504
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/upstream-timeout")


async def test_unreachable_upstream_answers_502_problem(tmp_path: Path) -> None:
    registry = Registry(urls={"echo": f"http://127.0.0.1:{free_port()}"})
    async with Running(gateway(tmp_path, registry)) as running:
        r = await running.client.get("/v2/things/x")
    assert r.status_code == 502
    assert r.json()["type"].endswith("/bad-gateway")
