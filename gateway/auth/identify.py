"""Who is calling: an API key (`X-API-Key`) or a JWT (`Authorization: Bearer`), checked
against what the route accepts, turned into the `Identity` the upstream receives.

    AuthFailure
    ├── Unauthenticated   401: missing, malformed, unknown, expired, revoked credentials
    └── Unauthorized      403: genuine credentials without the scopes the route needs
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from contracts.models import LOCATION_PATTERN
from gateway.auth.jwt import JwtRejected
from services.kit.identity import Identity

if TYPE_CHECKING:
    from gateway.auth.jwt import JwtVerifier
    from gateway.auth.keycache import KeyCache
    from gateway.auth.keys import ApiKey
    from gateway.config import JwtPlans, RouteConfig

#: the longest JWT subject the gateway accepts
MAX_SUBJECT = 100
_STORE = re.compile(LOCATION_PATTERN)

__all__ = ["AuthFailure", "Authenticator", "Unauthenticated", "Unauthorized"]


class AuthFailure(Exception):
    status = 401
    slug = "unauthenticated"
    title = "Unauthenticated"

    def __init__(self, detail: str, *, challenge: str = "") -> None:
        self.detail = detail
        self.challenge = challenge
        super().__init__(detail)


class Unauthenticated(AuthFailure):
    pass


class Unauthorized(AuthFailure):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


def _credentials(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    key = bearer = None
    for name, value in headers:
        if name == b"x-api-key":
            key = value.decode("latin-1").strip()
        elif name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            # present but not a bearer token: an empty one, refused below
            bearer = rest.strip() if scheme.lower() == "bearer" else ""
    return key, bearer


class Authenticator:
    def __init__(self, keys: KeyCache, jwt: JwtVerifier, plans: JwtPlans) -> None:
        self.keys, self.jwt, self.plans = keys, jwt, plans
        # identities built from a cached key record, reused while that record is cached
        self._key_identities: dict[str, tuple[ApiKey, Identity]] = {}

    async def identify(self, route: RouteConfig, scope: dict[str, Any]) -> Identity:
        key, bearer = _credentials(scope["headers"])
        accepts_key = route.auth in ("key", "either")
        accepts_jwt = route.auth in ("jwt", "either")
        if route.auth == "none" and key is None and bearer is None:
            client = scope.get("client")
            return Identity(kind="anonymous", consumer="ip:" + (client[0] if client else "unknown"))
        identity: Identity
        if key is not None and (accepts_key or route.auth == "none"):
            identity = await self._by_key(key)
        elif bearer is not None and (accepts_jwt or route.auth == "none"):
            identity = await self._by_jwt(bearer)
        else:
            wanted = {"key": "an API key (X-API-Key)", "jwt": "a bearer token"}.get(
                route.auth, "an API key (X-API-Key) or a bearer token"
            )
            raise Unauthenticated(f"this route needs {wanted}", challenge=self._challenge(route))
        missing = [s for s in route.scopes if not identity.has_scope(s)]
        if missing:
            raise Unauthorized(f"missing scope: {' '.join(missing)}")
        return identity

    @staticmethod
    def _challenge(route: RouteConfig) -> str:
        return 'Bearer realm="retailmesh"' if route.auth in ("jwt", "either") else ""

    async def _by_key(self, key: str) -> Identity:
        record = await self.keys.lookup(key)
        if record is None or not record.usable(self.keys.store.clock()):
            # one answer for unknown, mistyped, expired and revoked: nothing to probe
            raise Unauthenticated("invalid API key")
        known = self._key_identities.get(record.id)
        if known is not None and known[0] is record:
            return known[1]
        identity = Identity(
            kind="partner",
            consumer=record.id,
            partner_id=record.partner_id,
            scopes=frozenset(record.scopes),
            plan=record.plan,
        )
        if len(self._key_identities) > 10_000:
            self._key_identities.clear()
        self._key_identities[record.id] = (record, identity)
        return identity

    async def _by_jwt(self, token: str) -> Identity:
        if not token:
            raise Unauthenticated(
                "use Authorization: Bearer <token>", challenge='Bearer realm="retailmesh"'
            )
        try:
            claims = await self.jwt.verify(token)
        except JwtRejected as exc:
            raise Unauthenticated(
                str(exc), challenge='Bearer realm="retailmesh", error="invalid_token"'
            ) from None
        sub = claims.get("sub")
        invalid = 'Bearer realm="retailmesh", error="invalid_token"'
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("token has no subject", challenge=invalid)
        if len(sub) > MAX_SUBJECT:
            # what the services keep of a subject (an order's customer, who adjusted points)
            # has room for this much; identity providers' subjects are far shorter
            raise Unauthenticated(
                f"token subject is longer than {MAX_SUBJECT} characters", challenge=invalid
            )
        scope_claim = claims.get("scope", claims.get("scp", ""))
        scopes = scope_claim.split() if isinstance(scope_claim, str) else list(scope_claim or [])
        raw_roles = claims.get("roles", [])
        roles = (
            frozenset(r for r in raw_roles if isinstance(r, str))
            if isinstance(raw_roles, list)
            else frozenset()
        )
        store_id = claims.get("store_id")
        store_id = store_id if isinstance(store_id, str) else None
        if store_id is not None and not _STORE.fullmatch(store_id):
            # a till's store becomes a return's store and a stock location behind: a
            # location id, or no store at all
            raise Unauthenticated(
                "token names a store that is not a location id", challenge=invalid
            )
        partner_id = claims.get("partner_id")
        partner_id = partner_id if isinstance(partner_id, str) and partner_id else None
        if partner_id is not None and not await self.keys.partner_known(partner_id):
            # the partner's plan and count are for registered partners only
            raise Unauthenticated(
                "token names a partner that is not registered",
                challenge='Bearer realm="retailmesh", error="invalid_token"',
            )
        return Identity(
            kind="user",
            consumer="sub:" + sub,
            sub=sub,
            store_id=store_id,
            partner_id=partner_id,
            scopes=frozenset(s for s in scopes if isinstance(s, str)),
            roles=roles,
            plan=self._plan(roles, partner_id, store_id),
        )

    def _plan(self, roles: frozenset[str], partner_id: str | None, store_id: str | None) -> str:
        """A JWT caller's plan by its kind: operator, service, partner, till, customer."""
        if "admin" in roles:
            return self.plans.operator
        if "service" in roles:
            return self.plans.service
        if partner_id is not None:
            return self.plans.partner
        if store_id is not None:
            return self.plans.till
        return self.plans.customer
