"""The gateway's configuration: upstreams and the versioned APIs routed to them.

Loaded from TOML into Structs and validated at start-up; a bad entry stops the gateway with
a message that names it (`apis[0].versions[1].status: ...`), never a surprise at request time.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import msgspec

from contracts.bounds import MAX_SAFE_INT

__all__ = [
    "ApiConfig",
    "ConfigError",
    "GatewayConfig",
    "UpstreamConfig",
    "VersionConfig",
    "load_config",
]

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,31}\Z")]
Version = Annotated[str, msgspec.Meta(pattern=r"^v[1-9][0-9]{0,2}\Z")]
Prefix = Annotated[str, msgspec.Meta(pattern=r"^(/[A-Za-z0-9._~-]+)*\Z")]


class ConfigError(ValueError):
    """The gateway configuration is invalid; the message names the bad entry."""


class UpstreamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: the registry name of the service (in-process app or base URL)
    service: Name
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    #: extra attempts for idempotent requests without a body (GET, HEAD, OPTIONS)
    retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 2
    retry_backoff_ms: Annotated[float, msgspec.Meta(ge=0, le=10_000)] = 50.0
    #: retries may add at most this share of the upstream's traffic
    retry_budget_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    #: requests in flight to the upstream; past it the gateway sheds with 503
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 512
    #: of those, what one consumer may hold (429 past it); a quarter of them by default, so
    #: that one caller's slow requests never take all of an upstream's slots
    max_concurrency_per_consumer: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    breaker_failure_ratio: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    breaker_min_requests: Annotated[int, msgspec.Meta(ge=1)] = 20
    breaker_window_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    breaker_open_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 5.0
    breaker_probes: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1


class VersionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: Version
    status: Literal["current", "deprecated", "retired"] = "current"
    #: path prepended to the rest of the request path on the upstream
    prefix: Prefix = ""
    #: when it was deprecated (RFC 9745 `Deprecation`), required once deprecated
    deprecated_at: datetime | None = None
    #: when it stops answering (RFC 8594 `Sunset`), never before `deprecated_at`
    sunset: datetime | None = None
    #: the version to move to (`Link: <...>; rel="successor-version"`)
    successor: Version | None = None


Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
Scope = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9:._-]{0,63}\Z")]
PathPattern = Annotated[
    str, msgspec.Meta(pattern=r"^(/([A-Za-z0-9._~-]+|\*|\*\*))*/?\Z", max_length=1024)
]
#: the scopes one route may ask for
MAX_ROUTE_SCOPES = 20
#: how big a configuration may be: APIs, versions and routes of each, upstreams. The route
#: table an operator reads (`GET /admin/v1/routes`) has a row per version and route.
MAX_APIS = 100
MAX_VERSIONS = 10
MAX_API_ROUTES = 200
MAX_ROUTES = MAX_APIS * MAX_VERSIONS * MAX_API_ROUTES
MAX_UPSTREAMS = 100


class RouteConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who may call which paths of an API: `*` is one segment, `**` the rest of the path."""

    path: PathPattern
    methods: Annotated[list[Method], msgspec.Meta(min_length=1, max_length=6)]
    #: which credentials it accepts: an API key, a JWT, either, or none
    auth: Literal["none", "key", "jwt", "either"] = "either"
    #: every one of these is needed (the `admin` role passes any)
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=MAX_ROUTE_SCOPES)] = []
    #: units of the plan's limits one request uses (bulk endpoints weigh more)
    weight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    #: a query parameter listing items (comma-separated): the request weighs `weight` per
    #: item it names, at least one (a bulk read of 100 SKUs counts as 100 reads)
    weight_per: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}\Z")] | None = None
    #: when the shared limit store (Redis) is away: refuse (503) instead of counting locally
    fail_closed: bool = False
    #: request body limit for this route (bytes); the gateway's `max_body_bytes` otherwise
    max_body_bytes: Annotated[int, msgspec.Meta(ge=0, le=256 * 1024 * 1024)] | None = None
    #: browser origins allowed to call this route (`*` for any), for CORS
    cors_origins: list[
        Annotated[str, msgspec.Meta(pattern=r"^(\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)\Z")]
    ] = []


class PlanConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    burst_per_second: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
    per_minute: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
    daily_quota: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
    #: the scopes an API key on this plan may hold; any scope a key route needs when absent
    key_scopes: Annotated[list[Scope], msgspec.Meta(max_length=100)] | None = None


class ApiConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    upstream: Name
    title: str = ""
    versions: Annotated[list[VersionConfig], msgspec.Meta(min_length=1, max_length=MAX_VERSIONS)]
    #: first match wins; a path no route matches is not published (404)
    routes: Annotated[list[RouteConfig], msgspec.Meta(max_length=MAX_API_ROUTES)] = []


class JwtPlans(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The plan of a JWT caller, by kind of consumer (first that applies, top to bottom)."""

    #: role `admin`
    operator: Name = "internal"
    #: role `service`: another system of the retailer's
    service: Name = "internal"
    #: a `partner_id` claim: counted per partner, with the partner's keys
    partner: Name = "partner"
    #: a `store_id` claim: a till
    till: Name = "pos"
    #: everyone else: a shopper signed in at a web shop or an app
    customer: Name = "customer"


class JwtConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    issuer: str = "retailmesh-dev"
    audience: str = "retailmesh"
    leeway_s: Annotated[int, msgspec.Meta(ge=0, le=300)] = 30
    #: plans by kind of caller; when left out, the defaults, each falling back to the
    #: anonymous plan where the config declares no plan of that name
    plans: JwtPlans | None = None


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    upstreams: Annotated[dict[Name, UpstreamConfig], msgspec.Meta(max_length=MAX_UPSTREAMS)]
    apis: Annotated[list[ApiConfig], msgspec.Meta(max_length=MAX_APIS)]
    plans: dict[Name, PlanConfig] = {}
    #: the plan of unauthenticated callers, counted per client address
    anonymous_plan: Name = "free"
    jwt: JwtConfig = JwtConfig()
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=256 * 1024 * 1024)] = 1024 * 1024
    #: the whole request body must arrive within this; a slower client gets 408, and the
    #: upstream never sees the request (nor is blamed for it)
    body_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0

    def jwt_plans(self) -> JwtPlans:
        """The plan of each kind of JWT caller, every one of them a declared plan."""
        if self.jwt.plans is not None:
            return self.jwt.plans
        declared = {
            kind: plan if plan in self.plans else self.anonymous_plan
            for kind, plan in msgspec.structs.asdict(JwtPlans()).items()
        }
        return JwtPlans(**declared)

    def key_scopes(self) -> set[str]:
        """Every scope a route that takes API keys asks for: what a key may usefully hold."""
        return {
            scope
            for api in self.apis
            for route in api.routes
            if route.auth in ("key", "either")
            for scope in route.scopes
        }

    def key_scope_problem(self, plan: str, scopes: list[str]) -> tuple[str, str | None]:
        """Which field, and why, a key on `plan` may not hold `scopes` (None when it may).
        `gateway.spec` publishes the same rules in the key's schema."""
        if self.plans and plan not in self.plans:
            return "plan", f"unknown plan {plan!r} (plans: {', '.join(sorted(self.plans))})"
        known = self.key_scopes()
        unknown = sorted(set(scopes) - known)
        if unknown:
            return "scopes", f"no route takes a key with the scope {', '.join(unknown)}"
        allowed = self.plans[plan].key_scopes if self.plans else None
        beyond = sorted(set(scopes) - set(allowed)) if allowed is not None else []
        if beyond:
            return "scopes", f"plan {plan} does not allow the scope {', '.join(beyond)}"
        return "", None

    def validate(self) -> GatewayConfig:
        seen: set[str] = set()
        for i, api in enumerate(self.apis):
            where = f"apis[{i}]"
            if api.name in seen:
                raise ConfigError(f"{where}.name: API {api.name!r} is declared twice")
            seen.add(api.name)
            if api.upstream not in self.upstreams:
                raise ConfigError(
                    f"{where}.upstream: unknown upstream {api.upstream!r} "
                    f"(declared: {', '.join(sorted(self.upstreams)) or 'none'})"
                )
            versions: set[str] = set()
            for j, version in enumerate(api.versions):
                if version.version in versions:
                    raise ConfigError(
                        f"{where}.versions[{j}].version: {version.version} is declared twice"
                    )
                versions.add(version.version)
            for j, version in enumerate(api.versions):
                _check_lifecycle(version, versions, f"{where}.versions[{j}]")
        for kind, plan in msgspec.structs.asdict(self.jwt.plans or JwtPlans()).items():
            if self.plans and self.jwt.plans is not None and plan not in self.plans:
                raise ConfigError(f"jwt.plans.{kind}: unknown plan {plan!r}")
        if self.plans and self.anonymous_plan not in self.plans:
            raise ConfigError(f"anonymous_plan: unknown plan {self.anonymous_plan!r}")
        return self


def _check_lifecycle(version: VersionConfig, known: set[str], where: str) -> None:
    if version.successor is not None and version.successor not in known:
        raise ConfigError(f"{where}.successor: no version {version.successor} in this API")
    if version.status == "current":
        return
    if version.successor is None:
        raise ConfigError(f"{where}.successor: a {version.status} version names its successor")
    if version.status == "deprecated":
        if version.deprecated_at is None or version.sunset is None:
            raise ConfigError(f"{where}: a deprecated version has deprecated_at and sunset")
        if version.deprecated_at.tzinfo is None or version.sunset.tzinfo is None:
            raise ConfigError(f"{where}: deprecated_at and sunset carry a time zone (Z)")
        if version.sunset < version.deprecated_at:
            raise ConfigError(f"{where}.sunset: earlier than deprecated_at (RFC 8594 section 3)")


def load_config(source: str | Path | bytes) -> GatewayConfig:
    """Decode and validate a gateway TOML file (a path) or document (bytes)."""
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    try:
        document = msgspec.toml.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    # msgspec names list items by index but dict entries as `[...]`: check the upstreams
    # one by one first so that an error names the upstream.
    upstreams = document.get("upstreams") if isinstance(document, dict) else None
    if isinstance(upstreams, dict):
        for name, entry in upstreams.items():
            _convert(entry, UpstreamConfig, f"upstreams.{name}")
    return _convert(document, GatewayConfig, "").validate()


T = TypeVar("T")


def _convert(value: object, type_: type[T], where: str) -> T:
    try:
        return msgspec.convert(value, type=type_)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = re.search(r"at `\$(.*)`", message)
        path = where + (match.group(1) if match else "")
        raise ConfigError(f"{path.lstrip('.') or 'config'}: {message}") from None
