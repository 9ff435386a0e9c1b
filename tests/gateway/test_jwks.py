"""Keys from an identity provider's JWKS URL: cached, refreshed on an unknown kid (at most
once per interval), and filtered to signature keys."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from gateway.auth.jwt import JwksSource, JwtRejected, JwtVerifier
from tests.support import ServedApp


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def ec_key(kid: str, use: str = "sig") -> tuple[Any, dict[str, Any]]:
    private = generate_private_key(SECP256R1())
    numbers = private.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x),
        "y": _b64(numbers.y),
        "kid": kid,
        "use": use,
        "alg": "ES256",
    }
    return private, jwk


def token(private: Any, kid: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://idp.test",
        "aud": "retailmesh",
        "sub": "u1",
        "iat": now,
        "exp": now + 60,
    }
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[tuple[ServedApp, Path]]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    server = ServedApp("tests.gateway.jwks_server:create", {"JWKS_FILE": str(jwks)}).start(
        ready_path="/ready"
    )
    yield server, jwks
    server.stop()


def hits(jwks: Path) -> int:
    counter = jwks.with_suffix(".hits")
    return int(counter.read_text()) if counter.exists() else 0


async def test_a_rotated_key_is_fetched_on_its_first_unknown_kid(
    idp: tuple[ServedApp, Path],
) -> None:
    server, jwks = idp
    first, first_jwk = ec_key("k1")
    jwks.write_text(json.dumps({"keys": [first_jwk]}))
    source = JwksSource(url=server.url + "/jwks.json", min_refresh_s=0.2)
    verifier = JwtVerifier(source, issuer="https://idp.test", audience="retailmesh")
    try:
        assert (await verifier.verify(token(first, "k1")))["sub"] == "u1"
        assert (await verifier.verify(token(first, "k1")))["sub"] == "u1"
        assert hits(jwks) == 1  # cached

        second, second_jwk = ec_key("k2")
        jwks.write_text(json.dumps({"keys": [first_jwk, second_jwk]}))
        await asyncio.sleep(0.25)
        assert (await verifier.verify(token(second, "k2")))["sub"] == "u1"
        assert hits(jwks) == 2

        # a flood of made-up kids costs at most one fetch per interval
        for n in range(20):
            with pytest.raises(JwtRejected, match="unknown signing key"):
                await verifier.verify(token(second, f"made-up-{n}"))
        assert hits(jwks) <= 3
    finally:
        await source.close()


async def test_encryption_keys_in_the_jwks_are_not_used_for_signatures(
    idp: tuple[ServedApp, Path],
) -> None:
    server, jwks = idp
    private, jwk = ec_key("enc-1", use="enc")
    jwks.write_text(json.dumps({"keys": [jwk]}))
    source = JwksSource(url=server.url + "/jwks.json")
    verifier = JwtVerifier(source, issuer="https://idp.test", audience="retailmesh")
    try:
        with pytest.raises(JwtRejected, match="unknown signing key"):
            await verifier.verify(token(private, "enc-1"))
    finally:
        await source.close()
