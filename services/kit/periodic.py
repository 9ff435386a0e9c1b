"""A job run every `interval_s` for the life of a service (a background worker)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from services.kit.supervisor import Liveness

__all__ = ["Periodic"]

log = logging.getLogger("retailmesh.periodic")


class Periodic:
    """Runs `job` now (unless `delay_first`) and then every `interval_s` until stopped; a
    failing run is logged, counted in its liveness, and the next one comes as planned. A run
    may take `run_s` (a resumer driving sagas waits on services) before it counts as late."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        job: Callable[[], Awaitable[Any]],
        *,
        delay_first: bool = False,
        run_s: float = 120.0,
    ) -> None:
        self.name, self.interval_s, self.job, self.delay_first = name, interval_s, job, delay_first
        self.liveness = Liveness(expected_s=interval_s + run_s)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        wait = self.delay_first
        while not self._stopping.is_set():
            if wait:
                try:
                    async with asyncio.timeout(self.interval_s):
                        await self._stopping.wait()
                    return
                except TimeoutError:
                    pass
            wait = True
            try:
                await self.job()
            except Exception as exc:
                self.liveness.failed(exc)
                log.exception("%s failed; next run in %s s", self.name, self.interval_s)
            else:
                self.liveness.ok()
