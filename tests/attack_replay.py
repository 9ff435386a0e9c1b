"""Replays every attack of issue 11 against both modes and prints a table:

    .venv/bin/python -m tests.attack_replay

Each attack states what a platform should answer and shows what this one did, in the
embedded mesh (one process) and the mesh mode (one process per service), both on Granian.
It exits non-zero when any answer is not the expected one (the same rules are asserted by
`tests/test_modes.py`, `tests/gateway/`, `tests/services/kit/`; this is their demonstration).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from services.kit.settings import Settings
from tests.modes import Mode, day_use, raw_request, running_mode, slow_upload

Attack = Callable[[Mode], tuple[str, bool]]
ATTACKS: list[tuple[str, str, Attack]] = []


def attack(name: str, expected: str) -> Callable[[Attack], Attack]:
    def register(fn: Attack) -> Attack:
        ATTACKS.append((name, expected, fn))
        return fn

    return register


def _service(mode: Mode, sub: str) -> dict[str, str]:
    return mode.token(sub, "orders:write", "orders:read", roles=["service"])


@attack("30 bodies nested 5,000 deep", "400 each; breaker closed; others served")
def deep_bodies(mode: Mode) -> tuple[str, bool]:
    deep = b'{"lines": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    statuses = set()
    for _ in range(30):
        statuses.add(
            mode.client.post(
                "/v1/orders/orders",
                content=deep,
                headers={
                    **_service(mode, "deep"),
                    "content-type": "application/json",
                    "idempotency-key": f'"{uuid.uuid4()}"',
                },
            ).status_code
        )
    state = mode.breaker("orders")["state"]
    other = mode.checkout("other-customer").status_code
    return f"{sorted(statuses)}; breaker {state}; other {other}", (
        statuses == {400} and state == "closed" and other == 201
    )


@attack("25 slow uploads (head + 1 byte)", "408 each; breaker closed; others served")
def slow_uploads(mode: Mode) -> tuple[str, bool]:
    headers = {**_service(mode, "slow"), "idempotency-key": '"slow"'}

    async def run() -> tuple[list[int], int]:
        uploads = [asyncio.create_task(slow_upload(mode.gateway.url, headers)) for _ in range(25)]
        other = await asyncio.to_thread(mode.checkout, "patient")
        return list(await asyncio.gather(*uploads)), other.status_code

    statuses, other = asyncio.run(run())
    state = mode.breaker("orders")["state"]
    return f"{sorted(set(statuses))} x{len(statuses)}; breaker {state}; other {other}", (
        set(statuses) == {408} and state == "closed" and other == 201
    )


@attack("till (orders:pickup) POSTs /orders/%23/ready", "4xx; no order created")
def encoded_path(mode: Mode) -> tuple[str, bool]:
    till = mode.token("till-x", "orders:pickup", store_id="STORE-001")
    statuses = [
        mode.client.post(p, json={"lines": []}, headers=till).status_code
        for p in ("/v1/orders/orders/%23/ready", "/v1/orders/orders/%3F/ready")
    ]
    mine = mode.client.get("/v1/orders/orders", headers=mode.token("till-x", "orders:read"))
    created = len(mine.json()["items"])
    return f"{statuses}; orders created {created}", (
        all(400 <= s < 500 for s in statuses) and created == 0
    )


@attack("service port called without identity", "401 on every service (mesh mode)")
def no_identity(mode: Mode) -> tuple[str, bool]:
    if not mode.services:
        return "n/a: no service ports in the embedded mode", True
    statuses = {
        name: httpx.get(server.url + path, timeout=10).status_code
        for name, server, path in (
            ("erp", mode.services["erp"], "/inventory/SKU-000001"),
            ("inventory", mode.services["inventory"], "/availability/SKU-000001"),
            ("orders", mode.services["orders"], "/orders"),
        )
    }
    return str(statuses), set(statuses.values()) == {401}


@attack("signed JWT with crit: [unknown]", "401 problem")
def crit(mode: Mode) -> tuple[str, bool]:
    token = mode.critical_token("orders:read")
    r = mode.client.get("/v1/orders/orders", headers={"Authorization": f"Bearer {token}"})
    return f"{r.status_code} {r.headers['content-type']}", r.status_code == 401


def _partner_with_key(mode: Mode, scopes: list[str]) -> tuple[str, str, str]:
    partner = f"p-{uuid.uuid4().hex[:8]}"
    mode.client.post("/admin/v1/partners", json={"id": partner, "name": "P"}, headers=mode.admin)
    created = mode.client.post(
        "/admin/v1/keys", json={"partner_id": partner, "scopes": scopes}, headers=mode.admin
    ).json()
    return partner, created["key"], created["record"]["id"]


@attack("rotate a key twice, the grace lapsed", "2nd rotate 404; old key 401; listed retired")
def rotate_twice(mode: Mode) -> tuple[str, bool]:
    _, key, key_id = _partner_with_key(mode, ["erp:stock"])
    first = mode.client.post(
        f"/admin/v1/keys/{key_id}/rotate", json={"grace_s": 0}, headers=mode.admin
    )
    second = mode.client.post(
        f"/admin/v1/keys/{key_id}/rotate", json={"grace_s": 3600}, headers=mode.admin
    )
    used = mode.client.get("/v1/erp/inventory/SKU-000001", headers={"X-API-Key": key}).status_code
    listed = {
        k["id"]: k["status"] for k in mode.client.get("/admin/v1/keys", headers=mode.admin).json()
    }
    return (
        f"rotate {first.status_code}, again {second.status_code}; old key {used}; {listed[key_id]}",
        (
            first.status_code == 201
            and second.status_code == 404
            and used == 401
            and listed[key_id] == "retired"
        ),
    )


@attack("keys create: god:mode / no such partner", "400, 422")
def bad_keys(mode: Mode) -> tuple[str, bool]:
    statuses = [
        mode.client.post("/admin/v1/keys", json=body, headers=mode.admin).status_code
        for body in (
            {"partner_id": "demo-partner", "scopes": ["god:mode"]},
            {"partner_id": "no-such-partner", "scopes": ["erp:stock"]},
        )
    ]
    return str(statuses), statuses == [400, 422]


@attack("stock key reads the sales ledger", "401/403: stock and ledger are separate scopes")
def ledger(mode: Mode) -> tuple[str, bool]:
    _, key, _ = _partner_with_key(mode, ["erp:stock"])
    stock = mode.client.get("/v1/erp/inventory/SKU-000001", headers={"X-API-Key": key}).status_code
    ledger = mode.client.get("/v1/erp/postings", headers={"X-API-Key": key}).status_code
    token = mode.client.get(
        "/v1/erp/postings", headers=mode.token("stock-app", "erp:stock")
    ).status_code
    return f"stock {stock}; ledger by key {ledger}, by stock token {token}", (
        stock == 200 and ledger in (401, 403) and token == 403
    )


@attack("customer JWT's plan; partner key + token", "customer plan; one count per partner")
def limits(mode: Mode) -> tuple[str, bool]:
    r = mode.client.get("/v1/erp/inventory/SKU-000001", headers=mode.token("shopper", "erp:stock"))
    policy = r.headers["ratelimit-policy"]
    partner, key, _ = _partner_with_key(mode, ["erp:stock"])
    mode.client.get("/v1/erp/inventory/SKU-000001", headers={"X-API-Key": key})
    mode.client.get(
        "/v1/erp/inventory/SKU-000001", headers=mode.token("app", "erp:stock", partner_id=partner)
    )
    shared = day_use(mode, f"partner:{partner}")
    before = day_use(mode, "own:ip:127.0.0.1")
    mode.client.get("/openapi.json")
    own = day_use(mode, "own:ip:127.0.0.1") - before
    return f"{policy.split(',')[0]}; partner count {shared}; /openapi.json counted {own - 1}", (
        policy.startswith('"burst";q=20') and shared == 2 and own == 2
    )


@attack("JSON body sent as text/plain", "415, no order")
def media_type(mode: Mode) -> tuple[str, bool]:
    r = mode.client.post(
        "/v1/orders/orders",
        content=b'{"lines": [{"sku": "SKU-000002", "quantity": 1}], "payment_reference": "p"}',
        headers={
            **mode.token("plain", "orders:write"),
            "content-type": "text/plain",
            "idempotency-key": '"k"',
        },
    )
    return str(r.status_code), r.status_code == 415


@attack("cancel a cancelled order", "409 with status 409 (an integer)")
def transition(mode: Mode) -> tuple[str, bool]:
    order_id = mode.checkout("twice").json()["order_id"]
    me = mode.token("twice", "orders:write")
    mode.client.post(f"/v1/orders/orders/{order_id}/cancel", headers=me)
    r = mode.client.post(f"/v1/orders/orders/{order_id}/cancel", headers=me)
    body = r.json()
    return f"{r.status_code}, status {body['status']!r}, request_id {'request_id' in body}", (
        r.status_code == 409 and body["status"] == 409 and "instance" in body
    )


@attack("20 KB URI; 40 KB header", "414 / 431 problem+json")
def big_heads(mode: Mode) -> tuple[str, bool]:
    out = []
    for head in (
        b"GET /v1/erp/products/" + b"A" * 20_000 + b" HTTP/1.1\r\nhost: t\r\n\r\n",
        b"GET /readyz HTTP/1.1\r\nhost: t\r\nx-big: " + b"b" * 40_000 + b"\r\n\r\n",
    ):
        status, _, body = raw_request(mode.gateway.url, head)
        problem = json.loads(body) if body else {}
        out.append((status, bool(problem.get("request_id"))))
    return str(out), out == [(414, True), (431, True)]


@attack("HEAD on a GET route", "200, no body")
def head(mode: Mode) -> tuple[str, bool]:
    r = mode.client.head("/v1/erp/products/SKU-000001")
    return f"{r.status_code}, {len(r.content)} bytes", r.status_code == 200 and not r.content


@attack("POST /v1/loyalty/expiries (README)", "routed: 200 for an operator")
def expiries(mode: Mode) -> tuple[str, bool]:
    r = mode.client.post("/v1/loyalty/expiries", headers=mode.admin)
    return str(r.status_code), r.status_code == 200


@attack("POS batch of 500 transactions, 1.4 MB", "200, 500 accepted")
def big_batch(mode: Mode) -> tuple[str, bool]:
    from tests.test_body_limits import batch

    r = mode.client.post(
        "/v1/pos/transactions/batches",
        json=batch("STORE-002", 500),
        headers=mode.token("till-2", "pos:write", store_id="STORE-002"),
    )
    accepted = r.json().get("accepted") if r.status_code == 200 else None
    return f"{r.status_code}, accepted {accepted}", r.status_code == 200 and accepted == 500


@attack("guessing keys: 5 made-up keys", "401 each, counted against the address")
def guessing(mode: Mode) -> tuple[str, bool]:
    from gateway.auth.keys import new_key

    before = day_use(mode, "refused:ip:127.0.0.1")
    statuses = {
        mode.client.get(
            "/v1/erp/inventory/SKU-000001", headers={"X-API-Key": new_key()}
        ).status_code
        for _ in range(5)
    }
    counted = day_use(mode, "refused:ip:127.0.0.1") - before
    return f"{sorted(statuses)}; counted {counted}", statuses == {401} and counted == 5


@attack("JWT naming an unregistered partner_id", "401 (no partner plan, no partner count)")
def fake_partner(mode: Mode) -> tuple[str, bool]:
    token = mode.token("app", "erp:stock", partner_id="never-registered")
    r = mode.client.get("/v1/erp/inventory/SKU-000001", headers=token)
    return str(r.status_code), r.status_code == 401


@attack("malformed chunked body", "400 problem, not a bare 500")
def bad_chunk(mode: Mode) -> tuple[str, bool]:
    auth = mode.admin["Authorization"].encode()
    status, headers, _ = raw_request(
        mode.gateway.url,
        b"POST /v1/erp/inventory/query HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        b"authorization: " + auth + b"\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    )
    return f"{status} {headers.get('content-type')}", status == 400


@attack("a service's /schema without identity", "401 (mesh mode)")
def schema(mode: Mode) -> tuple[str, bool]:
    if not mode.services:
        return "n/a: no service ports in the embedded mode", True
    statuses = {
        name: httpx.get(server.url + "/schema/openapi.json", timeout=10).status_code
        for name, server in mode.services.items()
    }
    return str(statuses), set(statuses.values()) == {401}


@attack("two instances with default settings", "different Redis prefixes")
def prefixes(mode: Mode) -> tuple[str, bool]:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        first, second = Settings(data_dir=a).key_prefix(), Settings(data_dir=b).key_prefix()
    return f"{first} vs {second}", first != second


def main() -> int:
    results: dict[str, dict[str, tuple[str, bool]]] = {}
    with tempfile.TemporaryDirectory(prefix="rm-attacks-") as tmp:
        for name in ("embedded", "mesh"):
            with running_mode(name, Path(tmp) / name) as mode:
                for title, _, fn in ATTACKS:
                    try:
                        results.setdefault(title, {})[name] = fn(mode)
                    except Exception as exc:  # an attack that breaks the replay is a failure
                        results.setdefault(title, {})[name] = (f"error: {exc!r}"[:60], False)
    print("| attack | expected | embedded | mesh |")
    print("|---|---|---|---|")
    ok = True
    for title, expected, _ in ATTACKS:
        cells = []
        for name in ("embedded", "mesh"):
            seen, good = results[title][name]
            ok &= good
            cells.append(f"{'ok' if good else 'FAIL'}: {seen}")
        print(f"| {title} | {expected} | {cells[0]} | {cells[1]} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
