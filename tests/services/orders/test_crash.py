"""The orders service killed (SIGKILL, by a failpoint) at each step of the saga, then
restarted: every order reaches an end state, no reservation or points hold leaks, and the
ERP has at most one posting per order. Every service runs as its own process."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.kit.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.services.orders.conftest import INVENTORY_TOML
from tests.support import ServedApp, local, settle_sync

SKU = "SKU-000123"
SHORT = "SKU-000124"  # none on hand: its line makes the saga compensate
MEMBER = "M-CRASH"
CUSTOMER = "crash-customer"
POINTS = 50
CONFIRMING = [
    "orders.checkout.created",
    "orders.saga.reserve.started",
    "orders.saga.reserve.called",
    "orders.saga.hold.started",
    "orders.saga.hold.called",
    "orders.saga.confirm.started",
    "orders.saga.confirm.called",
    "orders.saga.confirm.finished",
    "orders.post.called",
]
REJECTING = ["orders.saga.compensate.started", "orders.saga.compensate.called"]
RETURNING = [
    "orders.return.refund.started",
    "orders.return.refund.called",
    "orders.return.points.called",
    "orders.return.restock.called",
]


class Backends:
    def __init__(self, env: dict[str, str], secret: bytes) -> None:
        self.env = env
        self.orders_database = ""
        self.erp = ServedApp(
            "services.erp.app:create_app_from_env", {**env, "DATA_DIR": env["DATA_DIR"] + "/erp"}
        )
        self.inventory = ServedApp(
            "services.inventory.app:create_app_from_env",
            {
                **env,
                "DATA_DIR": env["DATA_DIR"] + "/inventory",
                "SERVICE_URLS": f"erp={self.erp.url}",
            },
        )
        self.loyalty = ServedApp(
            "services.loyalty.app:create_app_from_env",
            {**env, "DATA_DIR": env["DATA_DIR"] + "/loyalty"},
        )
        self.codec = IdentityCodec(secret)

    @property
    def operator(self) -> dict[str, str]:
        """Signed anew on each use: one signed at the start expires within the test."""
        who = Identity(kind="service", consumer="test", roles=frozenset({"admin"}))
        return {IDENTITY_HEADER: self.codec.sign(who)}

    def customer(self) -> dict[str, str]:
        return {
            IDENTITY_HEADER: self.codec.sign(Identity(kind="user", consumer=CUSTOMER, sub=CUSTOMER))
        }

    def urls(self) -> str:
        return f"erp={self.erp.url},inventory={self.inventory.url},loyalty={self.loyalty.url}"

    def start(self) -> Backends:
        ServedApp.start_together(self.servers())  # none left running if one does not start
        return self

    def servers(self) -> tuple[ServedApp, ...]:
        return (self.erp, self.inventory, self.loyalty)

    def stop(self) -> None:
        for app in (self.loyalty, self.inventory, self.erp):
            app.stop()


@pytest.fixture
def backends(
    tmp_path: Path, redis_url: str, redis_prefix: str, database_url: str
) -> Iterator[Backends]:
    (tmp_path / "inventory.toml").write_text(INVENTORY_TOML)
    secret = secrets.token_bytes(32)
    env = {
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "REDIS_MODE": "required",
        "LOG_LEVEL": "WARNING",
        "RELAY_INTERVAL_S": "0.1",
        "INVENTORY_CONFIG": str(tmp_path / "inventory.toml"),
        "IDENTITY_SECRET": secret.hex(),
    }
    b = Backends(env, secret).start()
    # the orders service keeps its sagas in SQLite or in PostgreSQL (the others in SQLite)
    b.orders_database = "" if database_url.startswith("sqlite") else database_url
    try:
        yield b
    finally:
        b.stop()


def _call(method: str, url: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
    return local().request(method, url, json=body, headers=headers)


def _setup(b: Backends, units: int) -> None:
    for sku, on_hand in ((SKU, units), (SHORT, 0)):
        for loc, n in (("DC-NORTH", on_hand), ("DC-SOUTH", 0)):
            current = _call("GET", f"{b.erp.url}/inventory/{sku}", b.operator).json()["positions"]
            have = next(p["on_hand"] for p in current if p["location_id"] == loc)
            r = _call(
                "POST",
                f"{b.erp.url}/inventory/adjustments",
                b.operator,
                {
                    "adjustment_id": f"set-{uuid.uuid4().hex[:8]}",
                    "sku": sku,
                    "location_id": loc,
                    "delta": n - have,
                    "reason": "count",
                },
            )
            assert r.status_code == 201, r.text
    r = _call(
        "POST",
        f"{b.loyalty.url}/members",
        b.operator,
        {"member_id": MEMBER, "customer_sub": CUSTOMER},
    )
    assert r.status_code == 201, r.text
    r = _call(
        "POST",
        f"{b.loyalty.url}/members/{MEMBER}/adjustments",
        b.operator,
        {"source_id": "start", "points": 10_000, "reason": "test"},
    )
    assert r.status_code == 200, r.text


def _orders(b: Backends, port: int | None, failpoint: str | None) -> ServedApp:
    env = {
        **b.env,
        "DATA_DIR": b.env["DATA_DIR"] + "/orders",
        "SERVICE_URLS": b.urls(),
        "SAGA_LEASE_S": "1",
        "SAGA_SWEEP_S": "0.2",
    }
    if b.orders_database:
        env["DATABASE_URL"] = b.orders_database
    if failpoint:
        env["FAILPOINTS"] = failpoint
    return ServedApp("services.orders.app:create_app_from_env", env, port=port).start()


def _until(check: Any, *working: ServedApp) -> Any:
    """Wait for `check()` to be true for as long as the work moves: the servers doing it use
    CPU, or what `check` sees changes. It fails when both stood still for 30 s (stuck), not
    after a fixed time that a slow machine would outrun."""

    def observe() -> tuple[Any, int]:
        return check(), sum(app.cpu_ticks() for app in working)

    return settle_sync(observe, lambda seen: bool(seen[0]), stall_s=30.0)[0]


def _checkout_through_a_crash(
    b: Backends, failpoint: str, lines: list[dict[str, Any]]
) -> dict[str, Any]:
    """Check out with the failpoint armed; the process dies; restart it; the client retries
    with the same Idempotency-Key until it gets the order's end."""
    orders = _orders(b, None, failpoint)
    key = f'"{uuid.uuid4()}"'
    headers = {**b.customer(), "Idempotency-Key": key}
    body = {
        "lines": lines,
        "payment_reference": "psp-crash",
        "redeem": {"member_id": MEMBER, "points": POINTS},
    }
    try:
        first: httpx.Response | None = _call("POST", f"{orders.url}/orders", headers, body)
    except httpx.HTTPError:
        first = None  # the process died under the request
    assert orders.proc is not None
    try:
        _until(lambda: (orders.proc is not None and orders.proc.poll() is not None) or None, orders)
    finally:
        orders.kill()  # dead by its failpoint, or stopped here when the test fails
    restarted = _orders(b, orders.port, None)
    try:

        def answered() -> httpx.Response | None:
            r = _call(
                "POST", f"{restarted.url}/orders", {**b.customer(), "Idempotency-Key": key}, body
            )
            return None if r.status_code == 409 and "in-flight" in r.json()["type"] else r

        final = _until(answered, restarted, *b.servers())
        if first is not None:  # the same answer (each problem names its own request)
            assert {**final.json(), "request_id": 0} == {**first.json(), "request_id": 0}
        result: dict[str, Any] = final.json()
        oid = result["order_id"]
        if final.status_code == 201:
            _until(
                lambda: (
                    _call("GET", f"{restarted.url}/orders/{oid}", b.operator).json()["status"]
                    == "posted"
                ),
                restarted,
                *b.servers(),
            )
        return {"status": final.status_code, "order_id": oid}
    finally:
        restarted.stop()


def test_orders_killed_at_each_saga_step_end_without_leaks(backends: Backends) -> None:
    b = backends
    _setup(b, units=100)
    outcomes = {}
    for point in CONFIRMING:
        outcomes[point] = _checkout_through_a_crash(b, point, [{"sku": SKU, "quantity": 2}])
    for point in REJECTING:
        outcomes[point] = _checkout_through_a_crash(
            b, point, [{"sku": SKU, "quantity": 2}, {"sku": SHORT, "quantity": 1}]
        )
    assert {p: o["status"] for p, o in outcomes.items()} == {
        **{p: 201 for p in CONFIRMING},
        **{p: 409 for p in REJECTING},
    }
    for point, outcome in outcomes.items():
        oid = outcome["order_id"]
        postings = (
            local()
            .get(f"{b.erp.url}/postings", params={"order_id": oid}, headers=b.operator)
            .json()["items"]
        )
        reservation = _call("GET", f"{b.inventory.url}/reservations/{oid}.0", b.operator).json()
        if point in CONFIRMING:
            assert len(postings) == 1, point
            assert reservation["status"] == "committed", point
        else:
            assert postings == [], point
            assert reservation["status"] == "released", point
    # stock: two units per confirmed order left, nothing held; points: redeemed once each
    ats = _call("GET", f"{b.inventory.url}/availability/{SKU}", b.operator).json()["ats"]
    assert ats == 100 - 2 * len(CONFIRMING)
    account = _call("GET", f"{b.loyalty.url}/members/{MEMBER}", b.operator).json()
    entries = _call("GET", f"{b.loyalty.url}/members/{MEMBER}/ledger", b.operator).json()["entries"]
    redeemed = [e for e in entries if e["kind"] == "redeem"]
    earned = [e for e in entries if e["kind"] == "earn"]
    # each confirmed order redeemed its points once and earned once; nothing stays held
    assert [e["points"] for e in redeemed] == [-POINTS] * len(CONFIRMING)
    assert sorted(e["source_id"] for e in earned) == sorted(
        o["order_id"] for p, o in outcomes.items() if p in CONFIRMING
    )
    assert account["balance"] == sum(e["points"] for e in entries)
    assert account["held"] == 0
    # returns are sagas too: killed at each of their steps, each ends refunded, once
    returned = list(outcomes.values())[: len(RETURNING)]
    for point, outcome in zip(RETURNING, returned, strict=True):
        _return_through_a_crash(b, point, outcome["order_id"])
    for outcome in returned:
        postings = (
            local()
            .get(
                f"{b.erp.url}/postings",
                params={"order_id": outcome["order_id"]},
                headers=b.operator,
            )
            .json()["items"]
        )
        assert sorted(p["kind"] for p in postings) == ["order", "refund"]
    ats = _call("GET", f"{b.inventory.url}/availability/{SKU}", b.operator).json()["ats"]
    assert ats == 100 - 2 * len(CONFIRMING) + len(RETURNING)
    ledger = _call("GET", f"{b.loyalty.url}/members/{MEMBER}/ledger", b.operator).json()
    kinds = Counter(e["kind"] for e in ledger["entries"])
    assert kinds["reverse"] == len(RETURNING)
    assert kinds["adjust"] == 1 + len(RETURNING)  # the start, and redeemed points given back


def _return_through_a_crash(b: Backends, failpoint: str, order_id: str) -> None:
    orders = _orders(b, None, failpoint)
    body = {"order_id": order_id, "lines": [{"sku": SKU, "quantity": 1}]}
    headers = {**b.customer(), "Idempotency-Key": f'"{uuid.uuid4()}"'}
    try:
        for step in ("ship", "deliver"):  # an order is returned once the customer has it
            moved = _call("POST", f"{orders.url}/orders/{order_id}/{step}", b.operator)
            assert moved.status_code == 200, moved.text
        r = _call("POST", f"{orders.url}/returns", headers, body)
        assert r.status_code == 201, r.text  # accepted; the saga runs after the answer
        return_id = r.json()["return_id"]
        _until(lambda: (orders.proc is not None and orders.proc.poll() is not None) or None, orders)
    finally:
        orders.kill()
    restarted = _orders(b, orders.port, None)
    try:
        _until(
            lambda: (
                _call("GET", f"{restarted.url}/returns/{return_id}", b.operator).json()["status"]
                == "refunded"
            ),
            restarted,
            *b.servers(),
        )
    finally:
        restarted.stop()
