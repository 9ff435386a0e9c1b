"""The points ledger: holds never overdraw, accrual and reversal count once, customers see
only their own account. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.kit.identity import IDENTITY_HEADER, Identity
from tests.conftest import Running
from tests.support import settle

OPERATOR = Identity(kind="service", consumer="test", roles=frozenset({"admin"}))


class Loyalty:
    def __init__(self, running: Running) -> None:
        self.running = running
        self.app = running.app.registry.apps["loyalty"]
        self.codec = running.app.runtime.identity
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(self.app), base_url="http://loyalty"
        )

    def as_(self, identity: Identity) -> dict[str, str]:
        return {IDENTITY_HEADER: self.codec.sign(identity)}

    @property
    def operator(self) -> dict[str, str]:
        return self.as_(OPERATOR)

    async def enrol(self, member_id: str, points: int = 0, **kw: Any) -> None:
        r = await self.client.post(
            "/members", json={"member_id": member_id, **kw}, headers=self.operator
        )
        assert r.status_code == 201, r.text
        if points:
            r = await self.client.post(
                f"/members/{member_id}/adjustments",
                json={"source_id": f"welcome-{member_id}", "points": points, "reason": "welcome"},
                headers=self.operator,
            )
            assert r.status_code == 200, r.text

    def admin_jwt(self, env: dict[str, str]) -> dict[str, str]:
        from tests.conftest import dev_issuer

        return {"Authorization": "Bearer " + dev_issuer(env).mint("ops", roles=["admin"])}

    async def account(self, member_id: str) -> dict[str, Any]:
        body: dict[str, Any] = (
            await self.client.get(f"/members/{member_id}", headers=self.operator)
        ).json()
        return body


@pytest.fixture
async def loyalty(mesh: Running) -> AsyncIterator[Loyalty]:
    lo = Loyalty(mesh)
    yield lo
    await lo.client.aclose()


async def test_200_concurrent_holds_against_a_balance_for_50_admit_exactly_50(
    loyalty: Loyalty,
) -> None:
    await loyalty.enrol("M-1", points=500)
    results = await asyncio.gather(
        *(
            loyalty.client.post(
                "/members/M-1/holds",
                json={"hold_id": f"h-{n}", "points": 10},
                headers=loyalty.operator,
            )
            for n in range(200)
        )
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 50 and statuses.count(422) == 150
    account = await loyalty.account("M-1")
    assert (account["balance"], account["held"], account["available"]) == (500, 500, 0)
    # capturing all of them takes the balance to zero, never below
    captured = await asyncio.gather(
        *(
            loyalty.client.post(f"/holds/{r.json()['hold_id']}/capture", headers=loyalty.operator)
            for r in results
            if r.status_code == 201
        )
    )
    assert {c.status_code for c in captured} == {200}
    account = await loyalty.account("M-1")
    assert (account["balance"], account["held"], account["available"]) == (0, 0, 0)


async def test_holds_settle_idempotently_and_expire(loyalty: Loyalty) -> None:
    await loyalty.enrol("M-2", points=100)
    ops = loyalty.operator
    hold = {"hold_id": "order-1", "points": 40}
    assert (
        await loyalty.client.post("/members/M-2/holds", json=hold, headers=ops)
    ).status_code == 201
    replay = await loyalty.client.post("/members/M-2/holds", json=hold, headers=ops)
    assert replay.headers["idempotent-replayed"] == "true"
    assert (await loyalty.account("M-2"))["available"] == 60
    for _ in range(2):
        r = await loyalty.client.post("/holds/order-1/release", headers=ops)
        assert r.json()["status"] == "released"
    assert (await loyalty.client.post("/holds/order-1/capture", headers=ops)).status_code == 409
    assert (await loyalty.account("M-2"))["available"] == 100
    short = {"hold_id": "order-2", "points": 30, "ttl_s": 1}
    assert (
        await loyalty.client.post("/members/M-2/holds", json=short, headers=ops)
    ).status_code == 201
    assert (await loyalty.account("M-2"))["available"] == 70
    await asyncio.sleep(1.1)
    assert (await loyalty.account("M-2"))["available"] == 100
    assert (await loyalty.client.post("/holds/order-2/capture", headers=ops)).status_code == 409


async def test_a_customer_sees_only_their_own_account(loyalty: Loyalty) -> None:
    await loyalty.enrol("M-A", customer_sub="alice")
    await loyalty.enrol("M-B", customer_sub="bob")
    alice = loyalty.as_(Identity(kind="user", consumer="sub:alice", sub="alice"))
    assert (await loyalty.client.get("/members/M-A", headers=alice)).status_code == 200
    for path in ("/members/M-B", "/members/M-B/ledger"):
        r = await loyalty.client.get(path, headers=alice)
        assert r.status_code == 404  # not 403: another customer's account does not exist for her
    hold = {"hold_id": "steal", "points": 1}
    assert (
        await loyalty.client.post("/members/M-B/holds", json=hold, headers=alice)
    ).status_code == 404


async def test_lookup_by_card_or_email_stores_neither(loyalty: Loyalty) -> None:
    await loyalty.enrol("M-C", card_number="6280001234567890", email="Carol@Example.com")
    ops = loyalty.operator
    by_card = await loyalty.client.post(
        "/members/lookup", json={"card_number": "6280001234567890"}, headers=ops
    )
    by_email = await loyalty.client.post(
        "/members/lookup", json={"email": "carol@example.com"}, headers=ops
    )
    assert by_card.json()["member_id"] == by_email.json()["member_id"] == "M-C"
    db = loyalty.app.state.runtime.db
    tables = loyalty.app.state.holder["loyalty"].t
    async with db.read() as conn:
        row = (await conn.execute(tables.members.select())).first()
    assert "6280001234567890" not in str(tuple(row)) and "carol" not in str(tuple(row)).lower()


async def test_purchases_earn_once_and_returns_take_back_pro_rata(
    loyalty: Loyalty, mesh_env: dict[str, str]
) -> None:
    from tests.conftest import dev_issuer

    await loyalty.enrol("M-D", tier="gold")  # 2 points per euro
    till = {
        "Authorization": "Bearer "
        + dev_issuer(mesh_env).mint("till", scopes=["pos:write"], store_id="STORE-002")
    }
    sale_id = str(uuid.uuid4())

    def tx(seq: int, tid: str, kind: str, qty: int, **kw: Any) -> dict[str, Any]:
        return till_tx("M-D", seq, tid, kind, qty, **kw)

    batch = {"transactions": [tx(1, sale_id, "sale", 4)]}  # 100 EUR → 200 points
    for _ in range(3):
        await mesh_client(loyalty).post("/v1/pos/transactions/batches", json=batch, headers=till)
    await wait_balance(loyalty, "M-D", 200)
    ret = tx(2, str(uuid.uuid4()), "return", 1, original_transaction_id=sale_id)  # 25 EUR back
    await mesh_client(loyalty).post(
        "/v1/pos/transactions/batches", json={"transactions": [ret]}, headers=till
    )
    await wait_balance(loyalty, "M-D", 150)
    ledger = (await loyalty.client.get("/members/M-D/ledger", headers=loyalty.operator)).json()
    assert [(e["kind"], e["points"]) for e in ledger["entries"]] == [
        ("earn", 200),
        ("reverse", -50),
    ]


def till_tx(
    member: str, seq: int, tid: str, kind: str, qty: int, price: int = 2500, **kw: Any
) -> dict[str, Any]:
    """A till transaction of STORE-002 for `member`; a sale paid by card unless `tenders`."""
    tenders = [{"kind": "card", "amount": {"amount": qty * price, "currency": "EUR"}}]
    return {
        "transaction_id": tid,
        "kind": kind,
        "store_id": "STORE-002",
        "till_id": "T1",
        "sequence": seq,
        "occurred_at": "2026-11-24T09:00:00Z",
        "member_id": member,
        "lines": [
            {
                "sku": "SKU-000021",
                "quantity": qty,
                "unit_price": {"amount": price, "currency": "EUR"},
            }
        ],
        "tenders": tenders if kind == "sale" else [],
        **kw,
    }


def mesh_client(loyalty: Loyalty) -> httpx.AsyncClient:
    return loyalty.running.client


async def wait_balance(loyalty: Loyalty, member_id: str, balance: int) -> None:
    await settle(lambda: loyalty.account(member_id), lambda a: a["balance"] == balance)


def till_headers(mesh_env: dict[str, str]) -> dict[str, str]:
    from tests.conftest import dev_issuer

    token = dev_issuer(mesh_env).mint("till", scopes=["pos:write"], store_id="STORE-002")
    return {"Authorization": f"Bearer {token}"}


async def test_points_have_bounds_only_an_audited_adjustment_passes(
    loyalty: Loyalty, mesh_env: dict[str, str]
) -> None:
    """Issue 12: a till's sale with no tenders, 1,000 units at 10^9, credited twenty billion
    points. Now: unpaid sales are refused, earning is on money paid, capped per purchase
    (5,000) and per member-day (20,000); reversals stop at zero available points."""
    await loyalty.enrol("M-B")  # base: 1 point per euro
    till = till_headers(mesh_env)
    post = mesh_client(loyalty).post
    path = "/v1/pos/transactions/batches"
    free = till_tx("M-B", 1, str(uuid.uuid4()), "sale", 1000, price=10**9, tenders=[])
    r = await post(path, json={"transactions": [free]}, headers=till)
    assert [(x["status"], x.get("code")) for x in r.json()["results"]] == [("rejected", "unpaid")]
    # paid in points and a voucher but 10 EUR money: 10 points, not 100
    mixed = till_tx(
        "M-B",
        2,
        str(uuid.uuid4()),
        "sale",
        4,
        tenders=[
            {"kind": "loyalty", "amount": {"amount": 8000, "currency": "EUR"}},
            {"kind": "voucher", "amount": {"amount": 1000, "currency": "EUR"}},
            {"kind": "card", "amount": {"amount": 1000, "currency": "EUR"}},
        ],
    )
    assert (await post(path, json={"transactions": [mixed]}, headers=till)).json()["accepted"] == 1
    await wait_balance(loyalty, "M-B", 10)
    # a 1,000,000 EUR purchase earns the per-purchase cap; the day's cap holds after that
    big = [till_tx("M-B", 3 + n, str(uuid.uuid4()), "sale", 400, price=250_000) for n in range(5)]
    answer = await post(path, json={"transactions": big}, headers=till)
    assert answer.status_code == 200 and answer.json()["accepted"] == 5, answer.text

    async def entries() -> list[int]:
        r = await loyalty.client.get("/members/M-B/ledger", headers=loyalty.operator)
        return [e["points"] for e in r.json()["entries"]]

    # the last purchase earns nothing (the day is full): wait for its entry, not the balance
    assert await settle(entries, lambda e: len(e) == 6) == [10, 5000, 5000, 5000, 4990, 0]
    # the points are spent; the goods come back: the reversal stops at zero
    hold = await loyalty.client.post(
        "/members/M-B/holds",
        json={"hold_id": "spend-all", "points": 20_000, "ttl_s": 60},
        headers=loyalty.operator,
    )
    assert hold.status_code == 201, hold.text
    assert (
        await loyalty.client.post("/holds/spend-all/capture", headers=loyalty.operator)
    ).status_code == 200
    back = till_tx(
        "M-B",
        9,
        str(uuid.uuid4()),
        "return",
        400,
        price=250_000,
        original_transaction_id=big[0]["transaction_id"],
    )
    assert (await post(path, json={"transactions": [back]}, headers=till)).json()["accepted"] == 1
    await settle(
        lambda: mesh_client(loyalty).get(
            "/v1/erp/postings",
            params={"order_id": big[0]["transaction_id"]},
            headers=loyalty.admin_jwt(mesh_env),
        ),
        lambda r: r.status_code == 200 and any(p["kind"] == "refund" for p in r.json()["items"]),
    )
    account = await loyalty.account("M-B")
    assert account["balance"] == 0 and account["available"] == 0
    # an operator may go past the bounds, and the ledger says who and why
    r = await loyalty.client.post(
        "/members/M-B/adjustments",
        json={"source_id": "goodwill-1", "points": 30_000, "reason": "complaint #77"},
        headers=loyalty.as_(
            Identity(kind="user", consumer="ops", sub="ops", scopes=frozenset({"loyalty:admin"}))
        ),
    )
    assert r.status_code == 200 and r.json()["balance"] == 30_000
    last = (await loyalty.client.get("/members/M-B/ledger", headers=loyalty.operator)).json()[
        "entries"
    ][-1]
    assert (last["kind"], last["by"], last["reason"]) == ("adjust", "user:ops", "complaint #77")


async def test_points_of_inactive_members_expire_once(
    loyalty: Loyalty,
) -> None:
    service = loyalty.app.state.holder["loyalty"]
    days = service.rules.expire_after_inactive_days
    assert days == 730  # the shipped rules
    await loyalty.enrol("M-OLD", points=300)
    await loyalty.enrol("M-NEW", points=80)
    await loyalty.enrol("M-BUSY", points=50)
    # today nobody is inactive: the operator's run expires nothing
    run = await loyalty.client.post("/expiries", headers=loyalty.operator)
    assert run.status_code == 200 and run.json() == {"members": 0, "points": 0}
    # 730 days on, M-OLD and M-NEW are inactive; M-BUSY redeemed a day before
    later = datetime.now(UTC) + timedelta(days=days + 1)
    busy = await service.expire_inactive(datetime.now(UTC))
    assert busy.members == 0
    async with service.db.write() as conn:  # M-BUSY's redemption, dated a day ago "later"
        await service._entry(conn, "M-BUSY", "redeem", -10, "recent-order")
        await conn.execute(
            service.t.ledger.update()
            .where(service.t.ledger.c.source_id == "recent-order")
            .values(created_at=later - timedelta(days=1))
        )
    result = await service.expire_inactive(later)
    assert (result.members, result.points) == (2, 300 + 80)
    again = await service.expire_inactive(later + timedelta(days=1))
    assert (again.members, again.points) == (0, 0)  # one period expires once
    assert (await loyalty.account("M-OLD"))["balance"] == 0
    assert (await loyalty.account("M-BUSY"))["balance"] == 40
    entries = (await loyalty.client.get("/members/M-OLD/ledger", headers=loyalty.operator)).json()
    assert [(e["kind"], e["points"]) for e in entries["entries"]] == [
        ("adjust", 300),
        ("expire", -300),
    ]
    # found by the integrity model: new points within the same second as the last activity
    # before an expiry are a new period, and expire in their turn
    async with service.db.write() as conn:
        await service._entry(conn, "M-OLD", "adjust", 25, "comeback")
    late = await service.expire_inactive(later + timedelta(days=days + 2))
    assert (late.members, late.points) == (2, 25 + 40)  # M-BUSY's 40 are inactive by then
    assert (await loyalty.account("M-OLD"))["balance"] == 0
    customer = await loyalty.client.post(
        "/expiries",
        headers=loyalty.as_(Identity(kind="user", consumer="x", sub="x")),
    )
    assert customer.status_code == 403
