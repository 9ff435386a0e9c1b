"""JWT verification for ecommerce and POS clients, and the development issuer.

PyJWT does the cryptography; the policy is here, because PyJWT leaves it to the caller:
an algorithm allowlist checked against the token header before any key is touched (never
`none`, never HS* where a public key is expected), `exp`, `iss` and `aud` required, a small
leeway, a bounded token size, a `kid` that must look like a key id, and a JWKS filtered to
signature keys (`use == "sig"`, `key_ops` allowing verify) because PyJWT does not filter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from jwt.exceptions import PyJWKError

__all__ = ["ALLOWED_ALGORITHMS", "DevIssuer", "JwksSource", "JwtRejected", "JwtVerifier"]

log = logging.getLogger("retailmesh.gateway.jwt")

ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
_KTY_FOR = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
_KID = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")
MAX_TOKEN_BYTES = 8192


class JwtRejected(Exception):
    """The token is not acceptable; the message says why (safe to show to the client)."""


class JwksSource:
    """Signature keys by kid, from a dict, a file or a URL; refreshed on an unknown kid at
    most once per `min_refresh_s`, so a flood of made-up kids costs one fetch, not one each."""

    def __init__(
        self,
        *,
        jwks: dict[str, Any] | None = None,
        path: str | None = None,
        url: str | None = None,
        min_refresh_s: float = 30.0,
        max_age_s: float = 600.0,
    ) -> None:
        self._static, self._path, self._url = jwks, path, url
        self.min_refresh_s, self.max_age_s = min_refresh_s, max_age_s
        self._keys: dict[str, dict[str, Any]] = {}
        self._loaded_at = 0.0
        self._attempted_at = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def get(self, kid: str) -> dict[str, Any] | None:
        now = time.monotonic()
        if not self._loaded_at or now - self._loaded_at > self.max_age_s:
            await self.refresh()
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._attempted_at >= self.min_refresh_s:
            await self.refresh()
            key = self._keys.get(kid)
        return key

    async def refresh(self) -> None:
        async with self._lock:
            self._attempted_at = time.monotonic()
            try:
                document = await self._load()
            except (OSError, aiohttp.ClientError, ValueError, TimeoutError) as exc:
                log.warning("JWKS could not be loaded; keeping the keys we had: %s", exc)
                return
            self._keys = _signature_keys(document)
            self._loaded_at = time.monotonic()

    async def _load(self) -> dict[str, Any]:
        if self._static is not None:
            return self._static
        if self._path is not None:
            return dict(json.loads(await asyncio.to_thread(Path(self._path).read_text)))
        assert self._url is not None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        async with self._session.get(self._url) as resp:
            resp.raise_for_status()
            return dict(await resp.json(content_type=None))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _signature_keys(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("use") != "sig":
            continue
        ops = jwk.get("key_ops")
        if ops is not None and "verify" not in ops:
            continue
        kid = jwk.get("kid")
        if isinstance(kid, str) and _KID.match(kid):
            keys[kid] = jwk
    return keys


class JwtVerifier:
    def __init__(
        self, source: JwksSource, *, issuer: str, audience: str, leeway_s: int = 30
    ) -> None:
        self.source, self.issuer, self.audience, self.leeway_s = source, issuer, audience, leeway_s
        self._parsed: dict[tuple[str, str], Any] = {}
        # Verified tokens until they expire: a channel backend sends the same token many
        # times, and a signature check (about 50-100 µs) per request is the gateway's
        # largest cost for JWT callers. JWTs are not revocable before `exp` either way.
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}

    async def verify(self, token: str) -> dict[str, Any]:
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                return hit[0]
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= 10_000:
            self._verified.clear()
        self._verified[token] = (claims, float(claims["exp"]) + self.leeway_s)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_BYTES:
            raise JwtRejected("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtRejected("malformed token") from None
        if "crit" in header:
            # RFC 7515 section 4.1.11: a token naming an extension the recipient does not
            # understand must be rejected; this gateway understands none.
            raise JwtRejected("token names critical extensions this gateway does not support")
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise JwtRejected("token algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.match(kid):
            raise JwtRejected("token has no usable key id")
        jwk = await self.source.get(kid)
        if jwk is None:
            raise JwtRejected("unknown signing key")
        if jwk.get("kty") != _KTY_FOR[alg] or jwk.get("alg", alg) != alg:
            raise JwtRejected("token algorithm does not match its key")
        key = self._key(kid, alg, jwk)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise JwtRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise JwtRejected("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise JwtRejected("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise JwtRejected("token issuer not accepted") from None
        except jwt.PyJWTError:
            raise JwtRejected("token signature or claims invalid") from None
        return claims

    def _key(self, kid: str, alg: str, jwk: dict[str, Any]) -> Any:
        cached = self._parsed.get((kid, alg))
        if cached is None:
            try:
                cached = jwt.PyJWK(jwk, algorithm=alg).key
            except (PyJWKError, ValueError, TypeError):
                raise JwtRejected("signing key unusable") from None
            self._parsed[(kid, alg)] = cached
        return cached


class DevIssuer:
    """The gateway as its own issuer, for development: EdDSA tokens with the dev key."""

    def __init__(self, private_pem: bytes, kid: str, issuer: str, audience: str) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        self._key = load_pem_private_key(private_pem, password=None)
        self.kid, self.issuer, self.audience = kid, issuer, audience

    def mint(
        self,
        sub: str,
        *,
        scopes: list[str] | None = None,
        store_id: str | None = None,
        roles: list[str] | None = None,
        partner_id: str | None = None,
        ttl_s: int = 3600,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scopes or []),
        }
        if store_id:
            claims["store_id"] = store_id
        if roles:
            claims["roles"] = roles
        if partner_id:
            claims["partner_id"] = partner_id
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})  # type: ignore[arg-type]
