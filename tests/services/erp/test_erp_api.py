"""The ERP system API through the gateway, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
import redis.asyncio as aioredis

from contracts.events import Envelope, ErpEvent, OrderPostingBooked, StockAdjusted
from services.kit.identity import IDENTITY_HEADER, Identity
from tests.conftest import Running
from tests.support import IdentityAuth


def posting(
    posting_id: str, qty: int = 2, unit: int = 1000, sku: str = "SKU-000001"
) -> dict[str, Any]:
    return {
        "posting_id": posting_id,
        "order_id": posting_id,
        "lines": [
            {
                "sku": sku,
                "location_id": "STORE-001",
                "quantity": qty,
                "unit_price": {"amount": unit, "currency": "EUR"},
            }
        ],
        "total": {"amount": qty * unit, "currency": "EUR"},
        "occurred_at": "2026-11-24T10:00:00Z",
    }


async def test_seeded_catalogue_is_served_through_the_gateway(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    r = await c.get("/v1/erp/products/SKU-000001")
    assert r.status_code == 200
    product = r.json()
    assert product["sku"] == "SKU-000001"
    assert product["price"]["currency"] == "EUR" and product["price"]["amount"] > 0

    skus: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 64}
        if cursor:
            params["cursor"] = cursor
        page = (await c.get("/v1/erp/products", params=params)).json()
        skus += [p["sku"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(skus) == len(set(skus)) == 200

    locations = (await c.get("/v1/erp/locations")).json()
    assert sum(1 for loc in locations if loc["kind"] == "store") == 10
    assert sum(1 for loc in locations if loc["kind"] == "dc") == 2

    stock = (await c.get("/v1/erp/inventory/SKU-000123", headers=admin)).json()
    assert {p["location_id"] for p in stock["positions"]} == {loc["id"] for loc in locations}


async def test_bulk_positions_name_unknown_skus(mesh: Running, admin: dict[str, str]) -> None:
    r = await mesh.client.post(
        "/v1/erp/inventory/query",
        json={"skus": ["SKU-000001", "SKU-000002", "SKU-999999"]},
        headers=admin,
    )
    assert r.status_code == 200
    body = r.json()
    assert [i["sku"] for i in body["items"]] == ["SKU-000001", "SKU-000002"]
    assert body["unknown_skus"] == ["SKU-999999"]


async def test_unknown_product_is_a_404_problem(mesh: Running) -> None:
    r = await mesh.client.get("/v1/erp/products/SKU-999999")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/unknown-sku")
    assert problem["instance"] == "/v1/erp/products/SKU-999999"
    assert problem["request_id"] == r.headers["x-request-id"]


async def test_order_posting_is_stored_once_and_answers_the_same(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    before = (await c.get("/v1/erp/inventory/SKU-000001", headers=admin)).json()["positions"]
    first = await c.post("/v1/erp/postings/orders", json=posting("order-1", qty=3), headers=admin)
    again = await c.post("/v1/erp/postings/orders", json=posting("order-1", qty=3), headers=admin)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.headers["idempotent-replayed"] == "false"
    assert again.headers["idempotent-replayed"] == "true"

    totals = (await c.get("/v1/erp/postings/totals/SKU-000001", headers=admin)).json()
    assert totals["order_postings"] == 1 and totals["ordered_units"] == 3
    after = (await c.get("/v1/erp/inventory/SKU-000001", headers=admin)).json()["positions"]
    store = {p["location_id"]: p for p in before}["STORE-001"]
    booked = {p["location_id"]: p for p in after}["STORE-001"]
    assert booked["on_hand"] == store["on_hand"] - 3
    assert booked["version"] == store["version"] + 1

    record = (await c.get("/v1/erp/postings/order-1", headers=admin)).json()
    assert record["document_number"] == first.json()["document_number"]
    assert record["lines"][0]["quantity"] == 3


async def test_same_posting_id_with_other_content_is_a_conflict(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    assert (
        await c.post("/v1/erp/postings/orders", json=posting("order-2"), headers=admin)
    ).status_code == 201
    r = await c.post("/v1/erp/postings/orders", json=posting("order-2", qty=5), headers=admin)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/posting-conflict")
    totals = (await c.get("/v1/erp/postings/totals/SKU-000001", headers=admin)).json()
    assert totals["ordered_units"] == 2


async def test_concurrent_replays_of_one_posting_book_it_once(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    results = await asyncio.gather(
        *(
            c.post("/v1/erp/postings/orders", json=posting("order-3"), headers=admin)
            for _ in range(20)
        )
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["document_number"] for r in results}) == 1
    assert sum(r.headers["idempotent-replayed"] == "false" for r in results) == 1
    totals = (await c.get("/v1/erp/postings/totals/SKU-000001", headers=admin)).json()
    assert totals == {
        "sku": "SKU-000001",
        "order_postings": 1,
        "ordered_units": 2,
        "refund_postings": 0,
        "refunded_units": 0,
    }


async def test_postings_must_add_up_and_name_known_things(
    mesh: Running, admin: dict[str, str]
) -> None:
    c = mesh.client
    wrong_total = posting("order-4")
    wrong_total["total"]["amount"] += 1
    r = await c.post("/v1/erp/postings/orders", json=wrong_total, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "amount"

    unknown = posting("order-5", sku="SKU-999999")
    r = await c.post("/v1/erp/postings/orders", json=unknown, headers=admin)
    assert r.status_code == 422
    assert "SKU-999999" in r.json()["errors"][0]["message"]
    assert (await c.get("/v1/erp/postings/order-5", headers=admin)).status_code == 404


def inside(mesh: Running, identity: Identity) -> httpx.AsyncClient:
    """The ERP as its sibling services call it (the batch endpoint is not published at the
    gateway: it is how the mesh's own consumers book)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(mesh.app.registry.apps["erp"]),
        base_url="http://erp",
        auth=IdentityAuth(mesh.app.runtime.identity, identity),
    )


POSTER = Identity(kind="service", consumer="pos", scopes=frozenset({"erp:post"}))


async def test_a_batch_books_each_posting_on_its_own_terms(
    mesh: Running, admin: dict[str, str]
) -> None:
    """One call, one result per posting as if it came alone; the refused ones change nothing
    and stop nothing; the same batch again books nothing twice."""
    c = mesh.client
    erp = inside(mesh, POSTER)
    assert (
        await c.post("/v1/erp/postings/orders", json=posting("b-taken"), headers=admin)
    ).status_code == 201
    wrong_total = posting("b-wrong-total")
    wrong_total["total"]["amount"] += 1
    refund = {
        "posting_id": "b-refund",
        "order_id": "b-new-1",
        "lines": posting("x", qty=1)["lines"],
        "amount": {"amount": 1000, "currency": "EUR"},
        "occurred_at": "2026-11-24T12:00:00Z",
    }
    batch = {
        "orders": [
            posting("b-new-1", qty=3),
            posting("b-taken", qty=5),  # its id is booked with other content
            wrong_total,
            posting("b-unknown-sku", sku="SKU-999999"),
            posting("b-new-2", qty=1),
            posting("b-taken"),  # the same as booked: a replay
        ],
        "refunds": [refund],
    }
    r = await erp.post("/postings/batch", json=batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(x["posting_id"], x["status"]) for x in body["results"]] == [
        ("b-new-1", 201),
        ("b-taken", 409),
        ("b-wrong-total", 422),
        ("b-unknown-sku", 422),
        ("b-new-2", 201),
        ("b-taken", 200),
        ("b-refund", 201),
    ]
    assert (body["booked"], body["replayed"], body["refused"]) == (3, 1, 3)
    conflict, wrong, unknown = body["results"][1:4]
    assert conflict["problem"]["type"].endswith("/posting-conflict")
    assert wrong["problem"]["errors"][0]["field"] == "amount"
    assert "SKU-999999" in unknown["problem"]["errors"][0]["message"]
    assert body["results"][0]["receipt"]["document_number"].startswith("SO-")
    assert body["results"][6]["receipt"]["kind"] == "refund"
    totals = (await c.get("/v1/erp/postings/totals/SKU-000001", headers=admin)).json()
    expected = {
        "sku": "SKU-000001",
        "order_postings": 3,  # b-taken, b-new-1, b-new-2
        "ordered_units": 2 + 3 + 1,
        "refund_postings": 1,
        "refunded_units": 1,
    }
    assert totals == expected
    again = (await erp.post("/postings/batch", json=batch)).json()
    assert [x["status"] for x in again["results"]] == [200, 409, 422, 422, 200, 200, 200]
    assert [x.get("receipt") for x in again["results"]] == [
        x.get("receipt") for x in body["results"]
    ]
    assert (await c.get("/v1/erp/postings/totals/SKU-000001", headers=admin)).json() == expected
    await erp.aclose()


async def test_a_batch_needs_the_posting_scope_and_a_bounded_size(
    mesh: Running, admin: dict[str, str]
) -> None:
    reader = Identity(kind="user", consumer="reader", sub="reader", scopes=frozenset({"erp:stock"}))
    async with inside(mesh, reader) as erp:
        refused = await erp.post("/postings/batch", json={"orders": [posting("b-scope")]})
    assert refused.status_code == 403
    async with inside(mesh, POSTER) as erp:
        too_many = {"orders": [posting(f"b-many-{n}") for n in range(501)]}
        r = await erp.post("/postings/batch", json=too_many)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "orders"
    assert (await mesh.client.get("/v1/erp/postings/b-many-0", headers=admin)).status_code == 404
    # not published at the gateway: the mesh's own consumers book in batches
    r = await mesh.client.post("/v1/erp/postings/batch", json={"orders": []}, headers=admin)
    assert r.status_code == 405  # the gateway routes only GETs under /postings/


async def test_refunds_and_queries(mesh: Running, admin: dict[str, str]) -> None:
    c = mesh.client
    await c.post("/v1/erp/postings/orders", json=posting("order-6", qty=2), headers=admin)
    refund = {
        "posting_id": "refund-6",
        "order_id": "order-6",
        "lines": posting("x", qty=1)["lines"],
        "amount": {"amount": 1000, "currency": "EUR"},
        "occurred_at": "2026-11-24T12:00:00+01:00",
    }
    r = await c.post("/v1/erp/postings/refunds", json=refund, headers=admin)
    assert r.status_code == 201 and r.json()["kind"] == "refund"
    page = (await c.get("/v1/erp/postings", params={"order_id": "order-6"}, headers=admin)).json()
    assert [(p["posting_id"], p["kind"]) for p in page["items"]] == [
        ("order-6", "order"),
        ("refund-6", "refund"),
    ]
    assert page["items"][1]["occurred_at"] == "2026-11-24T11:00:00Z"
    only_refunds = (
        await c.get("/v1/erp/postings", params={"kind": "refund"}, headers=admin)
    ).json()
    assert [p["posting_id"] for p in only_refunds["items"]] == ["refund-6"]
    totals = (await c.get("/v1/erp/postings/totals/SKU-000001", headers=admin)).json()
    assert (totals["refund_postings"], totals["refunded_units"]) == (1, 1)
    # the ERP itself checks the scope too, not only the gateway
    reader = Identity(kind="user", consumer="reader", sub="reader", scopes=frozenset({"erp:stock"}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(mesh.app.registry.apps["erp"]), base_url="http://erp"
    ) as erp:
        refused = await erp.post(
            "/postings/refunds",
            json={**refund, "posting_id": "refund-7"},
            headers={IDENTITY_HEADER: mesh.app.runtime.identity.sign(reader)},
        )
    assert refused.status_code == 403


async def test_postings_and_adjustments_publish_events(
    mesh: Running, redis_client: aioredis.Redis, mesh_env: dict[str, str], admin: dict[str, str]
) -> None:
    c = mesh.client
    stream = mesh_env["REDIS_PREFIX"] + "events.erp"
    await c.post("/v1/erp/postings/orders", json=posting("order-7"), headers=admin)
    adjustment = {
        "adjustment_id": "count-7",
        "sku": "SKU-000002",
        "location_id": "DC-NORTH",
        "delta": -4,
        "reason": "count",
    }
    first = await c.post("/v1/erp/inventory/adjustments", json=adjustment, headers=admin)
    again = await c.post("/v1/erp/inventory/adjustments", json=adjustment, headers=admin)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    decoder = msgspec.json.Decoder(Envelope[ErpEvent])
    events: list[Envelope[Any]] = []
    for _ in range(100):
        entries = await redis_client.xrange(stream)
        events = [decoder.decode(fields[b"event"]) for _, fields in entries]
        if len(events) >= 2:
            break
        await asyncio.sleep(0.02)
    assert [type(e.data) for e in events] == [OrderPostingBooked, StockAdjusted]
    assert events[0].data.posting_id == "order-7"
    assert events[1].data.on_hand == first.json()["on_hand"]
    assert events[1].causation_id == "count-7"
