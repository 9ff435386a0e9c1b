"""The gateway's configuration: upstreams and the versioned APIs routed to them.

Loaded from TOML into Structs and validated at start-up; a bad entry stops the gateway with
a message that names it (`apis[0].versions[1].status: ...`), never a surprise at request time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import msgspec

__all__ = [
    "ApiConfig",
    "ConfigError",
    "GatewayConfig",
    "UpstreamConfig",
    "VersionConfig",
    "load_config",
]

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
Version = Annotated[str, msgspec.Meta(pattern=r"^v[1-9][0-9]{0,2}$")]
Prefix = Annotated[str, msgspec.Meta(pattern=r"^(/[A-Za-z0-9._~-]+)*$")]


class ConfigError(ValueError):
    """The gateway configuration is invalid; the message names the bad entry."""


class UpstreamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: the registry name of the service (in-process app or base URL)
    service: Name
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


class VersionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: Version
    status: Literal["current", "deprecated", "retired"] = "current"
    #: path prepended to the rest of the request path on the upstream
    prefix: Prefix = ""


class ApiConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    upstream: Name
    title: str = ""
    versions: Annotated[list[VersionConfig], msgspec.Meta(min_length=1)]


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    upstreams: dict[Name, UpstreamConfig]
    apis: list[ApiConfig]
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=256 * 1024 * 1024)] = 1024 * 1024

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
        return self


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
