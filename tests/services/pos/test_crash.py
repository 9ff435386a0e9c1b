"""The POS killed after accepting a batch, before its events went out: after the restart
they go out, once."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import redis

from services.kit.identity import IDENTITY_HEADER, Identity, IdentityCodec
from services.kit.settings import Settings
from tests.support import RedisServer, ServedApp, settle_sync


def test_events_of_a_batch_accepted_before_a_kill_are_published_once_after_restart(
    tmp_path: Path, redis_prefix: str
) -> None:
    server = RedisServer().start()
    env = {
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": server.url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "RELAY_INTERVAL_S": "0.1",
        # nobody is listening for postings here: this test is about the POS's own outbox
        "SERVICE_URLS": "erp=http://127.0.0.1:9",
    }
    codec = IdentityCodec(Settings(data_dir=str(tmp_path)).identity_key())
    headers = {IDENTITY_HEADER: codec.sign(Identity(kind="service", consumer="test"))}
    txs = [
        {
            "transaction_id": str(uuid.uuid4()),
            "kind": "sale",
            "store_id": "STORE-003",
            "till_id": "T9",
            "sequence": n,
            "occurred_at": "2026-11-24T09:00:00Z",
            "lines": [
                {
                    "sku": "SKU-000003",
                    "quantity": 1,
                    "unit_price": {"amount": 100, "currency": "EUR"},
                }
            ],
            "tenders": [{"kind": "cash", "amount": {"amount": 100, "currency": "EUR"}}],
        }
        for n in range(1, 51)
    ]
    pos = ServedApp("services.pos.app:create_app_from_env", env)
    stream = redis_prefix + "events.pos"
    try:
        pos.start()
        server.stop()  # Redis goes away: accepted transactions' events wait in the outbox
        r = httpx.post(
            pos.url + "/transactions/batches",
            json={"transactions": txs},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["accepted"] == 50
        pos.kill()  # a real SIGKILL, before any event was published
        server.start()
        client = redis.Redis.from_url(server.url)
        assert client.exists(stream) == 0
        pos = ServedApp("services.pos.app:create_app_from_env", env, port=pos.port)
        pos.start()
        # as long as events keep arriving, the relay is at work: wait (however slowly)
        settle_sync(lambda: client.xlen(stream), lambda n: n >= 50)
        time.sleep(0.5)  # and nothing more comes
        ids = [fields[b"id"] for _, fields in client.xrange(stream)]
        assert len(ids) == 50 and len(set(ids)) == 50
        again = httpx.post(
            pos.url + "/transactions/batches",
            json={"transactions": txs},
            headers=headers,
            timeout=10,
        )
        assert again.json()["duplicates"] == 50
        client.close()
    finally:
        pos.stop()
        server.stop()
