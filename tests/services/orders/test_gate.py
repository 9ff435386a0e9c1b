"""The checkout gate: in a rush on a SKU, what the stock left after the queued checkouts
cannot cover is refused before any order is written; beyond the checkouts a process runs at
once, the next is shed with 503 and Retry-After; never a refusal the stock could cover."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from contracts.models import CheckoutRequest
from services.mesh import build_embedded
from services.orders.errors import CheckoutBusy, OutOfStock
from services.orders.gate import CheckoutGate
from tests.conftest import Running
from tests.services.orders.conftest import SKU, Shop, cart


def _request(units: int, fulfilment: str = "ship") -> CheckoutRequest:
    body = cart((SKU, units))
    if fulfilment == "pickup":
        body |= {"fulfilment": "pickup", "pickup_store_id": "STORE-001"}
    return msgspec.convert(body, type=CheckoutRequest)


class Stock:
    """What the inventory would answer: the units left to sell, and how often it was asked."""

    def __init__(self, ats: int) -> None:
        self.ats, self.reads = ats, 0

    async def read(self, skus: list[str], channel: str) -> dict[str, int]:
        self.reads += 1
        await asyncio.sleep(0)
        return dict.fromkeys(skus, self.ats)


async def test_with_nothing_queued_the_saga_decides_without_a_read() -> None:
    stock = Stock(ats=0)
    gate = CheckoutGate(stock.read, max_in_flight=10)
    await gate.admit("ord-a", _request(1))  # out of stock, but nobody waits: the saga says so
    assert stock.reads == 0 and gate.waiting[SKU] == 1


async def test_what_the_queued_checkouts_leave_is_all_that_is_admitted() -> None:
    stock = Stock(ats=3)
    gate = CheckoutGate(stock.read, max_in_flight=10)
    await gate.admit("ord-a", _request(2))
    await gate.admit("ord-b", _request(1))  # 3 - 2 waiting covers it
    with pytest.raises(OutOfStock):
        await gate.admit("ord-c", _request(1))  # 3 - 3 waiting does not
    assert gate.in_flight == 2 and gate.waiting[SKU] == 3
    # a's reservation is sent and made: the stock read shows it, `waiting` no longer does
    gate.sent("ord-a", SKU, 2)
    stock.ats = 1
    with pytest.raises(OutOfStock):
        await gate.admit("ord-c", _request(1))  # 1 left, b's unit still waits for it
    gate.sent("ord-b", SKU, 1)
    assert gate.waiting[SKU] == 0
    await gate.admit("ord-c", _request(1))  # nothing waits: the saga decides
    gate.done("ord-a")
    gate.done("ord-b")
    gate.done("ord-c")
    assert gate.in_flight == 0 and not gate.waiting


async def test_a_reservation_sent_but_not_yet_in_the_read_admits_too_many_never_too_few() -> None:
    stock = Stock(ats=2)
    gate = CheckoutGate(stock.read, max_in_flight=10)
    await gate.admit("ord-a", _request(1))
    await gate.admit("ord-b", _request(1))
    gate.sent("ord-a", SKU, 1)  # sent; the read below does not show it yet (ats still 2)
    await gate.admit("ord-c", _request(1))  # 2 - 1 waiting (b): admitted; a's saga decides
    assert gate.waiting[SKU] == 2


async def test_pickups_and_unanswered_reads_are_left_to_the_saga() -> None:
    stock = Stock(ats=0)
    gate = CheckoutGate(stock.read, max_in_flight=10)
    await gate.admit("ord-a", _request(1))
    await gate.admit("ord-b", _request(1, "pickup"))  # reserves at a store: not this read
    assert stock.reads == 0

    async def no_answer(skus: list[str], channel: str) -> dict[str, int] | None:
        return None

    gate.read_ats = no_answer
    await gate.admit("ord-c", _request(1))
    assert gate.in_flight == 3


async def test_a_resumed_saga_and_a_second_done_change_nothing() -> None:
    gate = CheckoutGate(Stock(ats=5).read, max_in_flight=10)
    await gate.admit("ord-a", _request(2))
    gate.sent("ord-other", SKU, 2)  # a saga resumed after a restart was never admitted here
    gate.sent("ord-a", SKU, 2)
    gate.sent("ord-a", SKU, 2)  # a step run again
    gate.done("ord-a")
    gate.done("ord-a")
    assert gate.in_flight == 0 and not gate.waiting


async def test_beyond_its_checkouts_in_flight_the_next_is_shed() -> None:
    gate = CheckoutGate(Stock(ats=100).read, max_in_flight=2)
    await gate.admit("ord-a", _request(1))
    await gate.admit("ord-b", _request(1))
    with pytest.raises(CheckoutBusy) as shed:
        await gate.admit("ord-c", _request(1))
    assert shed.value.status == 503 and shed.value.headers["Retry-After"] == "1"
    gate.done("ord-a")
    await gate.admit("ord-c", _request(1))


@pytest.fixture
async def tight_shop(shop_env: dict[str, str]) -> AsyncIterator[Shop]:
    env = {**shop_env, "CHECKOUT_MAX_IN_FLIGHT": "1"}
    async with Running(build_embedded(env)) as running:
        s = Shop(running, env)
        yield s
        await s.close()


async def test_through_the_gateway_a_shed_checkout_is_503_and_wrote_nothing(
    tight_shop: Shop,
) -> None:
    shop = tight_shop
    await shop.set_on_hand(SKU, "DC-NORTH", 50)
    results = await asyncio.gather(*(shop.checkout(f"rush-{n}", cart((SKU, 1))) for n in range(6)))
    statuses = sorted(r.status_code for r in results)
    # the first runs its saga (several transactions and calls) while the others, one
    # shared key lookup away from the gate, arrive: they are shed, not queued
    assert set(statuses) == {201, 503}, statuses
    for r in results:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
            assert r.json()["type"].endswith("/checkout-busy") and "order_id" not in r.json()
    for n, r in enumerate(results):  # the shed left no order
        mine = await shop.gateway.get("/v1/orders/orders", headers=shop.token(f"rush-{n}"))
        assert len(mine.json()["items"]) == (1 if r.status_code == 201 else 0), mine.text
    # a careful client asks again after Retry-After and gets its order
    again = await asyncio.gather(
        *(shop.checkout_to_the_end(f"rush-late-{n}", cart((SKU, 1))) for n in range(3))
    )
    assert [r.status_code for r in again] == [201, 201, 201]
