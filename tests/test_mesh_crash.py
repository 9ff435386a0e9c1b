"""`retailmesh run-mesh` survives a crash: `kill -9` of the orders process mid-burst, and
the mesh starts it again (no orphan left listening), the sagas it held resume at once, and
every checkout its clients keep asking for ends, posted to the ERP exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import dev_issuer
from tests.support import free_port, settle_sync

CHECKOUTS = 24
BODY = {"lines": [{"sku": "SKU-000001", "quantity": 1}]}


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes()).replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _started(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def _alive(pid: int, started: str | None) -> bool:
    """The process that had `pid` when it started at `started` still runs: not a zombie,
    and not another process that got the same pid since (pids wrap at 32768 here, and a
    suite starts many processes and threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == started


def _free_run(count: int) -> int:
    """The first of `count` consecutive free ports (bound and released to check)."""
    while True:
        base = free_port()
        if base + count < 65000 and all(_port_free(base + n) for n in range(1, count + 1)):
            return base


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _checkout_to_the_end(
    base: str, token: str, answers: list[tuple[int, str]], started: threading.Event
) -> None:
    """A careful client: the same Idempotency-Key until the order's end comes back."""
    key = f'"{uuid.uuid4()}"'
    body = {**BODY, "payment_reference": f"psp-{uuid.uuid4().hex[:12]}"}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    with httpx.Client(base_url=base, timeout=60) as client:
        while True:
            try:
                r = client.post("/v1/orders/orders", json=body, headers=headers)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            started.set()
            if r.status_code in (502, 503, 504, 429) or (
                r.status_code == 409 and r.json()["type"].endswith("/idempotency-key-in-flight")
            ):
                time.sleep(float(r.headers.get("retry-after", "0.5")))
                continue
            answers.append((r.status_code, r.json().get("order_id", r.text)))
            return


def test_kill_9_of_the_orders_process_mid_burst_heals(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    gateway_port, base_port = free_port(), _free_run(5)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "RELAY_INTERVAL_S": "0.05",
        "SAGA_SWEEP_S": "0.2",
    }
    log = (tmp_path / "mesh.log").open("wb")
    mesh = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "run-mesh",
            "--port",
            str(gateway_port),
            "--base-port",
            str(base_port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{gateway_port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:

            def ready() -> int:
                try:
                    return client.get("/readyz").status_code
                except httpx.TransportError:
                    return 0

            settle_sync(ready, lambda s: s == 200, stall_s=60)
            issuer = dev_issuer(env)
            admin = {"Authorization": "Bearer " + issuer.mint("ops", roles=["admin"])}
            orders_main = next(
                p for p in _children(mesh.pid) if "services.orders.app" in _cmdline(p)
            )
            orders_worker = [(p, _started(p)) for p in _children(orders_main)]
            answers: list[tuple[int, str]] = []
            started = threading.Event()
            clients = [
                threading.Thread(
                    target=_checkout_to_the_end,
                    args=(
                        base,
                        issuer.mint(f"c{n}", scopes=["orders:write", "orders:read"]),
                        answers,
                        started,
                    ),
                )
                for n in range(CHECKOUTS)
            ]
            for t in clients:
                t.start()
            started.wait(60)
            os.kill(orders_main, signal.SIGKILL)  # mid-burst
            killed_at = time.monotonic()
            ended_before = len(answers)
            for t in clients:
                t.join(300)
            recovered_s = time.monotonic() - killed_at
            assert [status for status, _ in answers] == [201] * CHECKOUTS, answers
            print(
                f"\n[fault] kill -9 of orders mid-burst (mesh): {ended_before} of {CHECKOUTS} "
                f"had ended; all ended {recovered_s:.1f} s after"
            )
            assert ended_before < CHECKOUTS  # the kill did cut the burst
            # the old worker does not stay behind, orphaned (it may still be on its way out
            # when the clients are done; the wait fails if it stays for 30 s)
            settle_sync(
                lambda: [p for p, started in orders_worker if _alive(p, started)],
                lambda alive: not alive,
            )
            ids = [order_id for _, order_id in answers]

            def posted() -> list[int]:
                out = []
                for oid in ids:
                    r = client.get("/v1/erp/postings", params={"order_id": oid}, headers=admin)
                    out.append(sum(1 for p in r.json()["items"] if p["kind"] == "order"))
                return out

            assert (
                settle_sync(posted, lambda n: all(c >= 1 for c in n), interval_s=0.5)
                == [1] * CHECKOUTS
            )

            def reservations() -> list[str]:
                return [
                    client.get(f"/v1/inventory/reservations/{oid}.0", headers=admin).json()[
                        "status"
                    ]
                    for oid in ids
                ]

            # every reservation has its end: committed by its order's posting
            assert (
                settle_sync(reservations, lambda r: len(set(r)) == 1) == ["committed"] * CHECKOUTS
            )
    finally:
        mesh.send_signal(signal.SIGINT)  # Ctrl-C: every service drained and stopped
        asked = time.monotonic()
        try:
            mesh.wait(120)
            print(f"[fault] run-mesh stopped {time.monotonic() - asked:.1f} s after Ctrl-C")
        except subprocess.TimeoutExpired:
            # the services die with their supervisor (parent-death signal)
            os.killpg(mesh.pid, signal.SIGKILL)
            mesh.wait(30)
        finally:
            log.close()
