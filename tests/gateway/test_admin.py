"""The operator API: only for admins; keys, breakers, limits and dead letters."""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from tests.conftest import Running


async def test_admin_api_needs_an_admin_token(mesh: Running, bearer: Any) -> None:
    c = mesh.client
    r = await c.get("/admin/v1/keys")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert (await c.get("/admin/v1/keys", headers=bearer("alice", "erp:stock"))).status_code == 403
    assert (
        await c.get("/admin/v1/keys", headers={"Authorization": "Bearer x.y.z"})
    ).status_code == 401


async def test_operator_mints_uses_rotates_and_revokes_a_key(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    assert (
        await c.post("/admin/v1/partners", json={"id": "acme", "name": "ACME"}, headers=admin)
    ).status_code == 201
    r = await c.post(
        "/admin/v1/keys",
        json={"partner_id": "acme", "scopes": ["erp:stock"], "plan": "partner"},
        headers=admin,
    )
    assert r.status_code == 201
    created = r.json()
    key, key_id = created["key"], created["record"]["id"]
    listed = (await c.get("/admin/v1/keys", params={"partner_id": "acme"}, headers=admin)).json()
    assert [k["id"] for k in listed] == [key_id]
    assert key not in str(listed)

    stock = "/v1/erp/inventory/SKU-000001"
    assert (await c.get(stock, headers={"X-API-Key": key})).status_code == 200
    rotated = await c.post(f"/admin/v1/keys/{key_id}/rotate", json={"grace_s": 3600}, headers=admin)
    assert rotated.status_code == 201
    new_key = rotated.json()["key"]
    assert (await c.get(stock, headers={"X-API-Key": new_key})).status_code == 200
    assert (await c.get(stock, headers={"X-API-Key": key})).status_code == 200  # grace
    revoked = await c.post(f"/admin/v1/keys/{key_id}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert (await c.get(stock, headers={"X-API-Key": key})).status_code == 401
    assert (
        await c.post("/admin/v1/keys/key_0000000000000000/revoke", headers=admin)
    ).status_code == 404

    bad_plan = await c.post(
        "/admin/v1/keys", json={"partner_id": "acme", "plan": "gold"}, headers=admin
    )
    assert bad_plan.status_code == 400 and bad_plan.json()["errors"][0]["field"] == "plan"
    # what the published schema says of plans and scopes (from the configuration), refused as
    # invalid input
    for refused in (
        {"partner_id": "acme", "scopes": ["god:mode"]},  # no route knows it
        {"partner_id": "acme", "scopes": ["erp:post"]},  # known, but not in the partner plan
        {"partner_id": "acme", "scopes": ["erp:ledger"]},  # a JWT-only scope: no key route
    ):
        r = await c.post("/admin/v1/keys", json=refused, headers=admin)
        assert r.status_code == 400, (refused, r.text)
        assert r.json()["type"].endswith("/validation") and r.json()["status"] == 400
        assert r.json()["errors"][0]["field"] == "scopes"
    nobody = await c.post(
        "/admin/v1/keys", json={"partner_id": "nobody", "scopes": ["erp:stock"]}, headers=admin
    )
    assert nobody.status_code == 422 and nobody.json()["type"].endswith("/unknown-partner")
    # the listing shows each key's real state, its successor and its grace end
    states = {k["id"]: k for k in (await c.get("/admin/v1/keys", headers=admin)).json()}
    assert states[key_id]["status"] == "revoked"
    assert states[key_id]["rotated_to"] == rotated.json()["record"]["id"]
    assert states[key_id]["grace_until"] is not None
    assert states[rotated.json()["record"]["id"]]["status"] == "active"
    again = await c.post(f"/admin/v1/keys/{key_id}/rotate", json={"grace_s": 60}, headers=admin)
    assert again.status_code == 404  # a revoked key is never rotated back to life


async def test_plans_routes_breakers_and_limits_are_visible(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    plans = (await c.get("/admin/v1/plans", headers=admin)).json()
    assert plans["partner"]["per_minute"] == 600
    routes = (await c.get("/admin/v1/routes", headers=admin)).json()
    assert {"api": "erp", "path": "/postings/orders"}.items() <= next(
        r for r in routes if r["path"] == "/postings/orders"
    ).items()
    breakers = {b["upstream"]: b for b in (await c.get("/admin/v1/breakers", headers=admin)).json()}
    assert set(breakers) == {
        "erp",
        "inventory",
        "pos",
        "loyalty",
        "orders",
        "web",
        "store",
        "partner",
        "care",
    }
    assert breakers["erp"]["state"] == "closed"
    mesh.app.guards["erp"].breaker._open(0.0)
    listed = (await c.get("/admin/v1/breakers", headers=admin)).json()
    states = {b["upstream"]: b["state"] for b in listed}
    assert states == {
        "erp": "open",
        "inventory": "closed",
        "pos": "closed",
        "loyalty": "closed",
        "orders": "closed",
        "web": "closed",
        "store": "closed",
        "partner": "closed",
        "care": "closed",
    }
    reset = await c.post("/admin/v1/breakers/erp/reset", headers=admin)
    assert reset.json()["state"] == "closed"

    for _ in range(3):
        await c.get("/v1/erp/products/SKU-000001")
    use = (await c.get("/admin/v1/limits/ip:203.0.113.7", headers=admin)).json()
    assert use["shared"] is True
    assert {w["window"]: w["used"] for w in use["windows"]}["day"] == 3


async def test_dead_letters_are_listed_and_replayed(
    mesh: Running, admin: dict[str, str], redis_client: aioredis.Redis, mesh_env: dict[str, str]
) -> None:
    dlq = mesh_env["REDIS_PREFIX"] + "dlq.events.erp"
    letter_id = await redis_client.xadd(
        dlq,
        {
            "stream": "events.erp",
            "group": "ats",
            "msg_id": "1-0",
            "event_id": "ev-1",
            "type": "StockAdjusted",
            "event": msgspec.json.encode({"id": "ev-1"}),
            "error": "RuntimeError: boom",
            "attempts": 5,
            "failed_at": "2026-11-24T00:00:00+00:00",
        },
    )
    c = mesh.client
    letters = (await c.get("/admin/v1/dead-letters/events.erp", headers=admin)).json()
    assert [(d["event_id"], d["error"]) for d in letters] == [("ev-1", "RuntimeError: boom")]
    r = await c.post(
        f"/admin/v1/dead-letters/events.erp/{letter_id.decode()}/replay", headers=admin
    )
    assert r.status_code == 202
    # the letter left the dead letters (the consumer may dead-letter this junk event again,
    # as a new letter with an id of its own)
    after = (await c.get("/admin/v1/dead-letters/events.erp", headers=admin)).json()
    assert letter_id.decode() not in [d["id"] for d in after]
    entries = await redis_client.xrange(mesh_env["REDIS_PREFIX"] + "events.erp")
    assert entries[-1][1][b"id"] == b"ev-1"
    assert (await c.get("/admin/v1/dead-letters/events.nope", headers=admin)).status_code == 404
    # an id no stream can hold (past 64 bits) is refused as invalid, not a Redis error (a 500)
    replay = "/admin/v1/dead-letters/events.erp/{}/replay"
    beyond = await c.post(replay.format("92580733584034270568-2"), headers=admin)
    assert beyond.status_code == 400, beyond.text
    largest = await c.post(replay.format("9999999999999999999-2"), headers=admin)
    assert largest.status_code == 404, largest.text


async def test_metrics_count_requests_refusals_and_breakers(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    await c.get("/v1/erp/products/SKU-000001")
    await c.get("/v1/erp/products/SKU-999999")
    await c.get("/v1/erp/inventory/SKU-000001")  # no credentials
    assert (await c.get("/admin/v1/metrics")).status_code == 401
    r = await c.get("/admin/v1/metrics", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'retailmesh_gateway_requests_total{api="erp",status="200",version="v1"} 1.0' in text
    assert 'retailmesh_gateway_requests_total{api="erp",status="404",version="v1"} 1.0' in text
    assert 'retailmesh_gateway_refusals_total{reason="unauthenticated"} 1.0' in text
    assert 'retailmesh_gateway_breaker_state{upstream="erp"} 0.0' in text
    assert 'retailmesh_gateway_request_duration_seconds_count{api="erp"} 3.0' in text
    assert "retailmesh_gateway_limits_shared 1.0" in text
