"""The identity header: who is calling, as the gateway established it.

The gateway authenticates the client (API key or JWT) and passes the claims a service needs
in one header, `X-Retailmesh-Identity`, a short-lived JWT signed with HS256 and a secret
shared only inside the mesh. Services verify it on every request that needs an identity and
refuse a missing, forged or expired one; nothing behind the gateway trusts a client-supplied
identity (the gateway drops any such header a client sends).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

import jwt
import msgspec
from litestar.exceptions import NotAuthorizedException

from services.kit.errors import Forbidden

if TYPE_CHECKING:
    from collections.abc import Mapping

    from litestar import Request

    from services.kit.registry import ServiceClient, ServiceResponse

__all__ = [
    "IDENTITY_HEADER",
    "Identity",
    "IdentityCodec",
    "SigningClient",
    "caller_token",
    "require_scope",
]

IDENTITY_HEADER = "x-retailmesh-identity"
_AUDIENCE = "retailmesh-internal"
_ISSUER = "retailmesh-gateway"
#: where a request's verified identity is kept, so that it is verified once per request
_VERIFIED = "retailmesh.identity"


class Identity(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The caller: a partner's API key, a user or till with a JWT, or a service of the mesh."""

    kind: Literal["partner", "user", "service", "anonymous"]
    #: a stable id of the consumer: key id, JWT subject, service name or client address
    consumer: str
    sub: str | None = None
    partner_id: str | None = None
    store_id: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    plan: str | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.roles

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


#: tokens kept signed or verified, per codec (a bound on memory, not a tuning knob)
_CACHED = 50_000


class IdentityCodec:
    """Signs and verifies identity headers with the mesh's internal secret."""

    def __init__(self, secret: bytes, ttl_s: int = 60, leeway_s: int = 5) -> None:
        if len(secret) < 32:
            raise ValueError("the identity secret must be at least 32 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self.leeway_s = leeway_s
        #: identity → (its token, when to sign anew: monotonic); token → (identity, its exp)
        self._signed: dict[Identity, tuple[str, float]] = {}
        self._verified: dict[str, tuple[Identity, int]] = {}

    def sign(self, identity: Identity) -> str:
        """A token for the identity, the same one for half its lifetime: nothing in it is
        per call, and signing and verifying were a tenth of an in-process call's time."""
        now = time.monotonic()
        cached = self._signed.get(identity)
        if cached is not None and now < cached[1]:
            return cached[0]
        token = self._sign(identity)
        if len(self._signed) >= _CACHED:
            self._signed.clear()
        self._signed[identity] = (token, now + self.ttl_s / 2)
        return token

    def _sign(self, identity: Identity) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": _ISSUER,
            "aud": _AUDIENCE,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "idn": msgspec.to_builtins(identity),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> Identity:
        """The identity in a header; raises `jwt.InvalidTokenError` when it is not genuine.
        A token verified before is known by its whole text until it expires."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() <= known[1] + self.leeway_s:
                return known[0]
            del self._verified[token]
        claims = jwt.decode(
            token,
            self._secret,
            algorithms=["HS256"],
            audience=_AUDIENCE,
            issuer=_ISSUER,
            leeway=self.leeway_s,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
        identity = msgspec.convert(claims["idn"], type=Identity)
        if len(self._verified) >= _CACHED:
            self._verified.clear()
        self._verified[token] = (identity, int(claims["exp"]))
        return identity

    def from_request(self, request: Request[Any, Any, Any]) -> Identity:
        known = request.scope.get(_VERIFIED)
        if isinstance(known, Identity):
            return known
        identity = self._from_header(request)
        request.scope[_VERIFIED] = identity  # type: ignore[literal-required]
        return identity

    def _from_header(self, request: Request[Any, Any, Any]) -> Identity:
        token = request.headers.get(IDENTITY_HEADER)
        if not token:
            raise NotAuthorizedException("no identity: call this service through the gateway")
        try:
            return self.verify(token)
        except (jwt.InvalidTokenError, msgspec.ValidationError, KeyError):
            raise NotAuthorizedException(
                "the identity header is not genuine or has expired"
            ) from None


class SigningClient:
    """A registry client that calls as its service (kind `service`), unless the caller names
    another identity itself (the orders saga calls loyalty as the customer)."""

    def __init__(self, client: ServiceClient, service: str, codec: IdentityCodec) -> None:
        self.name = client.name
        self._client = client
        self._identity = Identity(kind="service", consumer=service, sub=service)
        self._codec = codec

    def _header(self) -> str:
        return self._codec.sign(self._identity)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ServiceResponse:
        out = dict(headers or {})
        if not any(k.lower() == IDENTITY_HEADER for k in out):
            out[IDENTITY_HEADER] = self._header()
        return await self._client.request(
            method, path, params=params, json=json, headers=out, timeout=timeout
        )


def caller_token(request: Request[Any, Any, Any]) -> str:
    """The identity header the gateway signed for this request (verified by the service's
    guard): an experience API passes it on to call the services behind as its caller, so
    that their ownership rules decide."""
    return str(request.headers[IDENTITY_HEADER])


def require_scope(identity: Identity, scope: str) -> None:
    if not identity.has_scope(scope):
        raise Forbidden(f"this needs the scope {scope}", required_scope=scope)
