"""At most one task per saga in this process: a second caller joins the running one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["OnePerId"]


class OnePerId:
    def __init__(self, name: str) -> None:
        self.name = name
        self._running: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def running(self, key: str) -> bool:
        return key in self._running

    def start(self, key: str, work: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """The task running for `key`, started with `work()` if there is none."""
        if self._closed:
            raise asyncio.CancelledError  # shutting down: the next start resumes it
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(work(), name=f"{self.name}-{key}")
            self._running[key] = task
            task.add_done_callback(lambda _t: self._running.pop(key, None))
        return task

    async def join(self, key: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Wait for it; the work goes on if the caller goes away (a client hanging up)."""
        await asyncio.shield(self.start(key, work))

    async def close(self) -> None:
        """Stop what runs (at shutdown, before the database goes): a saga cut here is
        resumed by the next start, as after a crash."""
        self._closed = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
