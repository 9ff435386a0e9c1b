"""Coalescing: callers that ask at the same moment are served by one call for all of them.

Written here because it is a dozen lines on asyncio futures that no library offers in this
shape: each caller awaits its own result, and the batch is whatever arrived while the
previous one was on its way (no timer, so a lone caller waits for nobody).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """`await submit(item)` answers `send(batch)`'s result for that item. `send` gets up to
    `max_batch` items and answers one result per item, in order; when it raises, every
    caller of that batch gets the exception."""

    def __init__(self, send: Callable[[list[T]], Awaitable[Sequence[R]]], max_batch: int) -> None:
        self.send, self.max_batch = send, max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._sending: list[asyncio.Future[R]] = []
        self.calls = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        try:
            return await future
        except asyncio.CancelledError:
            # When nobody waits any more (their consumer is stopping), the call is abandoned
            # rather than left running past its owner (a database transaction is rolled
            # back by its own context manager).
            waiting = self._sending + [f for _, f in self._pending]
            if self._flusher is not None and all(f.done() for f in waiting):
                self._flusher.cancel()
            raise

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the callers woken together with the first one join it
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._send(batch)
        except BaseException:  # cancelled: whoever still waits must not wait forever
            for _, future in self._pending:
                future.cancel()
            self._pending.clear()
            raise
        finally:
            self._flusher = None

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.calls += 1
        self._sending = [future for _, future in batch]
        try:
            results = await self.send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled: the callers must not wait forever
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # its caller may have been cancelled meanwhile
                future.set_result(result)
