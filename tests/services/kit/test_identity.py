"""Services trust only the gateway's signed identity: missing, forged or expired is 401."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from services.erp.app import ErpSettings, create_app
from services.kit.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.conftest import Running

POSTING: dict[str, Any] = {
    "posting_id": "p-1",
    "order_id": "o-1",
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
POSTER = Identity(
    kind="partner", consumer="key_1", partner_id="acme", scopes=frozenset({"erp:post"})
)


@pytest.fixture
async def erp(tmp_path: Path) -> AsyncIterator[Running]:
    async with Running(create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))) as r:
        yield r


def codec_of(running: Running) -> IdentityCodec:
    codec: IdentityCodec = running.app.state.runtime.identity
    return codec


async def post(running: Running, token: str | None) -> Any:
    headers = {IDENTITY_HEADER: token} if token is not None else {}
    return await running.client.post("/postings/orders", json=POSTING, headers=headers)


async def test_a_genuine_identity_with_the_scope_is_served(erp: Running) -> None:
    assert (await post(erp, codec_of(erp).sign(POSTER))).status_code == 201


async def test_missing_identity_is_401(erp: Running) -> None:
    r = await post(erp, None)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


async def test_identity_signed_with_another_secret_is_401(erp: Running) -> None:
    forged = IdentityCodec(b"x" * 32).sign(POSTER)
    assert (await post(erp, forged)).status_code == 401


async def test_tampered_identity_is_401(erp: Running) -> None:
    token = codec_of(erp).sign(Identity(kind="partner", consumer="key_1"))
    header, _payload, signature = token.split(".")
    other = codec_of(erp).sign(POSTER).split(".")[1]
    assert (await post(erp, f"{header}.{other}.{signature}")).status_code == 401


async def test_expired_identity_is_401(erp: Running) -> None:
    secret = erp.app.state.runtime.settings.identity_key()
    now = int(time.time())
    stale = jwt.encode(
        {
            "iss": "retailmesh-gateway",
            "aud": "retailmesh-internal",
            "iat": now - 600,
            "exp": now - 300,
            "idn": {"kind": "partner", "consumer": "key_1", "scopes": ["erp:post"]},
        },
        secret,
        algorithm="HS256",
    )
    assert (await post(erp, stale)).status_code == 401


async def test_alg_none_identity_is_401(erp: Running) -> None:
    unsigned = jwt.encode(
        {
            "iss": "retailmesh-gateway",
            "aud": "retailmesh-internal",
            "iat": 0,
            "exp": int(time.time()) + 60,
            "idn": {"kind": "service", "consumer": "x", "roles": ["admin"]},
        },
        None,
        algorithm="none",
    )
    assert (await post(erp, unsigned)).status_code == 401


async def test_genuine_identity_without_the_scope_is_403(erp: Running) -> None:
    reader = Identity(kind="partner", consumer="key_2", scopes=frozenset({"erp:stock"}))
    r = await post(erp, codec_of(erp).sign(reader))
    assert r.status_code == 403
    assert r.json()["required_scope"] == "erp:post"
