"""One strictness in every mode: the gateway's routing, authorization and client-fault rules,
run from one parametrised suite against the embedded mesh (one process) and the mesh mode
(one process per service), both served by Granian on real sockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.modes import Mode, day_use, raw_request, running_mode, slow_upload
from tests.support import settle_sync


@pytest.fixture(scope="module", params=["embedded", "mesh"])
def mode(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mode]:
    with running_mode(request.param, tmp_path_factory.mktemp(request.param)) as running:
        yield running


def test_an_encoded_hash_or_question_mark_never_cuts_the_authorized_path(mode: Mode) -> None:
    """A till allowed only to mark pick-ups ready cannot create an order through
    `/orders/%23/ready` (forwarded decoded, it reached the upstream as `POST /orders`)."""
    till = mode.token("till-7", "orders:pickup", store_id="STORE-001")
    for path in ("/v1/orders/orders/%23/ready", "/v1/orders/orders/%3F/ready"):
        r = mode.client.post(path, json={"lines": []}, headers=till)
        assert r.status_code in (400, 404, 422), (path, r.status_code, r.text)
        assert "order_id" not in r.json() or r.json().get("status") != "confirmed"
    mine = mode.client.get("/v1/orders/orders", headers=mode.token("till-7", "orders:read"))
    assert mine.status_code == 200 and mine.json()["items"] == []


def test_deep_bodies_are_400_and_never_open_the_breaker(mode: Mode) -> None:
    deep = b'{"lines": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for _ in range(40):  # more than the breaker's minimum of requests
        r = mode.client.post(
            "/v1/orders/orders",
            content=deep,
            headers={
                # a service's plan: this is about the breaker, not about rate limits
                **mode.token("deep-diver", "orders:write", roles=["service"]),
                "content-type": "application/json",
                "Idempotency-Key": f'"{uuid.uuid4()}"',
            },
        )
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "nested deeper" in str(r.json()["errors"])
    assert mode.breaker("orders")["state"] == "closed"
    assert mode.breaker("orders")["failures"] == 0
    assert mode.checkout("someone-else").status_code == 201


def test_a_body_of_another_media_type_is_415(mode: Mode) -> None:
    body = b'{"lines": [{"sku": "SKU-000002", "quantity": 1}], "payment_reference": "psp-1"}'
    for media in ("text/plain", "application/x-www-form-urlencoded"):
        r = mode.client.post(
            "/v1/orders/orders",
            content=body,
            headers={
                **mode.token("form-sender", "orders:write", "orders:read"),
                "content-type": media,
                "Idempotency-Key": f'"{uuid.uuid4()}"',
            },
        )
        assert r.status_code == 415, (media, r.text)
        assert r.json()["status"] == 415 and r.json()["request_id"]
    listed = mode.client.get(
        "/v1/orders/orders", headers=mode.token("form-sender", "orders:read")
    ).json()
    assert listed["items"] == []


def test_a_critical_header_extension_is_401(mode: Mode) -> None:
    token = mode.critical_token("orders:read")
    r = mode.client.get("/v1/orders/orders", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_an_illegal_transition_is_409_with_the_http_status(mode: Mode) -> None:
    created = mode.checkout("twice-cancel")
    assert created.status_code == 201, created.text
    order_id = created.json()["order_id"]
    me = mode.token("twice-cancel", "orders:write", "orders:read")
    first = mode.client.post(f"/v1/orders/orders/{order_id}/cancel", headers=me)
    assert first.status_code == 200, first.text
    again = mode.client.post(f"/v1/orders/orders/{order_id}/cancel", headers=me)
    assert again.status_code == 409
    problem = again.json()
    assert problem["status"] == 409 and problem["order_status"] == "cancelled"
    assert problem["instance"] == f"/v1/orders/orders/{order_id}/cancel" and problem["request_id"]


def test_slow_uploads_are_408_for_their_sender_and_nobody_else(mode: Mode) -> None:
    slow = {
        **mode.token("slowpoke", "orders:write", roles=["service"]),
        "idempotency-key": '"slow"',
    }

    async def scenario() -> tuple[list[int], list[int]]:
        uploads = [asyncio.create_task(slow_upload(mode.gateway.url, slow)) for _ in range(25)]
        others: list[int] = []
        while not all(u.done() for u in uploads):  # others are served while the uploads hang
            r = await asyncio.to_thread(mode.checkout, f"patient-{len(others)}")
            others.append(r.status_code)
            if len(others) >= 3:
                break
        return list(await asyncio.gather(*uploads)), others

    statuses, others = asyncio.run(scenario())
    assert statuses == [408] * 25
    assert others and set(others) == {201}
    state = mode.breaker("orders")
    assert state["state"] == "closed" and state["failures"] == 0


def test_services_refuse_callers_without_the_gateways_identity(mode: Mode) -> None:
    if mode.name == "embedded":
        pytest.skip("in the embedded mode the services have no socket of their own")
    for service, path in (
        ("erp", "/products/SKU-000001"),
        ("erp", "/inventory/SKU-000001"),
        ("erp", "/postings"),
        ("inventory", "/availability/SKU-000001"),
        ("loyalty", "/members/M-1"),
        ("orders", "/orders"),
        ("pos", "/transactions/T-1"),
    ):
        r = httpx.get(mode.services[service].url + path, timeout=10)
        assert r.status_code == 401, (service, path, r.text)
        assert httpx.get(mode.services[service].url + "/healthz").status_code == 200


def test_head_is_answered_wherever_get_is(mode: Mode) -> None:
    for path in ("/v1/erp/products/SKU-000001", "/openapi.json", "/readyz"):
        get = mode.client.get(path)
        head = mode.client.head(path)
        assert head.status_code == get.status_code == 200, (path, head.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    refused = mode.client.head("/v1/erp/inventory/SKU-000001")  # GET needs a key: so does HEAD
    assert refused.status_code == 401


def test_long_uris_and_oversized_headers_get_a_problem_not_an_empty_answer(mode: Mode) -> None:
    for head, status in (
        (b"GET /v1/erp/products/" + b"A" * 20_000 + b" HTTP/1.1\r\nhost: t\r\n\r\n", 414),
        (b"GET /readyz?" + b"q=1&" * 5000 + b" HTTP/1.1\r\nhost: t\r\n\r\n", 414),
        (
            b"GET /v1/erp/locations HTTP/1.1\r\nhost: t\r\nx-big: " + b"b" * 40_000 + b"\r\n\r\n",
            431,
        ),
        (
            b"GET /openapi.json HTTP/1.1\r\nhost: t\r\n"
            + b"".join(b"x-h%d: v\r\n" % i for i in range(80))
            + b"\r\n",
            431,
        ),
    ):
        got, headers, body = raw_request(mode.gateway.url, head)
        assert got == status, (head[:60], got, body[:200])
        assert headers["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["status"] == status and problem["instance"] and problem["request_id"]


def test_operators_run_the_points_expiry_through_the_gateway(mode: Mode) -> None:
    r = mode.client.post("/v1/loyalty/expiries", headers=mode.admin)
    assert r.status_code == 200, r.text
    refused = mode.client.post("/v1/loyalty/expiries", headers=mode.token("shopper"))
    assert refused.status_code == 403


def test_each_kind_of_consumer_has_its_plan(mode: Mode) -> None:
    path = "/v1/erp/inventory/SKU-000001"
    for headers, quota in (
        (mode.token("shopper-1", "erp:stock"), '"burst";q=20'),  # customer
        (mode.token("till-1", "erp:stock", store_id="STORE-001"), '"burst";q=50'),  # pos
        (mode.token("svc-1", "erp:stock", roles=["service"]), '"burst";q=1000'),  # internal
    ):
        r = mode.client.get(path, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["ratelimit-policy"].startswith(quota), r.headers["ratelimit-policy"]


def test_a_partners_keys_and_tokens_share_one_count(mode: Mode) -> None:
    partner = f"p-{uuid.uuid4().hex[:8]}"
    admin = mode.admin
    assert mode.client.post(
        "/admin/v1/partners", json={"id": partner, "name": "P"}, headers=admin
    ).is_success
    keys = [
        mode.client.post(
            "/admin/v1/keys", json={"partner_id": partner, "scopes": ["erp:stock"]}, headers=admin
        ).json()["key"]
        for _ in range(2)
    ]
    path = "/v1/erp/inventory/SKU-000001"
    for key in keys:
        assert mode.client.get(path, headers={"X-API-Key": key}).status_code == 200
    token = mode.token("partner-app", "erp:stock", partner_id=partner)
    assert mode.client.get(path, headers=token).status_code == 200
    assert day_use(mode, f"partner:{partner}") == 3  # two keys and a token, one count


def test_the_gateways_own_paths_are_counted_too(mode: Mode) -> None:
    consumer = "own:ip:127.0.0.1"
    before = day_use(mode, consumer)
    for path in ("/openapi.json", "/readyz", "/docs"):
        mode.client.get(path)
    # the three, and the admin call that read the count before
    assert day_use(mode, consumer) - before == 4


def test_refused_credentials_are_counted_against_the_address(mode: Mode) -> None:
    from gateway.auth.keys import new_key

    consumer = "refused:ip:127.0.0.1"
    before = day_use(mode, consumer)
    for _ in range(5):  # well-formed keys nobody issued, and a garbage token
        r = mode.client.get("/v1/erp/inventory/SKU-000001", headers={"X-API-Key": new_key()})
        assert r.status_code == 401
    assert (
        mode.client.get("/v1/erp/locations", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    assert day_use(mode, consumer) - before == 6


def test_a_token_naming_an_unregistered_partner_is_401(mode: Mode) -> None:
    token = mode.token("app", "erp:stock", partner_id="never-registered")
    r = mode.client.get("/v1/erp/inventory/SKU-000001", headers=token)
    assert r.status_code == 401 and "partner" in r.json()["detail"]


def test_a_malformed_chunked_body_is_a_400_problem(mode: Mode) -> None:
    auth = mode.admin["Authorization"].encode()
    status, _, body = raw_request(
        mode.gateway.url,
        b"POST /v1/erp/inventory/query HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        b"authorization: " + auth + b"\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    )
    assert status == 400, body
    assert json.loads(body)["type"].endswith("/bad-body")


def test_the_admin_apis_bodies_are_bounded_in_time_too(mode: Mode) -> None:
    async def run() -> int:
        return await slow_upload(mode.gateway.url, mode.admin, path="/admin/v1/partners")

    assert asyncio.run(run()) == 408


def test_the_web_shops_two_versions_agree_and_v1_announces_its_successor(mode: Mode) -> None:
    """v1's quantity is v2's ship quantity; v1 carries Deprecation, Sunset and a Link to v2;
    both answer a conditional GET with 304 and no body."""
    v1 = mode.client.get("/v1/web/products/SKU-000005")
    v2 = mode.client.get("/v2/web/products/SKU-000005", params={"store": "STORE-006"})
    assert v1.status_code == v2.status_code == 200, (v1.text, v2.text)
    one, two = v1.json(), v2.json()
    assert one["quantity"] == two["ship"]["quantity"] > 0
    assert one["in_stock"] is two["ship"]["in_stock"] is True
    assert {k: one[k] for k in ("sku", "name", "category", "price")} == {
        k: two[k] for k in ("sku", "name", "category", "price")
    }
    assert v1.headers["deprecation"].startswith("@")
    assert v1.headers["sunset"].endswith("GMT")
    assert v1.headers["link"] == '</v2/web/products/SKU-000005>; rel="successor-version"'
    assert "deprecation" not in v2.headers and "link" not in v2.headers
    # pick-up: the store asked for first, at 0 km, then the next nearest ones
    assert two["near"] == "STORE-006"
    assert two["pickup"][0]["store_id"] == "STORE-006"
    assert [p["distance_km"] for p in two["pickup"]] == sorted(
        p["distance_km"] for p in two["pickup"]
    )
    for answer in (v1, v2):
        assert answer.headers["cache-control"].startswith("public, max-age=")
        again = mode.client.get(
            answer.request.url, headers={"If-None-Match": answer.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == answer.headers["etag"]
        other = mode.client.get(answer.request.url, headers={"If-None-Match": '"elsewhere"'})
        assert other.status_code == 200 and other.json() == answer.json()


def test_the_web_shops_search_pages_through_a_category_once(mode: Mode) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"category": "electronics", "limit": "7"}
        if cursor:
            params["cursor"] = cursor
        page = mode.client.get("/v2/web/products", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert all(item["category"] == "electronics" for item in body["items"])
        seen += [item["sku"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen)) and len(seen) == 20  # two kinds of the twenty, ten each
    words = mode.client.get("/v1/web/products", params={"q": "warm HEADPHONES", "limit": 100})
    assert words.status_code == 200
    names = [item["name"] for item in words.json()["items"]]
    assert names and all(n.startswith("Warm Headphones") for n in names)


def test_the_web_shop_answers_unknown_things_with_a_problem(mode: Mode) -> None:
    for path, params, slug in (
        ("/v2/web/products/SKU-999999", {}, "unknown-product"),
        ("/v2/web/products/SKU-000005", {"store": "STORE-999"}, "unknown-store"),
    ):
        r = mode.client.get(path, params=params)
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/" + slug)
        assert r.json()["instance"] == path  # the client's path, not the service's
    bad = mode.client.get("/v2/web/products", params={"limit": "0"})
    assert bad.status_code == 400


def test_a_customer_checks_out_follows_and_returns_through_the_web_shop(mode: Mode) -> None:
    """Checkout, orders, returns and points on the web API, each the customer's own: another
    customer gets 404 for them, as on the services behind; a till is not a shopper (403)."""
    alice = mode.token("alice", "orders:write", "orders:read", "orders:return")
    bob = mode.token("bob", "orders:write", "orders:read", "orders:return")
    key = f'"{uuid.uuid4()}"'
    body = {"lines": [{"sku": "SKU-000007", "quantity": 2}], "payment_reference": "psp-web-1"}
    first = mode.client.post(
        "/v2/web/checkout", json=body, headers={**alice, "Idempotency-Key": key}
    )
    assert first.status_code == 201, first.text
    order = first.json()
    assert order["customer"] == "alice" and order["status"] == "confirmed"
    again = mode.client.post(
        "/v2/web/checkout", json=body, headers={**alice, "Idempotency-Key": key}
    )
    assert again.status_code == 201 and again.json()["order_id"] == order["order_id"]
    assert again.headers["idempotent-replayed"] == "true"
    oid = order["order_id"]
    mine = mode.client.get("/v2/web/orders", headers=alice).json()["items"]
    assert oid in [o["order_id"] for o in mine]
    assert oid not in [
        o["order_id"] for o in mode.client.get("/v2/web/orders", headers=bob).json()["items"]
    ]
    v1 = mode.client.get(f"/v1/web/orders/{oid}", headers=alice)
    assert v1.status_code == 200 and v1.json()["order_id"] == oid
    assert v1.headers["link"] == f'</v2/web/orders/{oid}>; rel="successor-version"'
    theirs = mode.client.get(f"/v2/web/orders/{oid}", headers=bob)
    assert theirs.status_code == 404, theirs.text
    assert theirs.json()["instance"] == f"/v2/web/orders/{oid}"  # the client's path
    assert theirs.json()["request_id"] == theirs.headers["x-request-id"]
    settle_sync(  # the ERP posting runs after the answer; an order ships once posted
        lambda: mode.client.get(f"/v2/web/orders/{oid}", headers=alice).json()["status"],
        lambda status: status == "posted",
    )
    for step in ("ship", "deliver"):
        moved = mode.client.post(f"/v1/orders/orders/{oid}/{step}", headers=mode.admin)
        assert moved.status_code == 200, moved.text
    back = {"order_id": oid, "lines": [{"sku": "SKU-000007", "quantity": 1}], "reason": "too big"}
    stolen = mode.client.post(
        "/v2/web/returns", json=back, headers={**bob, "Idempotency-Key": f'"{uuid.uuid4()}"'}
    )
    assert stolen.status_code == 404, stolen.text
    returned = mode.client.post(
        "/v2/web/returns", json=back, headers={**alice, "Idempotency-Key": f'"{uuid.uuid4()}"'}
    )
    assert returned.status_code == 201, returned.text
    rid = returned.json()["return_id"]
    assert mode.client.get(f"/v2/web/returns/{rid}", headers=alice).status_code == 200
    assert mode.client.get(f"/v2/web/returns/{rid}", headers=bob).status_code == 404
    till = mode.token("till-1", "orders:read", store_id="STORE-001")
    assert mode.client.get("/v2/web/orders", headers=till).status_code == 403
    # a shopper cannot order on the partner channel (its stock and its limits): the web
    # shop's checkout has no channel to choose (400), and the orders API refuses it (422)
    bulk = {**body, "channel": "partner", "lines": [{"sku": "SKU-000007", "quantity": 40}]}
    for path, status in (("/v2/web/checkout", 400), ("/v1/orders/orders", 422)):
        sneaky = mode.client.post(
            path, json=bulk, headers={**bob, "Idempotency-Key": f'"{uuid.uuid4()}"'}
        )
        assert sneaky.status_code == status, (path, sneaky.text)
        assert "channel" in str(sneaky.json()["errors"]), sneaky.text


def test_a_customer_sees_their_own_points_on_the_web_shop(mode: Mode) -> None:
    """The demo members are linked to the demo customers: alice's points are M-ALICE's, with
    the ledger adding up to the balance; a customer without a card gets 404."""
    alice = mode.token("alice")
    account = mode.client.get("/v2/web/loyalty", headers=alice)
    assert account.status_code == 200, account.text
    assert account.json()["member_id"] == "M-ALICE"
    ledger = mode.client.get("/v2/web/loyalty/ledger", headers=alice).json()
    assert ledger["member_id"] == "M-ALICE"
    assert sum(e["points"] for e in ledger["entries"]) == account.json()["balance"]
    assert (
        mode.client.get("/v2/web/loyalty", headers=mode.token("bob")).json()["member_id"] == "M-BOB"
    )
    nobody = mode.client.get("/v2/web/loyalty/ledger", headers=mode.token("carol"))
    assert nobody.status_code == 404 and nobody.json()["instance"] == "/v2/web/loyalty/ledger"
    assert mode.client.get("/v2/web/loyalty").status_code == 401


def _till(mode: Mode, store: str) -> dict[str, str]:
    scopes = ("pos:write", "orders:pickup", "orders:return", "inventory:read", "loyalty:lookup")
    return mode.token(f"till-{store}", *scopes, store_id=store)


def test_a_till_works_its_own_store_through_the_store_api(mode: Mode) -> None:
    """Sales upload, pick-up counter, stock nearby, member lookup and an in-store return of an
    online order; another store's queue and orders are 404, another store's sales 403."""
    here, there = _till(mode, "STORE-002"), _till(mode, "STORE-001")
    sale = {
        "transaction_id": str(uuid.uuid4()),
        "kind": "sale",
        "store_id": "STORE-002",
        "till_id": "T9",
        "sequence": 1,
        "occurred_at": "2026-11-30T09:00:00Z",
        "lines": [
            {"sku": "SKU-000011", "quantity": 1, "unit_price": {"amount": 250, "currency": "EUR"}}
        ],
        "tenders": [{"kind": "card", "amount": {"amount": 250, "currency": "EUR"}}],
    }
    up = mode.client.post(
        "/v1/store/transactions/batches", json={"transactions": [sale]}, headers=here
    )
    assert up.status_code == 200, up.text
    assert up.json()["results"][0]["status"] == "accepted"
    other = mode.client.post(
        "/v1/store/transactions/batches", json={"transactions": [sale]}, headers=there
    )
    assert other.status_code == 403, other.text
    # a pick-up order at STORE-002, from the web shop (a customer of this test's own: each
    # customer has their own burst limit)
    dora = mode.token("dora", "orders:write", "orders:read")
    order = mode.client.post(
        "/v2/web/checkout",
        json={
            "lines": [{"sku": "SKU-000012", "quantity": 1}],
            "payment_reference": "psp-pickup-1",
            "fulfilment": "pickup",
            "pickup_store_id": "STORE-002",
        },
        headers={**dora, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert order.status_code == 201, order.text
    oid = order.json()["order_id"]
    settle_sync(
        lambda: mode.client.get(f"/v2/web/orders/{oid}", headers=dora).json()["status"],
        lambda status: status == "posted",
    )
    queue = mode.client.get("/v1/store/pickups", headers=here)
    assert queue.status_code == 200, queue.text
    assert oid in [o["order_id"] for o in queue.json()["items"]]
    assert oid not in [
        o["order_id"] for o in mode.client.get("/v1/store/pickups", headers=there).json()["items"]
    ]
    assert mode.client.post(f"/v1/store/pickups/{oid}/ready", headers=there).status_code == 404
    ready = mode.client.post(f"/v1/store/pickups/{oid}/ready", headers=here)
    assert ready.status_code == 200 and ready.json()["status"] == "ready_for_pickup", ready.text
    code = mode.client.get(f"/v2/web/orders/{oid}", headers=dora).json()["pickup_code"]
    collected = mode.client.post(
        f"/v1/store/pickups/{oid}/collect", json={"pickup_code": code}, headers=here
    )
    assert collected.status_code == 200 and collected.json()["status"] == "collected"
    back = mode.client.post(
        "/v1/store/returns",
        json={"order_id": oid, "lines": [{"sku": "SKU-000012", "quantity": 1}]},
        headers={**here, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert back.status_code == 201, back.text
    assert back.json()["store_id"] == "STORE-002"
    # stock here first, then the nearest stores
    stock = mode.client.get("/v1/store/stock/SKU-000012", headers=here)
    assert stock.status_code == 200, stock.text
    stores = stock.json()["stores"]
    assert stores[0]["store_id"] == "STORE-002" and stores[0]["distance_km"] == 0
    assert len(stores) == 4
    unknown = mode.client.get("/v1/store/stock/SKU-999999", headers=here)
    assert unknown.status_code == 404 and unknown.json()["instance"] == "/v1/store/stock/SKU-999999"
    # a member at the till: the id and tier, never the email
    member = mode.client.post(
        "/v1/store/members/lookup", json={"email": "alice@example.com"}, headers=here
    )
    assert member.status_code == 200, member.text
    assert member.json() == {"member_id": "M-ALICE", "tier": "gold"}
    nobody = mode.client.post(
        "/v1/store/members/lookup", json={"card_number": "99999999"}, headers=here
    )
    assert nobody.status_code == 404
    # not a till: no store to act for
    shopper = mode.token("alice", "orders:pickup", "inventory:read")
    assert mode.client.get("/v1/store/pickups", headers=shopper).status_code == 403
    assert mode.client.get("/v1/store/stock/SKU-000012", headers=shopper).status_code == 403


def _partner(mode: Mode) -> tuple[str, dict[str, str]]:
    """A partner of its own, and an API key of it for the partner API."""
    partner = f"p-{uuid.uuid4().hex[:8]}"
    made = mode.client.post(
        "/admin/v1/partners", json={"id": partner, "name": "Market"}, headers=mode.admin
    )
    assert made.is_success, made.text
    key = mode.client.post(
        "/admin/v1/keys",
        json={"partner_id": partner, "scopes": ["inventory:read", "partner:orders"]},
        headers=mode.admin,
    ).json()["key"]
    return partner, {"X-API-Key": key}


def test_a_partner_reads_stock_in_bulk_and_places_its_own_orders(mode: Mode) -> None:
    """Bulk availability weighs one request per SKU; a marketplace order records the partner
    and its buyer; each partner sees its own orders only (404 for another's), and a shop
    customer never sees a partner's order however its subject is spelled."""
    partner, key = _partner(mode)
    _, other_key = _partner(mode)
    skus = [f"SKU-{n:06d}" for n in range(21, 26)]
    bulk = mode.client.get(
        "/v1/partner/availability", params={"skus": ",".join([*skus, "NOPE-1"])}, headers=key
    )
    assert bulk.status_code == 200, bulk.text
    assert sorted(i["sku"] for i in bulk.json()["items"]) == skus
    assert bulk.json()["unknown_skus"] == ["NOPE-1"]
    assert day_use(mode, f"partner:{partner}") == 6  # six SKUs, six requests (burst: 20)
    order_key = f'"{uuid.uuid4()}"'
    body = {
        "customer_ref": "buyer-77",
        "lines": [{"sku": "SKU-000021", "quantity": 3}],
        "payment_reference": "mkt-pay-1",
    }
    placed = mode.client.post(
        "/v1/partner/orders", json=body, headers={**key, "Idempotency-Key": order_key}
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["partner_id"] == partner and order["channel"] == "partner"
    assert order["customer"] == f"partner:{partner}:buyer-77"
    oid = order["order_id"]
    # the key is the partner's: another of its keys replays, it does not order again
    second = mode.client.post(
        "/admin/v1/keys",
        json={"partner_id": partner, "scopes": ["partner:orders"]},
        headers=mode.admin,
    ).json()["key"]
    replay = mode.client.post(
        "/v1/partner/orders",
        json=body,
        headers={"X-API-Key": second, "Idempotency-Key": order_key},
    )
    assert replay.status_code == 201 and replay.json()["order_id"] == oid
    listed = mode.client.get("/v1/partner/orders", headers=key).json()["items"]
    assert [o["order_id"] for o in listed] == [oid]
    assert mode.client.get(f"/v1/partner/orders/{oid}", headers=key).status_code == 200
    theirs = mode.client.get(f"/v1/partner/orders/{oid}", headers=other_key)
    assert theirs.status_code == 404, theirs.text
    assert mode.client.get("/v1/partner/orders", headers=other_key).json()["items"] == []
    spoof = mode.token(f"partner:{partner}:buyer-77", "orders:read", "orders:write")
    assert mode.client.get(f"/v2/web/orders/{oid}", headers=spoof).status_code == 404
    assert mode.client.get("/v2/web/orders", headers=spoof).json()["items"] == []
    lost = mode.client.post(  # it could never see such an order again
        "/v2/web/checkout",
        json={"lines": body["lines"], "payment_reference": "psp-spoof"},
        headers={**spoof, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert lost.status_code == 403, lost.text
    # a partner's token with a shopper's subject reads no shopper's points
    as_alice = mode.token("alice", "inventory:read", partner_id=partner)
    assert mode.client.get("/v1/loyalty/accounts/mine", headers=as_alice).status_code == 404
    assert mode.client.get("/v1/loyalty/members/M-ALICE", headers=as_alice).status_code == 404
    # a full bulk read (100 SKUs) fits the partner's plan: it takes one second's burst and
    # counts 100 in the day
    fresh, fresh_key = _partner(mode)
    hundred = ",".join(f"SKU-{n:06d}" for n in range(1, 101))
    full = mode.client.get("/v1/partner/availability", params={"skus": hundred}, headers=fresh_key)
    assert full.status_code == 200, full.text
    assert len(full.json()["items"]) == 100
    assert day_use(mode, f"partner:{fresh}") == 100
    # a shop customer is no partner
    shopper = mode.token("erin", "partner:orders", "inventory:read")
    assert mode.client.get("/v1/partner/orders", headers=shopper).status_code == 403


def test_customer_service_finds_sees_acts_and_every_step_is_audited(mode: Mode) -> None:
    """An agent finds bob by email, card or order, sees one view (email masked unless asked),
    cancels his order; only a supervisor gives goodwill points and reads the audit, which
    holds every lookup and action with who, which customer and why."""
    agent = mode.token("agent-ann", "care:read")
    supervisor = mode.token("sup-sam", "care:read", "care:write")
    bob = mode.token("bob", "orders:write", "orders:read")
    placed = mode.client.post(
        "/v2/web/checkout",
        json={"lines": [{"sku": "SKU-000031", "quantity": 1}], "payment_reference": "psp-bob"},
        headers={**bob, "Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert placed.status_code == 201, placed.text
    oid = placed.json()["order_id"]
    settle_sync(
        lambda: mode.client.get(f"/v2/web/orders/{oid}", headers=bob).json()["status"],
        lambda status: status == "posted",
    )
    searches = [
        {"email": "BOB@example.com", "reason": "call 1"},
        {"card_number": "6012000000000002", "reason": "call 1"},
        {"order_id": oid, "reason": "call 1"},
    ]
    for search in searches:
        found = mode.client.post("/v1/care/customers/search", json=search, headers=agent)
        assert found.status_code == 200, found.text
        assert found.json() == {
            "customer": "bob",
            "member_id": "M-BOB",
            "email_masked": "b***@example.com",
        }
    missing = mode.client.post(
        "/v1/care/customers/search",
        json={"email": "nobody@example.com", "reason": "call 2"},
        headers=agent,
    )
    assert missing.status_code == 404
    both = mode.client.post(
        "/v1/care/customers/search",
        json={"email": "bob@example.com", "order_id": oid, "reason": "call 2"},
        headers=agent,
    )
    # one of the three, a rule of the published schema: refused as invalid before any lookup
    assert both.status_code == 400 and both.json()["type"].endswith("/validation"), both.text
    view = mode.client.get("/v1/care/customers/bob", params={"reason": "call 1"}, headers=agent)
    assert view.status_code == 200, view.text
    seen = view.json()
    assert seen["member"]["member_id"] == "M-BOB" and seen["email"] is None
    assert seen["member"]["email_masked"] == "b***@example.com"
    assert sum(e["points"] for e in seen["ledger"]) == seen["member"]["balance"]
    mine = next(o for o in seen["orders"] if o["order"]["order_id"] == oid)
    assert [p["kind"] for p in mine["postings"]] == ["order"] and mine["returns"] == []
    assert [h["status"] for h in mine["order"]["history"]][-1] == "posted"
    revealed = mode.client.get(
        "/v1/care/customers/bob",
        params={"reason": "call 1: confirm address", "reveal_email": "true"},
        headers=agent,
    )
    assert revealed.json()["email"] == "bob@example.com"
    cancelled = mode.client.post(
        f"/v1/care/orders/{oid}/cancel", json={"reason": "customer asked"}, headers=agent
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    settle_sync(  # the refund is booked after the answer
        lambda: [
            p["kind"]
            for o in mode.client.get(
                "/v1/care/customers/bob", params={"reason": "call 1"}, headers=agent
            ).json()["orders"]
            if o["order"]["order_id"] == oid
            for p in o["postings"]
        ],
        lambda kinds: sorted(kinds) == ["order", "refund"],
    )
    gift = {"points": 50, "reason": "sorry for the wait"}
    key = {"Idempotency-Key": f'"{uuid.uuid4()}"'}
    refused = mode.client.post(
        "/v1/care/customers/bob/goodwill", json=gift, headers={**agent, **key}
    )
    assert refused.status_code == 403
    before = seen["member"]["balance"]
    for _ in range(2):  # a double click gives once
        given = mode.client.post(
            "/v1/care/customers/bob/goodwill", json=gift, headers={**supervisor, **key}
        )
        assert given.status_code == 200, given.text
        assert given.json()["balance"] == before + 50
    more = mode.client.post(  # the same key for another grant: refused, not given quietly
        "/v1/care/customers/bob/goodwill",
        json={**gift, "points": 5000},
        headers={**supervisor, **key},
    )
    assert more.status_code == 422 and more.json()["type"].endswith("/idempotency-key-reused")
    assert mode.client.get("/v1/care/audit", headers=agent).status_code == 403
    entries = mode.client.get("/v1/care/audit", params={"limit": 200}, headers=supervisor).json()[
        "items"
    ]
    by_ann = [e for e in entries if e["agent"] == "agent-ann"]
    actions = [e["action"] for e in reversed(by_ann)]
    # three searches found bob, one found nobody; the invalid one (two keys at once) looked
    # nobody up, and is no lookup to audit (as a search without a reason)
    assert actions[:4] == ["search"] * 4
    assert [e["outcome"] for e in reversed(by_ann)][:4] == [
        "found",
        "found",
        "found",
        "not-found",
    ]
    assert actions[4:7] == ["view", "view", "reveal-email"]
    assert "cancel" in actions and actions.count("view") >= 3
    assert all(e["reason"] for e in by_ann)
    assert {e["customer"] for e in by_ann} == {"bob", None}  # None: found nobody, refused
    assert [e["outcome"] for e in by_ann if e["customer"] is None] == ["not-found"]
    grants = [e["outcome"] for e in reversed(entries) if e["agent"] == "sup-sam"]
    assert grants == ["50 points", "replayed", "refused: key reused"]
    ledger = mode.client.get("/v2/web/loyalty/ledger", headers=mode.token("bob")).json()
    assert [e["reason"] for e in ledger["entries"] if e["points"] == 50] == ["goodwill"]
    assert (
        mode.client.post("/v1/care/customers/search", json=searches[0], headers=bob).status_code
        == 403
    )


def test_the_demo_story_gives_the_demo_customers_past_orders(mode: Mode) -> None:
    """With DEMO on, a first start places the demo customers' past orders through the
    orders service itself and moves them to their states (README: as a web developer)."""

    def states(sub: str) -> list[tuple[str, str]]:
        # as an operator: a customer's own polling would meet their plan's burst limit
        answer = mode.client.get("/v1/orders/orders", params={"customer": sub}, headers=mode.admin)
        assert answer.status_code == 200, answer.text
        return sorted(
            (o["lines"][0]["sku"], o["status"])
            for o in answer.json()["items"]
            if o["payment_reference"].startswith("psp-demo-")
        )

    alice = settle_sync(
        lambda: states("alice"),
        lambda seen: seen == [("SKU-000007", "delivered"), ("SKU-000012", "posted")],
    )
    assert alice == [("SKU-000007", "delivered"), ("SKU-000012", "posted")]
    bob = settle_sync(
        lambda: states("bob"),
        lambda seen: seen == [("SKU-000031", "posted"), ("SKU-000033", "cancelled")],
    )
    assert bob == [("SKU-000031", "posted"), ("SKU-000033", "cancelled")]
