"""A revoked key fails on every gateway replica within one second (Redis pub/sub)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ServedApp


def test_revoked_key_fails_on_a_second_gateway_process_within_one_second(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
    }
    cli = [sys.executable, "-m", "services.cli"]
    replicas = [ServedApp("services.mesh:embedded_from_env", env) for _ in range(2)]
    try:
        for replica in replicas:
            replica.start()
        subprocess.run(
            [*cli, "partners", "add", "acme"],
            env={**replicas[0].env},
            capture_output=True,
            check=True,
        )
        created = subprocess.run(
            [*cli, "keys", "create", "--partner", "acme", "--scope", "erp:stock"],
            env={**replicas[0].env},
            capture_output=True,
            text=True,
            check=True,
        )
        key = created.stdout.split("store it now): ")[1].strip()
        key_id = created.stdout.split()[0]
        path = "/v1/erp/inventory/SKU-000001"
        for replica in replicas:  # both have the key in their caches now
            assert httpx.get(replica.url + path, headers={"X-API-Key": key}).status_code == 200

        subprocess.run(
            [*cli, "keys", "revoke", key_id],
            env={**replicas[0].env},
            check=True,
            capture_output=True,
        )
        revoked_at = time.monotonic()
        second = replicas[1]
        while True:
            status = httpx.get(second.url + path, headers={"X-API-Key": key}).status_code
            elapsed = time.monotonic() - revoked_at
            if status == 401:
                break
            assert elapsed < 1.0, f"still {status} {elapsed:.2f}s after the revocation"
            time.sleep(0.02)
        assert elapsed < 1.0
        assert httpx.get(replicas[0].url + path, headers={"X-API-Key": key}).status_code == 401
    finally:
        for replica in replicas:
            replica.stop()
