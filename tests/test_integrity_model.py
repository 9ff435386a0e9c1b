"""Money, stock and points add up whatever sequence of calls arrives, from any channel.

A hypothesis state machine drives mixed sequences through the gateway of an embedded mesh
(real Redis, SQLite; one run on PostgreSQL): checkouts (ship and pick-up, with and without
points), cancellations, customer returns and store returns of online orders, ready,
collect (with the right and a wrong code), ship, deliver, till sales and till returns (of
its own sale, another store's, more units, a higher price), a day close, points
adjustments, the points expiry (run as it would three years on), and a partner releasing
another partner's reservation. Two customers, two stores, three SKUs with small stock.

After every step it lets the asynchronous work settle (outboxes, sagas, consumers: a wait
that follows progress and fails loudly when it stops) and checks, against a simple model:

- per order and till sale: refunded ≤ paid, units refunded ≤ units bought, restocked ≤
  returned (a cancellation of a booked order refunds and restocks it whole, once);
- ERP: ordered - refunded units per SKU equal the model's; on hand equals seed - sold +
  restocked, per SKU and location;
- available to sell per SKU and channel equals on hand (nothing reserved once settled);
- every member's balance is the sum of its ledger, never negative, and what it earned is
  at most the rate times what it paid;
- no 5xx anywhere, and every refusal is a 4xx problem with a known `type`.

`make test` runs a few examples (MODEL_EXAMPLES, MODEL_STEPS); `make fuzz` many more.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from services.mesh import build_embedded
from tests.conftest import PG_ADMIN_DSN, Running, _pg_available
from tests.services.orders.conftest import Shop
from tests.support import ensure_redis, settle, unique

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "3"))
STEPS = int(os.environ.get("MODEL_STEPS", "15"))

SKUS = ("SKU-000041", "SKU-000042", "SKU-000043")
STORES = ("STORE-001", "STORE-002")
DC = "DC-NORTH"
CUSTOMERS = ("cus-ann", "cus-bob")
MEMBERS = {"cus-ann": "M-ANN", "cus-bob": "M-BOB"}
WELCOME = 500
SEED = {**{(s, DC): 5 for s in SKUS}, **{(s, st_): 3 for s in SKUS for st_ in STORES}}
TILL_PRICE = 1000

INVENTORY = f"""
[channels.web]
locations = ["{DC}"]

[channels.pickup]
locations = {list(STORES)!r}

[safety_stock]
default = 0
""".replace("'", '"')

#: every refusal's `type` is one of these (the catalogue of problems the flows can meet)
KNOWN_PROBLEMS = {
    "out-of-stock",
    "insufficient-points",
    "illegal-transition",
    "wrong-pickup-code",
    "not-found",
    "unknown-order",
    "unknown-return",
    "not-returnable",
    "return-window-closed",
    "validation",
    "conflict",
    "forbidden",
    "not-your-store",
    "unknown-reservation",
    "rate-limited",
}


@dataclass
class OrderModel:
    order_id: str
    customer: str
    sku: str
    quantity: int
    location: str
    total: int
    fulfilment: str
    store: str | None
    code: str | None
    points: int
    status: str = "posted"
    returned: int = 0


@dataclass
class SaleModel:
    tid: str
    store: str
    sku: str
    quantity: int
    member: str | None
    returned: int = 0


@dataclass
class Counts:
    """What the model expects the ERP to hold."""

    restocked: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


class Harness:
    """One embedded mesh of the example's own: a fresh data dir, Redis prefix, database
    (a SQLite file per service, or a PostgreSQL database made for the example)."""

    postgres = False

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="rm-model-"))
        (self.tmp / "inventory.toml").write_text(INVENTORY)
        self.redis_url = ensure_redis()
        self.prefix = unique("rmtest:") + ":"
        self.env = {
            "DATA_DIR": str(self.tmp / "data"),
            "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": self.prefix,
            "LOG_LEVEL": "ERROR",
            "INVENTORY_CONFIG": str(self.tmp / "inventory.toml"),
            "RELAY_INTERVAL_S": "0.02",
            "SAGA_SWEEP_S": "0.2",
        }
        self.loop = asyncio.Runner()
        self.database: str | None = None
        if self.postgres:
            self.database = unique("rm_model_")
            self.loop.run(_pg(f'CREATE DATABASE "{self.database}"'))
            base = PG_ADMIN_DSN.rsplit("/", 1)[0].split("://", 1)[1]
            self.env["DATABASE_URL"] = f"postgresql+asyncpg://{base}/{self.database}"
        self.running = Running(build_embedded(self.env))
        self.loop.run(self.running.__aenter__())
        self.shop = Shop(self.running, self.env)

    def run(self, coro: Any) -> Any:
        return self.loop.run(coro)

    def close(self) -> None:
        try:
            self.run(self.shop.close())
            self.run(self.running.__aexit__(None, None, None))
            if self.database:
                self.run(_pg(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        finally:
            self.loop.close()
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


class IntegrityMachine(RuleBasedStateMachine):
    orders = Bundle("orders")
    sales = Bundle("sales")

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.shop = self.h.shop
        self.orders_by_id: dict[str, OrderModel] = {}
        self.sales_by_id: dict[str, SaleModel] = {}
        self.counts = Counts()
        self.sequence: Counter[str] = Counter()
        self.returns: list[str] = []

    def teardown(self) -> None:
        self.h.close()

    # plumbing

    def call(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            while True:
                r = await self.shop.gateway.request(method, path, headers=headers, **kw)
                if r.status_code != 429:
                    return r
                await asyncio.sleep(int(r.headers.get("retry-after", "1")))

        r: httpx.Response = self.h.run(go())
        assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text}"
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json", r.text
            slug = r.json()["type"].rsplit("/", 1)[-1]
            assert slug in KNOWN_PROBLEMS, f"{method} {path}: unknown problem type {slug}"
            self.counts.problems.append(slug)
        return r

    def customer(self, name: str) -> dict[str, str]:
        return self.shop.token(name, "orders:write", "orders:read", "orders:return")

    def till(self, store: str) -> dict[str, str]:
        return self.shop.token(
            f"till-{store}",
            "pos:write",
            "pos:read",
            "orders:return",
            "orders:read",
            "orders:pickup",
            store_id=store,
        )

    @property
    def operator(self) -> dict[str, str]:
        return self.shop.token("ops", roles=["admin"])

    def order_for(self, order_id: str) -> dict[str, Any]:
        return dict(self.h.run(self.shop.order(order_id)))

    # setup

    @initialize()
    def stock_and_members(self) -> None:
        async def setup() -> None:
            for (sku, location), units in SEED.items():
                await self.shop.set_on_hand(sku, location, units)
            for customer, member in MEMBERS.items():
                await self.shop.enrol(member, customer, WELCOME)
            for partner in ("acme", "rival"):
                r = await self.shop.gateway.post(
                    "/admin/v1/partners",
                    json={"id": partner, "name": partner},
                    headers=self.operator,
                )
                assert r.status_code == 201, r.text

        self.h.run(setup())
        self.settle()

    # online orders

    @rule(
        target=orders,
        customer=st.sampled_from(CUSTOMERS),
        sku=st.sampled_from(SKUS),
        quantity=st.integers(1, 3),
        pickup=st.sampled_from((None, *STORES)),
        points=st.sampled_from((0, 0, 50, 10_000)),
    )
    def checkout(
        self, customer: str, sku: str, quantity: int, pickup: str | None, points: int
    ) -> Any:
        member = MEMBERS[customer]
        body: dict[str, Any] = {
            "lines": [{"sku": sku, "quantity": quantity}],
            "payment_reference": f"psp-{uuid.uuid4().hex[:16]}",
            "member_id": member,
        }
        if pickup:
            body.update(fulfilment="pickup", pickup_store_id=pickup)
        if points:
            body["redeem"] = {"member_id": member, "points": points}
        location = pickup or DC
        available = self.ats(sku, location)
        balance = self.account(member)["available"]
        headers = {**self.customer(customer), "Idempotency-Key": f'"{uuid.uuid4()}"'}
        r = self.call("POST", "/v1/orders/orders", headers, json=body)
        if quantity > available:
            assert r.status_code == 409 and r.json()["type"].endswith("/out-of-stock"), r.text
            return multiple()
        if points > balance:
            assert r.status_code == 422, r.text
            return multiple()
        assert r.status_code == 201, r.text
        order = r.json()
        model = OrderModel(
            order_id=order["order_id"],
            customer=customer,
            sku=sku,
            quantity=quantity,
            location=location,
            total=order["total"]["amount"],
            fulfilment="pickup" if pickup else "ship",
            store=pickup,
            code=order.get("pickup_code"),
            points=points,
        )
        self.orders_by_id[model.order_id] = model
        self.settle()
        return model.order_id

    @rule(order_id=orders)
    def cancel(self, order_id: str) -> None:
        order = self.orders_by_id[order_id]
        r = self.call("POST", f"/v1/orders/orders/{order_id}/cancel", self.customer(order.customer))
        if order.status in ("posted", "ready_for_pickup"):
            assert r.status_code == 200, r.text
            order.status = "cancelled"
            self.counts.restocked[(order.sku, order.location)] += order.quantity
        else:
            assert r.status_code == 409, r.text

    @rule(order_id=orders, right=st.booleans())
    def pick_up(self, order_id: str, right: bool) -> None:
        """Ready, then collect with the right or a wrong code."""
        order = self.orders_by_id[order_id]
        if order.fulfilment != "pickup":
            return
        assert order.store is not None and order.code is not None
        till = self.till(order.store)
        path = f"/v1/orders/orders/{order_id}"
        if order.status == "posted":
            r = self.call("POST", path + "/ready", till)
            assert r.status_code == 200, r.text
            order.status = "ready_for_pickup"
        code = order.code if right else f"{(int(order.code) + 1) % 1_000_000:06d}"
        r = self.call("POST", path + "/collect", till, json={"pickup_code": code})
        if order.status == "ready_for_pickup" and right:
            assert r.status_code == 200, r.text
            order.status = "collected"
        else:
            assert 400 <= r.status_code < 500 and r.status_code != 200, r.text

    @rule(order_id=orders)
    def ship_and_deliver(self, order_id: str) -> None:
        order = self.orders_by_id[order_id]
        warehouse = self.shop.token("wms", "orders:fulfil")
        path = f"/v1/orders/orders/{order_id}"
        r = self.call("POST", path + "/ship", warehouse)
        if order.fulfilment == "ship" and order.status == "posted":
            assert r.status_code == 200, r.text
            r = self.call("POST", path + "/deliver", warehouse)
            assert r.status_code == 200, r.text
            order.status = "delivered"
        else:
            assert r.status_code in (404, 409), r.text

    @rule(
        order_id=orders, quantity=st.integers(1, 3), at_store=st.booleans(), restock=st.booleans()
    )
    def return_order(self, order_id: str, quantity: int, at_store: bool, restock: bool) -> None:
        order = self.orders_by_id[order_id]
        store = order.store or STORES[0]
        headers = self.till(store) if at_store else self.customer(order.customer)
        line = {"sku": order.sku, "quantity": quantity}
        if not restock:
            line["disposition"] = "damaged"
        r = self.call(
            "POST",
            "/v1/orders/returns",
            {**headers, "Idempotency-Key": f'"{uuid.uuid4()}"'},
            json={"order_id": order_id, "lines": [line]},
        )
        returnable = order.status in ("delivered", "collected")
        if returnable and quantity <= order.quantity - order.returned:
            assert r.status_code == 201, r.text
            order.returned += quantity
            self.returns.append(r.json()["return_id"])
            if restock:
                where = store if at_store else order.location
                self.counts.restocked[(order.sku, where)] += quantity
            self.settle()
        else:
            assert r.status_code in (404, 409, 422), r.text

    # the tills

    @rule(
        target=sales,
        store=st.sampled_from(STORES),
        sku=st.sampled_from(SKUS),
        quantity=st.integers(1, 2),
        member=st.sampled_from((None, *MEMBERS.values())),
    )
    def till_sale(self, store: str, sku: str, quantity: int, member: str | None) -> Any:
        tid = str(uuid.uuid4())
        tx = self._tx(store, tid, "sale", sku, quantity, TILL_PRICE, member)
        r = self.call(
            "POST", "/v1/pos/transactions/batches", self.till(store), json={"transactions": [tx]}
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        self.sales_by_id[tid] = SaleModel(tid, store, sku, quantity, member)
        self.settle()
        return tid

    @rule(
        tid=sales,
        kind=st.sampled_from(("fits", "other-store", "too-many-units", "higher-price")),
        quantity=st.integers(1, 2),
    )
    def till_return(self, tid: str, kind: str, quantity: int) -> None:
        sale = self.sales_by_id[tid]
        store = sale.store if kind != "other-store" else next(s for s in STORES if s != sale.store)
        price = TILL_PRICE + (1 if kind == "higher-price" else 0)
        left = sale.quantity - sale.returned
        if kind == "too-many-units":
            quantity = left + 1
        tx = self._tx(store, str(uuid.uuid4()), "return", sale.sku, quantity, price, sale.member)
        tx["original_transaction_id"] = tid
        r = self.call(
            "POST", "/v1/pos/transactions/batches", self.till(store), json={"transactions": [tx]}
        )
        assert r.status_code == 200, r.text
        (result,) = r.json()["results"]
        if kind == "fits" and quantity <= left:
            assert result["status"] == "accepted", result
            sale.returned += quantity
            self.settle()
        else:
            expected = "too-many-units" if kind == "fits" else kind
            assert (result["status"], result.get("code")) == ("rejected", expected), result

    @rule(store=st.sampled_from(STORES))
    def close_day(self, store: str) -> None:
        r = self.call("POST", f"/v1/pos/stores/{store}/days/2026-11-24/close", self.till(store))
        assert r.status_code == 409, r.text  # the POS posts per transaction here

    # points and reservations

    @rule(customer=st.sampled_from(CUSTOMERS), points=st.integers(-2000, 2000))
    def adjust_points(self, customer: str, points: int) -> None:
        member = MEMBERS[customer]
        available = self.account(member)["available"]
        r = self.call(
            "POST",
            f"/v1/loyalty/members/{member}/adjustments",
            self.operator,
            json={"source_id": f"adj-{uuid.uuid4().hex[:12]}", "points": points, "reason": "model"},
        )
        if points < 0 and available + points < 0:
            assert r.status_code == 422, r.text
        else:
            assert r.status_code == 200, r.text

    @rule()
    def expire_points_of_the_inactive(self) -> None:
        """The expiry run, as it would run three years on (every member inactive by then):
        each member's available points expire, once; what is held is not touched."""
        r = self.call("POST", "/v1/loyalty/expiries", self.operator)
        assert r.status_code == 200, r.text
        loyalty = self.h.running.app.registry.apps["loyalty"].state.holder["loyalty"]
        later = datetime.now(UTC) + timedelta(days=3 * 365)
        before = {m: self.account(m)["available"] for m in MEMBERS.values()}
        run = self.h.run(loyalty.expire_inactive(now=later))
        assert run.points == sum(p for p in before.values() if p > 0)
        for member in MEMBERS.values():
            assert self.account(member)["available"] == min(before[member], 0)
        again = self.h.run(loyalty.expire_inactive(now=later))
        assert (again.members, again.points) == (0, 0)  # one period expires once

    @rule(sku=st.sampled_from(SKUS))
    def another_partner_cannot_release_a_reservation(self, sku: str) -> None:
        if self.ats(sku, DC) < 1:
            return
        rid = f"p-{uuid.uuid4().hex[:12]}"
        mine = self.shop.token("acme-app", "inventory:reserve", partner_id="acme")
        theirs = self.shop.token("rival-app", "inventory:reserve", partner_id="rival")
        r = self.call(
            "POST",
            "/v1/inventory/reservations",
            mine,
            json={"reservation_id": rid, "sku": sku, "quantity": 1, "owner": rid, "channel": "web"},
        )
        assert r.status_code == 201, r.text
        r = self.call("POST", f"/v1/inventory/reservations/{rid}/release", theirs)
        assert r.status_code == 404, r.text
        r = self.call("POST", f"/v1/inventory/reservations/{rid}/release", mine)
        assert r.status_code == 200, r.text

    # reading the mesh

    def ats(self, sku: str, location: str) -> int:
        channel = "web" if location == DC else "pickup"

        async def read() -> int:
            r = await self.shop.inventory.get(f"/availability/{sku}", params={"channel": channel})
            assert r.status_code == 200, r.text
            return int(
                next(x["ats"] for x in r.json()["locations"] if x["location_id"] == location)
            )

        return int(self.h.run(read()))

    def account(self, member: str) -> dict[str, Any]:
        return dict(self.h.run(self.shop.account(member)))

    def _tx(
        self, store: str, tid: str, kind: str, sku: str, qty: int, price: int, member: str | None
    ) -> dict[str, Any]:
        self.sequence[store] += 1
        tx: dict[str, Any] = {
            "transaction_id": tid,
            "kind": kind,
            "store_id": store,
            "till_id": "T1",
            "sequence": self.sequence[store],
            "occurred_at": "2026-11-24T09:00:00Z",
            "lines": [
                {"sku": sku, "quantity": qty, "unit_price": {"amount": price, "currency": "EUR"}}
            ],
            "tenders": [{"kind": "card", "amount": {"amount": qty * price, "currency": "EUR"}}]
            if kind == "sale"
            else [],
        }
        if member:
            tx["member_id"] = member
        return tx

    def settle(self) -> None:
        """Wait until nothing is left to do: every saga ended, every outbox empty, every
        consumer group caught up. Follows progress; fails loudly when it stops."""
        apps = self.h.running.app.registry.apps

        async def left() -> tuple[int, ...]:
            unpublished = 0
            for app in apps.values():
                runtime = app.state.runtime
                async with runtime.db.read() as conn:
                    unpublished += await runtime.outbox.unpublished_count(conn)
            waiting = 0
            bus = self.h.running.app.runtime.bus
            for stream in ("events.orders", "events.pos", "events.erp"):
                for b in await bus.backlog(stream):
                    waiting += b.pending + b.undelivered
            open_orders = 0
            for oid in self.orders_by_id:
                status = (await self.shop.order(oid))["status"]
                open_orders += status in ("pending", "confirmed")
            open_returns = 0
            for rid in self.returns:
                r = await self.shop.orders.get(f"/returns/{rid}")
                open_returns += r.json()["status"] != "refunded"
            return unpublished, waiting, open_orders, open_returns

        self.h.run(settle(left, lambda n: not any(n), interval_s=0.05))

    # invariants

    @invariant()
    def money_stock_and_points_add_up(self) -> None:
        if not hasattr(self, "h"):
            return
        self.settle()
        postings = self.h.run(self._postings())
        by_order: dict[str, list[dict[str, Any]]] = {}
        for p in postings:
            by_order.setdefault(p["order_id"], []).append(p)
        sold: Counter[tuple[str, str]] = Counter()
        net_units: Counter[str] = Counter()
        for oid, order in self.orders_by_id.items():
            mine = by_order.get(oid, [])
            booked = [p for p in mine if p["kind"] == "order"]
            refunds = [p for p in mine if p["kind"] == "refund"]
            assert len(booked) <= 1, (oid, mine)
            paid = sum(p["amount"]["amount"] for p in booked)
            refunded = sum(p["amount"]["amount"] for p in refunds)
            units_refunded = sum(ln["quantity"] for p in refunds for ln in p["lines"])
            assert refunded <= paid, (oid, paid, refunded)
            assert units_refunded <= sum(ln["quantity"] for p in booked for ln in p["lines"])
            if order.status == "cancelled" and not booked:
                # cancelled before the ERP booked it: nothing sold, nothing to restock
                self.counts.restocked[(order.sku, order.location)] -= order.quantity
                order.status = "cancelled-unbooked"
            if order.status.startswith("cancelled"):
                assert refunded == paid, (oid, "a cancelled order is refunded whole", mine)
            else:
                assert booked, (oid, order.status, "a live order is booked")
                assert units_refunded == order.returned, (oid, units_refunded, order.returned)
                net_units[order.sku] += order.quantity - order.returned
            if booked:
                sold[(order.sku, order.location)] += order.quantity
        for tid, sale in self.sales_by_id.items():
            mine = by_order.get(tid, [])
            booked = [p for p in mine if p["kind"] == "order"]
            refunds = [p for p in mine if p["kind"] == "refund"]
            assert len(booked) == 1, (tid, mine)
            refunded_units = sum(ln["quantity"] for p in refunds for ln in p["lines"])
            assert refunded_units == sale.returned <= sale.quantity
            assert sum(p["amount"]["amount"] for p in refunds) <= booked[0]["amount"]["amount"]
            sold[(sale.sku, sale.store)] += sale.quantity
            net_units[sale.sku] += sale.quantity - sale.returned
        for sku in SKUS:
            totals = self.h.run(self.shop.erp.get(f"/postings/totals/{sku}")).json()
            assert totals["ordered_units"] - totals["refunded_units"] == net_units[sku], (
                sku,
                totals,
            )
            positions = self.h.run(self.shop.erp.get(f"/inventory/{sku}")).json()["positions"]
            for location in (DC, *STORES):
                on_hand = next(p["on_hand"] for p in positions if p["location_id"] == location)
                expected = (
                    SEED[(sku, location)]
                    - sold[(sku, location)]
                    + self.counts.restocked[(sku, location)]
                )
                assert on_hand == expected, (sku, location, on_hand, expected)
                assert self.ats(sku, location) == max(on_hand, 0), (sku, location)
        for customer, member in MEMBERS.items():
            account = self.account(member)
            ledger = self.h.run(self.shop.loyalty.get(f"/members/{member}/ledger")).json()[
                "entries"
            ]
            assert account["balance"] == sum(e["points"] for e in ledger) >= 0, (member, ledger)
            assert account["available"] >= 0
            earned = sum(e["points"] for e in ledger if e["kind"] == "earn")
            paid = sum(o.total for o in self.orders_by_id.values() if o.customer == customer)
            paid += sum(
                s.quantity * TILL_PRICE for s in self.sales_by_id.values() if s.member == member
            )
            assert earned <= math.floor(paid / 100 * 1.0), (member, earned, paid)

    async def _postings(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            r = await self.shop.erp.get("/postings", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            out += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out


async def _pg(statement: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


def _run(examples: int, steps: int, *, postgres: bool = False) -> None:
    Harness.postgres = postgres
    try:
        run_state_machine_as_test(
            IntegrityMachine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        Harness.postgres = False


def test_money_stock_and_points_add_up_under_any_sequence(redis_url: str) -> None:
    _run(EXAMPLES, STEPS)


@pytest.mark.postgres
def test_the_same_on_postgresql(redis_url: str) -> None:
    skip = _pg_available()
    if skip:
        pytest.skip(skip)
    _run(1, STEPS, postgres=True)
