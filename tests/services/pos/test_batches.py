"""Till transactions sync exactly once: resent batches change nothing, gaps are reported,
a store posts only for itself, and every accepted sale reaches the ERP once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.mesh import build_embedded
from tests.conftest import Running, dev_issuer
from tests.support import settle

SKUS = ["SKU-000011", "SKU-000012", "SKU-000013", "SKU-000014"]


@pytest.fixture
def env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "WARNING",
        "RELAY_INTERVAL_S": "0.05",
    }


@pytest.fixture
async def mesh(env: dict[str, str]) -> AsyncIterator[Running]:
    async with Running(build_embedded(env)) as running:
        yield running


def till(env: dict[str, str], store: str = "STORE-001") -> dict[str, str]:
    token = dev_issuer(env).mint(f"till-{store}", scopes=["pos:write", "pos:read"], store_id=store)
    return {"Authorization": f"Bearer {token}"}


def sale(
    seq: int,
    *,
    store: str = "STORE-001",
    till_id: str = "T1",
    sku: str | None = None,
    qty: int = 1,
    tid: str | None = None,
    member: str | None = None,
) -> dict[str, Any]:
    sku = sku or SKUS[seq % len(SKUS)]
    extra = {"member_id": member} if member else {}
    return {
        **extra,
        "transaction_id": tid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{store}/{till_id}/{seq}")),
        "kind": "sale",
        "store_id": store,
        "till_id": till_id,
        "sequence": seq,
        "occurred_at": "2026-11-24T09:00:00Z",
        "lines": [{"sku": sku, "quantity": qty, "unit_price": {"amount": 250, "currency": "EUR"}}],
        "tenders": [{"kind": "card", "amount": {"amount": 250 * qty, "currency": "EUR"}}],
    }


async def upload(mesh: Running, headers: dict[str, str], txs: list[dict[str, Any]]) -> Any:
    """Upload as a till does: past its plan's limit (429), again after `Retry-After`."""
    while True:
        r = await mesh.client.post(
            "/v1/pos/transactions/batches", json={"transactions": txs}, headers=headers
        )
        if r.status_code != 429:
            return r
        await asyncio.sleep(int(r.headers["retry-after"]))


async def erp_totals(mesh: Running, admin: dict[str, str]) -> dict[str, tuple[int, int]]:
    out = {}
    for sku in SKUS:
        t = (await mesh.client.get(f"/v1/erp/postings/totals/{sku}", headers=admin)).json()
        out[sku] = (t["order_postings"], t["ordered_units"])
    return out


async def test_an_offline_till_resends_2000_transactions_three_times_and_each_counts_once(
    mesh: Running, env: dict[str, str]
) -> None:
    headers = till(env)
    admin = {"Authorization": "Bearer " + dev_issuer(env).mint("ops", roles=["admin"])}
    enrolled = await mesh.client.post(
        "/v1/loyalty/members", json={"member_id": "M-900", "tier": "base"}, headers=admin
    )
    assert enrolled.status_code == 201
    # every tenth sale is a loyalty member's: 2.50 EUR → 2 points each, 200 sales → 400
    txs = [sale(n, member="M-900" if n % 10 == 0 else None) for n in range(1, 2001)]
    batches = [txs[i : i + 500] for i in range(0, 2000, 500)]
    # the connection drops mid-upload: the till never saw the answer to batch 2...
    first = await upload(mesh, headers, batches[0])
    assert first.json()["accepted"] == 500
    await upload(mesh, headers, batches[1])
    # ...so it sends everything again, three times, some of it concurrently
    for _ in range(3):
        answers = await asyncio.gather(*(upload(mesh, headers, b) for b in batches))
        assert all(a.status_code == 200 for a in answers)
    final = [await upload(mesh, headers, b) for b in batches]
    assert sum(a.json()["duplicates"] for a in final) == 2000
    assert sum(a.json()["accepted"] for a in final) == 0

    gaps = (await mesh.client.get("/v1/pos/stores/STORE-001/gaps", headers=headers)).json()
    assert gaps == {"store_id": "STORE-001", "gaps": []}

    expected = Counter(SKUS[n % len(SKUS)] for n in range(1, 2001))
    # waits that follow the work: as long as postings keep arriving, however slowly
    totals = await settle(
        lambda: erp_totals(mesh, admin),
        lambda t: all(t[s][0] >= expected[s] for s in SKUS),
    )
    assert totals == {s: (expected[s], expected[s]) for s in SKUS}  # one posting each

    async def balance() -> int:
        account = (await mesh.client.get("/v1/loyalty/members/M-900", headers=admin)).json()
        return int(account["balance"])

    assert await settle(balance, lambda b: b >= 400) == 400  # once per sale, resends or not
    ledger = (await mesh.client.get("/v1/loyalty/members/M-900/ledger", headers=admin)).json()
    assert len(ledger["entries"]) == 200


async def test_gaps_are_listed_and_close_when_the_missing_arrive(
    mesh: Running, env: dict[str, str]
) -> None:
    headers = till(env)
    await upload(mesh, headers, [sale(n) for n in (1, 2, 5, 6)] + [sale(1, till_id="T2")])
    gaps = (await mesh.client.get("/v1/pos/stores/STORE-001/gaps", headers=headers)).json()
    assert gaps["gaps"] == [{"till_id": "T1", "first_missing": 3, "last_missing": 4}]
    await upload(mesh, headers, [sale(3), sale(4)])
    gaps = (await mesh.client.get("/v1/pos/stores/STORE-001/gaps", headers=headers)).json()
    assert gaps["gaps"] == []


async def test_a_return_whose_sale_is_on_an_offline_till_waits_visibly_then_syncs(
    mesh: Running, env: dict[str, str]
) -> None:
    """Till T2 rang up a sale and went offline for days; T1 took the goods back. T1's return
    is refused as `sale-not-synced` (not dropped, not accepted blind), its sequence number
    shows as a gap, and once T2 syncs, T1 sends it again and it is taken."""
    headers = till(env)
    offline_sale = sale(1, till_id="T2", qty=2)
    back = {
        **sale(2, till_id="T1", sku=offline_sale["lines"][0]["sku"]),
        "kind": "return",
        "original_transaction_id": offline_sale["transaction_id"],
        "tenders": [],
    }
    batch = [sale(1, till_id="T1"), back, sale(3, till_id="T1")]
    results = (await upload(mesh, headers, batch)).json()["results"]
    assert (results[1]["status"], results[1]["code"]) == ("rejected", "sale-not-synced")
    gaps = (await mesh.client.get("/v1/pos/stores/STORE-001/gaps", headers=headers)).json()
    assert gaps["gaps"] == [{"till_id": "T1", "first_missing": 2, "last_missing": 2}]
    assert (await upload(mesh, headers, [offline_sale])).json()["accepted"] == 1  # T2 is back
    (again,) = (await upload(mesh, headers, [back])).json()["results"]
    assert again["status"] == "accepted", again
    gaps = (await mesh.client.get("/v1/pos/stores/STORE-001/gaps", headers=headers)).json()
    assert gaps["gaps"] == []


async def test_reused_ids_and_sequences_are_rejected_not_overwritten(
    mesh: Running, env: dict[str, str]
) -> None:
    headers = till(env)
    original = sale(1)
    assert (await upload(mesh, headers, [original])).json()["accepted"] == 1
    changed = {**original, "lines": [{**original["lines"][0], "quantity": 9}]}
    r = (await upload(mesh, headers, [changed])).json()
    assert r["results"][0]["status"] == "rejected" and "other content" in r["results"][0]["reason"]
    other_id = sale(1, tid=str(uuid.uuid4()))
    r = (await upload(mesh, headers, [other_id])).json()
    assert r["results"][0]["status"] == "rejected" and "sequence 1" in r["results"][0]["reason"]
    stored = await mesh.client.get(
        f"/v1/pos/transactions/{original['transaction_id']}", headers=headers
    )
    assert stored.json()["transaction"]["lines"][0]["quantity"] == 1


async def test_a_store_posting_for_another_store_is_403_and_stores_nothing(
    mesh: Running, env: dict[str, str]
) -> None:
    mine, theirs = till(env, "STORE-001"), till(env, "STORE-002")
    batch = [sale(1), sale(1, store="STORE-002")]
    r = await upload(mesh, mine, batch)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/not-your-store")
    day = await mesh.client.get(
        "/v1/pos/stores/STORE-001/transactions", params={"day": "2026-11-24"}, headers=mine
    )
    assert day.json()["items"] == []
    assert (
        await mesh.client.get("/v1/pos/stores/STORE-001/gaps", headers=theirs)
    ).status_code == 403


async def test_a_malformed_batch_is_refused_whole_with_field_errors(
    mesh: Running, env: dict[str, str]
) -> None:
    headers = till(env)
    bad = sale(2)
    bad["lines"][0]["quantity"] = 0
    r = await upload(mesh, headers, [sale(1), bad])
    assert r.status_code == 400
    assert any("transactions[1].lines[0].quantity" in e["field"] for e in r.json()["errors"])
    day = await mesh.client.get(
        "/v1/pos/stores/STORE-001/transactions", params={"day": "2026-11-24"}, headers=headers
    )
    assert day.json()["items"] == []  # the valid first one was not stored either
    short = sale(3)
    short["tenders"][0]["amount"]["amount"] = 10
    r = (await upload(mesh, headers, [short])).json()
    assert r["results"][0]["status"] == "rejected" and "tenders" in r["results"][0]["reason"]


async def test_summary_mode_posts_one_summary_per_store_day_and_picks_up_late_sales(
    env: dict[str, str],
) -> None:
    env = {**env, "POS_ERP_POSTING": "daily_summary"}
    async with Running(build_embedded(env)) as mesh:
        admin = {"Authorization": "Bearer " + dev_issuer(env).mint("ops", roles=["admin"])}
        store = till(env, "STORE-006")
        day = "/v1/pos/stores/STORE-006/days/2026-11-24/close"
        sales = [sale(n, store="STORE-006") for n in range(1, 41)]
        assert (await upload(mesh, store, sales[:30])).json()["accepted"] == 30
        ret = {
            **sale(41, store="STORE-006", sku=SKUS[1]),
            "kind": "return",
            "original_transaction_id": sales[0]["transaction_id"],
            "tenders": [],
        }
        assert (await upload(mesh, store, [ret])).json()["accepted"] == 1
        await asyncio.sleep(0.5)
        assert await erp_totals(mesh, admin) == {sku: (0, 0) for sku in SKUS}  # nothing yet
        other = await mesh.client.post(day, headers=till(env, "STORE-007"))
        assert other.status_code == 403
        first = await mesh.client.post(day, headers=store)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "store_id": "STORE-006",
            "day": "2026-11-24",
            "transactions": 31,
            "summary_ids": ["STORE-006.20261124.1"],
        }
        again = await mesh.client.post(day, headers=store)
        assert again.json()["transactions"] == 0 and "summary_ids" not in again.json()
        # a till that was offline syncs late: the next close posts a second summary
        assert (await upload(mesh, store, sales[30:])).json()["accepted"] == 10
        late = await mesh.client.post(day, headers=store)
        assert late.json()["summary_ids"] == ["STORE-006.20261124.2"]

        totals = await settle(
            lambda: erp_totals(mesh, admin),
            lambda t: sum(units for _, units in t.values()) >= 40,
        )
        # two order postings (one per summary) for each SKU sold, 40 units in all
        assert sum(units for _, units in totals.values()) == 40
        assert {postings for postings, _ in totals.values()} == {2}
        refund = (
            await mesh.client.get("/v1/erp/postings/STORE-006.20261124.1.returns", headers=admin)
        ).json()
        assert refund["kind"] == "refund" and refund["lines"][0]["quantity"] == 1
    async with Running(build_embedded({**env, "POS_ERP_POSTING": "transaction"})) as mesh:
        refused = await mesh.client.post(day, headers=store)
        assert refused.status_code == 409


async def test_a_mixed_batch_rejects_each_bad_transaction_with_its_code_and_posts_the_rest(
    mesh: Running, env: dict[str, str]
) -> None:
    """Issue 12: a till's return was not checked against its sale (another store's, more
    units, a higher price, no sale at all) and the ERP booked the refund; sales in another
    currency or dated years ahead were accepted, then dead-lettered at the ERP."""
    mine, theirs = till(env, "STORE-001"), till(env, "STORE-002")
    sold = sale(1, qty=2)  # two units at 2.50
    theirs_sale = sale(1, store="STORE-002")
    assert (await upload(mesh, theirs, [theirs_sale])).json()["accepted"] == 1

    def back(seq: int, of: dict[str, Any], **kw: Any) -> dict[str, Any]:
        sku = of["lines"][0]["sku"] if "lines" in of else SKUS[0]
        tx = {
            **sale(seq, sku=sku, **kw),
            "kind": "return",
            "original_transaction_id": of["transaction_id"],
            "tenders": [],
        }
        return tx

    higher = back(3, sold)
    higher["lines"][0]["unit_price"]["amount"] = 999
    dollars = sale(7)
    dollars["lines"][0]["unit_price"]["currency"] = "USD"
    dollars["tenders"][0]["amount"]["currency"] = "USD"
    batch = [
        sold,
        back(2, sold),  # good: one of the two
        higher,
        back(4, sold, qty=2),  # one left to return, not two
        back(5, theirs_sale),  # another store's sale
        back(6, {"transaction_id": str(uuid.uuid4())}),  # a sale the POS never saw
        dollars,
        {**sale(8), "occurred_at": "2031-01-01T00:00:00Z"},
        back(9, sold),  # good: the last unit
        sale(10, sku="SKU-999999"),  # a SKU the catalogue does not know
    ]
    results = (await upload(mesh, mine, batch)).json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", "higher-price"),
        ("rejected", "too-many-units"),
        ("rejected", "other-store"),
        ("rejected", "sale-not-synced"),
        ("rejected", "wrong-currency"),
        ("rejected", "future-time"),
        ("accepted", None),
        ("rejected", "unknown-sku"),
    ]
    admin = {"Authorization": "Bearer " + dev_issuer(env).mint("ops", roles=["admin"])}
    # the ERP books the sale and its two returns, and nothing is left for the dead letters
    totals = await settle(
        lambda: mesh.client.get(
            f"/v1/erp/postings/totals/{sold['lines'][0]['sku']}", headers=admin
        ),
        lambda r: r.json()["refund_postings"] >= 2,
    )
    assert (totals.json()["ordered_units"], totals.json()["refunded_units"]) == (3, 2)
    letters = await mesh.client.get("/admin/v1/dead-letters/events.pos", headers=admin)
    assert letters.status_code == 200 and letters.json() == []


async def test_a_store_day_is_read_a_page_at_a_time_by_till_and_sequence(
    mesh: Running, env: dict[str, str]
) -> None:
    headers = till(env)
    batch = [sale(2, till_id="T2"), sale(1, till_id="T2"), sale(1), sale(2), sale(3)]
    assert (await upload(mesh, headers, batch)).json()["accepted"] == 5
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"day": "2026-11-24", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = await mesh.client.get(
            "/v1/pos/stores/STORE-001/transactions", params=params, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [(i["transaction"]["till_id"], i["transaction"]["sequence"]) for i in body["items"]]
        cursor = body.get("next_cursor")
        if cursor is None:
            break
    assert seen == [("T1", 1), ("T1", 2), ("T1", 3), ("T2", 1), ("T2", 2)]
    bad = await mesh.client.get(
        "/v1/pos/stores/STORE-001/transactions",
        params={"day": "2026-11-24", "cursor": "T1~x"},
        headers=headers,
    )
    assert bad.status_code == 400
