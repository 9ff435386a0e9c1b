"""Coalescing: callers that ask together share one call, each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from services.kit.coalesce import Coalescer


class Echo:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await asyncio.sleep(0.01)  # on its way: whoever asks meanwhile waits for the next
        if self.fail_on in items:
            raise ValueError(f"refused {self.fail_on}")
        return [n * 10 for n in items]


async def test_callers_asking_together_share_one_call_and_get_their_own_answers() -> None:
    send = Echo()
    batches = Coalescer(send, max_batch=100)
    answers = await asyncio.gather(*(batches.submit(n) for n in range(50)))
    assert answers == [n * 10 for n in range(50)]
    assert send.batches == [list(range(50))]
    assert batches.calls == 1


async def test_a_lone_caller_waits_for_nobody_and_a_batch_is_bounded() -> None:
    send = Echo()
    batches = Coalescer(send, max_batch=4)
    assert await batches.submit(7) == 70
    assert await asyncio.gather(*(batches.submit(n) for n in range(10))) == [
        n * 10 for n in range(10)
    ]
    assert send.batches == [[7], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_those_who_ask_while_a_call_is_on_its_way_go_in_the_next() -> None:
    send = Echo()
    batches = Coalescer(send, max_batch=100)
    first = asyncio.gather(*(batches.submit(n) for n in range(3)))
    await asyncio.sleep(0.001)  # the first call is out
    second = asyncio.gather(*(batches.submit(n) for n in range(3, 6)))
    assert await first == [0, 10, 20] and await second == [30, 40, 50]
    assert send.batches == [[0, 1, 2], [3, 4, 5]]


async def test_a_failed_call_fails_its_callers_only() -> None:
    send = Echo(fail_on=2)
    batches = Coalescer(send, max_batch=3)
    results = await asyncio.gather(*(batches.submit(n) for n in range(6)), return_exceptions=True)
    assert [type(r) for r in results[:3]] == [ValueError] * 3
    assert results[3:] == [30, 40, 50]
    assert await batches.submit(9) == 90  # and it goes on


async def test_a_wrong_number_of_answers_is_an_error_not_a_mix_up() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batches: Coalescer[int, int] = Coalescer(short, max_batch=10)
    with pytest.raises(RuntimeError, match="2 results for a batch of 3"):
        await asyncio.gather(*(batches.submit(n) for n in range(3)))


async def test_a_call_nobody_waits_for_any_more_is_abandoned() -> None:
    """A stopping consumer cancels its handlers: their batch call must not outlive them (it
    may hold a database transaction)."""
    started, abandoned = asyncio.Event(), asyncio.Event()

    async def slow(items: list[int]) -> list[int]:
        started.set()
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return items

    batches: Coalescer[int, int] = Coalescer(slow, max_batch=10)
    waiters = [asyncio.create_task(batches.submit(n)) for n in range(3)]
    await started.wait()
    waiters[0].cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not abandoned.is_set()  # two still wait for it
    for waiter in waiters[1:]:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    for _ in range(5):
        await asyncio.sleep(0)
    assert abandoned.is_set()
