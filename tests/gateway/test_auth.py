"""Authentication and authorization at the gateway: API keys, JWTs, scopes.

Every rejected request answers 401/403 problem+json and never reaches the upstream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.app import Gateway, GatewaySettings, create_gateway
from gateway.auth.keys import checksum_ok, new_key
from services.kit.devkeys import load_dev_keys
from services.kit.registry import Registry
from tests.conftest import Running
from tests.gateway.echo import echo

CONFIG = """
anonymous_plan = "partner"

[upstreams.echo]
service = "echo"

[plans.partner]
burst_per_second = 100
per_minute = 1000
daily_quota = 100000

[plans.internal]
burst_per_second = 100
per_minute = 1000
daily_quota = 100000

[[apis]]
name = "things"
upstream = "echo"
  [[apis.versions]]
  version = "v1"

  [[apis.routes]]
  path = "/open/**"
  methods = ["GET"]
  auth = "none"

  [[apis.routes]]
  path = "/jwt/**"
  methods = ["GET"]
  auth = "jwt"
  scopes = ["things:read"]

  [[apis.routes]]
  path = "/key/**"
  methods = ["GET"]
  auth = "key"
  scopes = ["things:read"]

  [[apis.routes]]
  path = "/either/**"
  methods = ["GET", "POST"]
  scopes = ["things:write"]
"""


class CountingEcho:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await echo(scope, receive, send)


@pytest.fixture
async def gw(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[Running, CountingEcho]]:
    (tmp_path / "gateway.toml").write_text(CONFIG)
    settings = GatewaySettings(
        gateway_config=str(tmp_path / "gateway.toml"),
        data_dir=str(tmp_path),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    upstream = CountingEcho()
    gateway = create_gateway(settings, Registry(apps={"echo": upstream}), spec=lambda: {})
    async with Running(gateway) as running:
        assert gateway.runtime.db is not None
        await gateway.key_store.ensure_partner(gateway.runtime.db, "acme", "ACME")
        yield running, upstream


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "retailmesh-dev",
        "aud": "retailmesh",
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "scope": "things:read things:write",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def dev_key(gateway: Gateway) -> tuple[Any, str]:
    keys = load_dev_keys(gateway.settings.data_dir)
    private = serialization.load_pem_private_key(keys.issuer_private_pem, password=None)
    return private, keys.kid


def signed(gateway: Gateway, payload: dict[str, Any], **header: Any) -> str:
    private, kid = dev_key(gateway)
    return jwt.encode(payload, private, algorithm="EdDSA", headers={"kid": kid, **header})  # type: ignore[arg-type]


async def test_a_valid_token_with_the_scope_reaches_the_upstream_with_its_identity(
    gw: tuple[Running, CountingEcho],
) -> None:
    running, upstream = gw
    token = signed(running.app, claims(store_id="STORE-004", roles=["till"]))
    r = await running.client.get("/v1/things/jwt/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert upstream.calls == 1
    seen = dict(r.json()["headers"])
    assert "authorization" in seen  # passed on: the upstream may need it; identity is separate
    identity = running.app.runtime.identity.verify(seen["x-retailmesh-identity"])
    assert (identity.kind, identity.sub, identity.store_id) == ("user", "alice", "STORE-004")
    assert identity.scopes == {"things:read", "things:write"}
    assert identity.roles == {"till"}


def _attacks(gateway: Gateway) -> dict[str, str]:
    private, kid = dev_key(gateway)
    good = signed(gateway, claims())
    header, _payload, signature = good.split(".")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    hs_body = _b64(json.dumps(claims()).encode())
    hs_sig = _b64(hmac.new(public_pem, f"{hs_header}.{hs_body}".encode(), hashlib.sha256).digest())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = Ed25519PrivateKey.generate()
    return {
        "alg none": jwt.encode(claims(), None, algorithm="none", headers={"kid": kid}),
        "HS256 signed with the public key": f"{hs_header}.{hs_body}.{hs_sig}",
        "RS256 claiming the EdDSA key": jwt.encode(
            claims(), rsa_key, algorithm="RS256", headers={"kid": kid}
        ),
        "expired": signed(gateway, claims(exp=int(time.time()) - 120)),
        "not yet valid": signed(gateway, claims(nbf=int(time.time()) + 600)),
        "wrong audience": signed(gateway, claims(aud="someone-else")),
        "wrong issuer": signed(gateway, claims(iss="https://evil.example")),
        "no exp": signed(gateway, claims(exp=None)),
        "no aud": signed(gateway, claims(aud=None)),
        "unknown kid": jwt.encode(claims(), stranger, algorithm="EdDSA", headers={"kid": "other"}),
        "right kid, wrong key": jwt.encode(
            claims(), stranger, algorithm="EdDSA", headers={"kid": kid}
        ),
        "tampered payload": ".".join(
            (header, _b64(json.dumps(claims(sub="mallory")).encode()), signature)
        ),
        "kid with a path": signed(gateway, claims(), kid="../../../../etc/passwd"),
        "kid with SQL": signed(gateway, claims(), kid="x' OR '1'='1"),
        "oversized": signed(gateway, claims(pad="A" * 9_000)),
        # longer than what the services keep of a customer
        "subject too long": signed(gateway, claims(sub="u" * 101)),
        "no subject": signed(gateway, claims(sub="")),
        # a till's store becomes a return's store and a stock location behind
        "store not a location id": signed(gateway, claims(store_id="store-001\n")),
        "garbage": "not.a.jwt",
        "empty": "",
        # RFC 7515 4.1.11: an extension the gateway does not understand, correctly signed
        "critical extension": jwt.encode(
            claims(), private, algorithm="EdDSA", headers={"kid": kid, "crit": ["exp"]}
        ),
        "critical unknown header": jwt.encode(
            claims(),
            private,
            algorithm="EdDSA",
            headers={"kid": kid, "crit": ["urn:x:policy"], "urn:x:policy": "strict"},
        ),
    }


ATTACKS = [
    "alg none",
    "HS256 signed with the public key",
    "RS256 claiming the EdDSA key",
    "expired",
    "not yet valid",
    "wrong audience",
    "wrong issuer",
    "no exp",
    "no aud",
    "unknown kid",
    "right kid, wrong key",
    "tampered payload",
    "kid with a path",
    "kid with SQL",
    "oversized",
    "subject too long",
    "no subject",
    "store not a location id",
    "garbage",
    "empty",
    "critical extension",
    "critical unknown header",
]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_jwt_attack_is_401_and_never_reaches_the_upstream(
    gw: tuple[Running, CountingEcho], attack: str
) -> None:
    running, upstream = gw
    token = _attacks(running.app)[attack]
    r = await running.client.get("/v1/things/jwt/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert upstream.calls == 0


async def test_missing_credentials_and_wrong_kind(gw: tuple[Running, CountingEcho]) -> None:
    running, upstream = gw
    c = running.client
    assert (await c.get("/v1/things/jwt/x")).status_code == 401
    assert (await c.get("/v1/things/key/x")).status_code == 401
    token = signed(running.app, claims())
    # a key-only route does not take a token
    r = await c.get("/v1/things/key/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert (
        await c.get("/v1/things/jwt/x", headers={"Authorization": "Basic YTpi"})
    ).status_code == 401
    assert upstream.calls == 0
    assert (await c.get("/v1/things/open/x")).status_code == 200


async def test_token_without_the_scope_is_403(gw: tuple[Running, CountingEcho]) -> None:
    running, upstream = gw
    token = signed(running.app, claims(scope="things:write"))
    r = await running.client.get("/v1/things/jwt/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert "things:read" in r.json()["detail"]
    admin = signed(running.app, claims(scope="", roles=["admin"]))
    r = await running.client.get("/v1/things/jwt/x", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200
    assert upstream.calls == 1


def test_key_format_carries_a_checksum() -> None:
    key = new_key()
    assert key.startswith("rm_live_") and len(key) == len("rm_live_") + 38
    assert checksum_ok(key)
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    assert not checksum_ok(typo)
    assert not checksum_ok(key + "x")
    assert checksum_ok(new_key("test")) and new_key("test").startswith("rm_test_")


async def test_api_key_lifecycle_create_use_rotate_revoke(gw: tuple[Running, CountingEcho]) -> None:
    running, _ = gw
    gateway: Gateway = running.app
    db = gateway.runtime.db
    assert db is not None
    new = await gateway.key_store.create(
        db, partner_id="acme", scopes=["things:read"], plan="partner"
    )
    c = running.client

    async def status(key: str, path: str = "/v1/things/key/x") -> int:
        return (await c.get(path, headers={"X-API-Key": key})).status_code

    assert await status(new.key) == 200
    seen = dict((await c.get("/v1/things/key/x", headers={"X-API-Key": new.key})).json()["headers"])
    identity = gateway.runtime.identity.verify(seen["x-retailmesh-identity"])
    assert (identity.kind, identity.partner_id, identity.plan) == ("partner", "acme", "partner")
    # the stored row holds no key
    async with db.read() as conn:
        rows = (await conn.execute(gateway.key_store.keys.select())).all()
    assert all(new.key not in str(tuple(row)) for row in rows)

    # a scope the key does not have
    assert await status(new.key, "/v1/things/either/x") == 403
    # mistyped and unknown keys
    assert await status(new.key[:-1] + ("x" if new.key[-1] != "x" else "y")) == 401
    assert await status(new_key()) == 401

    # rotation: both work during the grace period
    rotated = await gateway.key_store.rotate(db, new.record.id, timedelta(hours=1))
    assert rotated is not None
    fresh, old_digest = rotated
    await gateway.key_cache.announce(old_digest)  # type: ignore[union-attr]
    assert await status(fresh.key) == 200
    assert await status(new.key) == 200
    # a grace period that has run out
    expired = await gateway.key_store.rotate(db, fresh.record.id, timedelta(seconds=-1))
    assert expired is not None
    await gateway.key_cache.announce(expired[1])  # type: ignore[union-attr]
    assert await status(fresh.key) == 401
    assert await status(expired[0].key) == 200

    # revocation
    digest = await gateway.key_store.revoke(db, expired[0].record.id)
    assert digest is not None
    await gateway.key_cache.announce(digest)  # type: ignore[union-attr]
    assert await status(expired[0].key) == 401


async def test_expired_key_is_refused(gw: tuple[Running, CountingEcho]) -> None:
    running, _ = gw
    gateway: Gateway = running.app
    assert gateway.runtime.db is not None
    new = await gateway.key_store.create(
        gateway.runtime.db,
        partner_id="acme",
        scopes=["things:read"],
        plan="partner",
        expires_in=timedelta(seconds=-1),
    )
    r = await running.client.get("/v1/things/key/x", headers={"X-API-Key": new.key})
    assert r.status_code == 401
    assert r.json()["detail"] == "invalid API key"


async def test_credentials_never_reach_the_logs(
    gw: tuple[Running, CountingEcho], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    running, _ = gw
    gateway: Gateway = running.app
    assert gateway.runtime.db is not None
    new = await gateway.key_store.create(
        gateway.runtime.db, partner_id="acme", scopes=["things:read"], plan="partner"
    )
    good = signed(running.app, claims())
    bad = signed(running.app, claims(aud="elsewhere"))
    with caplog.at_level(logging.DEBUG):
        for headers in (
            {"X-API-Key": new.key},
            {"X-API-Key": new.key[:-1] + "0"},
            {"Authorization": f"Bearer {good}"},
            {"Authorization": f"Bearer {bad}"},
        ):
            await running.client.get("/v1/things/key/x", headers=headers)
            await running.client.get("/v1/things/jwt/x", headers=headers)
    assert caplog.records  # the access log did write
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (new.key, new.key[8:40], good, good.split(".")[2], bad):
        assert secret not in logged
