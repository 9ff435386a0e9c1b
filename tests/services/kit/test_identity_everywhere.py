"""Every service refuses a missing, forged or expired identity on every route but health:
walked from each service's own OpenAPI document, so a new route is covered the day it lands.
(The guard is in the service, so the mesh mode, where anyone on the network can reach a
service's port, refuses the same; `tests/test_modes.py` checks it over HTTP.)"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services.kit.identity import IDENTITY_HEADER, Identity, IdentityCodec
from services.kit.openapi import openapi_document
from services.kit.registry import Registry
from services.mesh import SERVICES

OPEN = {"/healthz", "/readyz"}
ADMIN = Identity(kind="user", consumer="ops", sub="ops", roles=frozenset({"admin"}))


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for path, item in spec["paths"].items():
        if path in OPEN:
            continue
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                # a value every path parameter here accepts: ids and SKUs are strings
                dates = {
                    p["name"]
                    for p in op.get("parameters", ())
                    if p["in"] == "path" and p["schema"].get("format") == "date"
                }
                yield (
                    method.upper(),
                    re.sub(
                        r"\{([^}]+)\}",
                        lambda m, dates=dates: "2026-01-01" if m[1] in dates else "SKU-000001",
                        path,
                    ),
                )


def forged(identity: Identity) -> str:
    return IdentityCodec(b"not-the-mesh-secret-but-32-bytes-long!").sign(identity)


def expired(codec: IdentityCodec, identity: Identity) -> str:
    past = int(time.time()) - 3600
    claims = {
        "iss": "retailmesh-gateway",
        "aud": "retailmesh-internal",
        "iat": past,
        "exp": past + 60,
        "idn": {"kind": identity.kind, "consumer": identity.consumer, "roles": ["admin"]},
    }
    return jwt.encode(claims, codec._secret, algorithm="HS256")


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_every_route_refuses_a_caller_the_gateway_did_not_sign(
    service: str, tmp_path: Path
) -> None:
    settings_type, factory = SERVICES[service]
    app = factory(settings_type(data_dir=str(tmp_path), redis_mode="off"), registry=Registry())
    codec: IdentityCodec = app.state.runtime.identity
    ops = list(operations(openapi_document(app)))
    assert ops, f"{service} publishes no operation"
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for method, path in ops:
            for name, headers in (
                ("missing", {}),
                ("forged", {IDENTITY_HEADER: forged(ADMIN)}),
                ("expired", {IDENTITY_HEADER: expired(codec, ADMIN)}),
                ("garbage", {IDENTITY_HEADER: "not.a.token"}),
            ):
                r = await client.request(
                    method, path, headers=headers, json={} if method == "POST" else None
                )
                assert r.status_code == 401, (service, method, path, name, r.text)
                assert r.headers["content-type"] == "application/problem+json"
        for path in ("/schema", "/schema/openapi.json", "/schema/swagger"):  # not public
            assert (await client.get(path)).status_code == 401, (service, path)
        for path in OPEN:  # health stays open (no state is touched: the app is not started)
            r = await client.get(path)
            assert r.status_code != 401
