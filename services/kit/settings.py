"""Settings from environment variables, validated at the door.

Every field maps to the upper-cased environment variable of the same name
(`redis_url` ← `REDIS_URL`). Settings are built from a mapping so that tests pass a dict
instead of patching the process environment.
"""

from __future__ import annotations

import functools
import os
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

import msgspec

from services.kit.events.bus import ConsumerPolicy

__all__ = ["Settings", "SettingsError", "from_env", "instance_id"]

S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


def from_env(cls: type[S], environ: Mapping[str, str]) -> S:
    """Build a settings Struct from the environment variables that name its fields."""
    raw: dict[str, Any] = {}
    for name in cls.__struct_fields__:
        value = environ.get(name.upper())
        if value is not None and value != "":
            raw[name] = value
    try:
        return msgspec.convert(raw, type=cls, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = re.search(r"at `\$\.(\w+)`", message)
        var = match.group(1).upper() if match else "?"
        raise SettingsError(f"bad value for {var}: {message}") from None


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """What every service process needs to know about its surroundings."""

    data_dir: str = ".data"
    database_url: str | None = None
    redis_url: str | None = None
    #: the start of every Redis key; by default `rm:<instance id>:`, the id made at first run
    #: in the data directory, so that two instances never share keys unless told to
    redis_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9:_.-]{0,64}\Z")] | None = None
    #: "auto": use REDIS_URL, else a server on 127.0.0.1:6379, else in-memory stand-ins.
    #: "required": fail at start-up without Redis. "off": in-memory only.
    redis_mode: Literal["auto", "required", "off"] = "auto"
    #: how long a request waits for one Redis command before it counts as failed (503)
    redis_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 1.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    seed: bool = True
    #: the demo story on a first start (`retailmesh run` turns it on): demo customers'
    #: loyalty members; off by default, so a deployment or a test starts without them
    demo: bool = False
    relay_interval_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    request_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    #: how long an event another service cannot take now (its 429/5xx, no answer) is
    #: retried before it becomes a dead letter: days, so that an ERP outage waits
    retry_for_h: Annotated[float, msgspec.Meta(gt=0, le=24 * 30)] = 72.0
    #: the longest wait between two of those retries (backoff doubles up to it, with jitter)
    retry_max_backoff_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0

    def delivery_policy(self, **kw: Any) -> ConsumerPolicy:
        """A consumer policy for delivering events to another service: retried for
        `retry_for_h` while it is busy or away, backing off up to `retry_max_backoff_s`."""
        return ConsumerPolicy(
            retry_for_s=self.retry_for_h * 3600, max_backoff_s=self.retry_max_backoff_s, **kw
        )

    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    #: mesh mode: where the other services are, `erp=http://127.0.0.1:8101,...`
    service_urls: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    #: hex, at least 32 bytes: signs the identity header inside the mesh (dev: generated)
    identity_secret: Annotated[str, msgspec.Meta(pattern=r"^([0-9a-fA-F]{2}){32,}\Z")] | None = None

    def identity_key(self) -> bytes:
        """The identity header's secret: IDENTITY_SECRET, else the development key."""
        if self.identity_secret:
            return bytes.fromhex(self.identity_secret)
        from services.kit.devkeys import load_dev_keys

        return load_dev_keys(self.data_dir).identity_secret

    def key_prefix(self) -> str:
        """REDIS_PREFIX, else `rm:<this instance's id>:`."""
        if self.redis_prefix is not None:
            return self.redis_prefix
        return f"rm:{instance_id(self.data_dir)}:"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        return from_env(cls, environ)

    def database_url_for(self, service: str) -> str:
        """The service's database: DATABASE_URL when set, else a SQLite file of its own."""
        if self.database_url:
            return self.database_url
        path = Path(self.data_dir) / f"{service}.db"
        return f"sqlite+aiosqlite:///{path}"


@functools.cache
def instance_id(data_dir: str) -> str:
    """This instance's id, kept in `<data_dir>/instance-id`: made once, by whichever process
    of the instance comes first (exclusive create), and read by every other."""
    path = Path(data_dir) / "instance-id"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the creator may not have written it yet
            value = path.read_text().strip()
            if re.fullmatch(r"[0-9a-f]{12}", value):
                return value
            time.sleep(0.01)
        raise SettingsError(f"{path} does not hold an instance id; remove it") from None
    value = uuid.uuid4().hex[:12]
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value
