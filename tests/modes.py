"""The two modes of the mesh, served by Granian on real sockets, for the mode suite
(`tests/test_modes.py`) and the attack replay (`python -m tests.attack_replay`): the embedded
mesh (one process) and the mesh mode (one process per service)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import redis

from tests.conftest import dev_issuer
from tests.support import ServedApp, ensure_redis, unique

__all__ = [
    "BODY_TIMEOUT_S",
    "Mode",
    "day_use",
    "forget_keys",
    "raw_request",
    "running_mode",
    "slow_upload",
    "start_servers",
]

# a short body timeout, so that slow uploads end quickly (the rule, not its default)
BODY_TIMEOUT_S = 2


class Mode:
    def __init__(self, name: str, gateway: ServedApp, services: dict[str, ServedApp]) -> None:
        self.name, self.gateway, self.services = name, gateway, services
        self.issuer = dev_issuer(gateway.env)
        self.client = httpx.Client(base_url=gateway.url, timeout=30)

    def token(self, sub: str, *scopes: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.issuer.mint(sub, scopes=list(scopes), **kw)}

    @property
    def admin(self) -> dict[str, str]:
        return self.token("ops", roles=["admin"])

    def critical_token(self, *scopes: str) -> str:
        """A correctly signed token whose `crit` header names an extension nobody knows."""
        claims = jwt.decode(
            self.issuer.mint("crit", scopes=list(scopes)), options={"verify_signature": False}
        )
        return jwt.encode(
            claims,
            self.issuer._key,
            algorithm="EdDSA",
            headers={"kid": self.issuer.kid, "crit": ["urn:x:must"], "urn:x:must": 1},
        )

    def checkout(self, customer: str, **headers: str) -> httpx.Response:
        return self.client.post(
            "/v1/orders/orders",
            json={
                "lines": [{"sku": "SKU-000002", "quantity": 1}],
                "payment_reference": f"psp-{uuid.uuid4().hex[:12]}",
            },
            headers={
                **self.token(customer, "orders:write", "orders:read"),
                "Idempotency-Key": f'"{uuid.uuid4()}"',
                **headers,
            },
        )

    def breaker(self, upstream: str) -> dict[str, Any]:
        states = self.client.get("/admin/v1/breakers", headers=self.admin).json()
        state: dict[str, Any] = next(s for s in states if s["upstream"] == upstream)
        return state


def start_servers(
    mode: str, tmp: Path, config_edit: Callable[[str], str] | None = None
) -> tuple[ServedApp, dict[str, ServedApp]]:
    """The servers of a mode (not started), on the published gateway config, edited by
    `config_edit` if given."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "gateway.toml"
    text = (Path(__file__).parent.parent / "deploy/config/gateway.toml").read_text()
    config.write_text(
        f"body_timeout_s = {BODY_TIMEOUT_S}\n" + (config_edit(text) if config_edit else text)
    )
    env = {
        "DATA_DIR": str(tmp / "data"),
        "REDIS_URL": ensure_redis(),
        "REDIS_PREFIX": unique("rmtest:") + ":",
        "LOG_LEVEL": "WARNING",
        "GATEWAY_CONFIG": str(config),
        "RELAY_INTERVAL_S": "0.05",
        "DEMO": "true",  # the demo customers' loyalty members
    }
    if mode == "embedded":
        return ServedApp("services.mesh:embedded_from_env", env), {}
    env["REDIS_MODE"] = "required"
    erp = ServedApp("services.erp.app:create_app_from_env", env)
    upstream = {"SERVICE_URLS": f"erp={erp.url}"}
    services = {
        "erp": erp,
        "inventory": ServedApp("services.inventory.app:create_app_from_env", {**env, **upstream}),
        "pos": ServedApp("services.pos.app:create_app_from_env", {**env, **upstream}),
        "loyalty": ServedApp("services.loyalty.app:create_app_from_env", env),
    }
    # orders calls every system API: the POS for a store sale's return by its receipt
    deps = ",".join(f"{n}={s.url}" for n, s in services.items())
    services["orders"] = ServedApp(
        "services.orders.app:create_app_from_env", {**env, "SERVICE_URLS": deps}
    )
    shop = ",".join(f"{n}={s.url}" for n, s in services.items() if n != "pos")
    services["web"] = ServedApp(
        "services.web.app:create_app_from_env", {**env, "SERVICE_URLS": shop}
    )
    till = shop + f",pos={services['pos'].url}"
    services["store"] = ServedApp(
        "services.store.app:create_app_from_env", {**env, "SERVICE_URLS": till}
    )
    services["partner"] = ServedApp(
        "services.partner.app:create_app_from_env", {**env, "SERVICE_URLS": shop}
    )
    services["care"] = ServedApp(
        "services.care.app:create_app_from_env", {**env, "SERVICE_URLS": shop}
    )
    urls = ",".join(f"{n}={s.url}" for n, s in services.items())
    return ServedApp("services.mesh:gateway_from_env", {**env, "SERVICE_URLS": urls}), services


def forget_keys(url: str, prefix: str) -> None:
    """Delete what this suite wrote to Redis, and nothing else (its own prefix)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def slow_upload(url: str, headers: dict[str, str], path: str = "/v1/orders/orders") -> int:
    """Send the head and one byte of a 100-byte body, then nothing: the answer's status."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json"
            f"\r\ncontent-length: 100\r\n{head}\r\n{{"
        ).encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


def raw_request(url: str, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request written by hand (httpx refuses URIs this long): status, headers, body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            top, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                lines = top.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (x.partition(":") for x in lines[1:])
                }
                if len(body) >= int(headers.get("content-length", "0")):
                    return int(lines[0].split()[1]), headers, body
    raise AssertionError(f"no complete answer: {data[:200]!r}")


def day_use(mode: Mode, consumer: str) -> int:
    r = mode.client.get(f"/admin/v1/limits/{consumer}", headers=mode.admin)
    assert r.status_code == 200, r.text
    return int({w["window"]: w["used"] for w in r.json()["windows"]}["day"])


@contextmanager
def running_mode(
    name: str, tmp: Path, config_edit: Callable[[str], str] | None = None
) -> Iterator[Mode]:
    """One mode, started; every server it starts is stopped (and its Redis keys deleted),
    whatever happens in between."""
    gateway, services = start_servers(name, tmp, config_edit)
    started: list[ServedApp] = [*services.values(), gateway]
    try:
        ServedApp.start_together(started)
        running = Mode(name, gateway, services)
        try:
            yield running
        finally:
            running.client.close()
    finally:
        for server in reversed(started):
            server.stop()
        forget_keys(gateway.env["REDIS_URL"], gateway.env["REDIS_PREFIX"])
