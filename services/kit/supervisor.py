"""Background workers under supervision: none dies silently, none stays dead.

A worker (the outbox relay, an event consumer, a saga resumer, a periodic job, the gateway's
key cache) reports each round it completes to its `Liveness`. The supervisor runs it for the
life of the service: a worker that raises is logged with its traceback and started again
after a backoff with jitter (growing with the failures in a row, capped), and one that
returns without being asked to stop is started again too. `/readyz` reads every worker's
liveness and answers 503 while one has not completed a round within its expected time, so
an orchestrator sees a stuck worker the way it sees a dead database.

Written here rather than taken from a library: what is needed is small (a loop, a backoff,
a timestamp), and the process managers that do supervision (supervisord, systemd) work on
processes, not on tasks inside one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import msgspec

from services.kit.rng import rng

__all__ = ["Liveness", "Supervisor", "Worker", "WorkerState"]

log = logging.getLogger("retailmesh.workers")


class WorkerState(msgspec.Struct, frozen=True, kw_only=True):
    """A worker as `/readyz` shows it."""

    #: "ok", or "late": no round completed within `expected_s`
    status: str
    #: seconds since its last completed round
    last_round_s: float
    #: how long a round may take before the worker counts as stuck
    expected_s: float
    #: rounds that failed since the last good one
    failures: int
    #: times the supervisor started it again after it died
    restarts: int
    last_error: str | None = None


class Liveness:
    """What a worker tells about itself; kept across restarts of the same worker."""

    def __init__(self, expected_s: float) -> None:
        self.expected_s = expected_s
        self.last_ok = time.monotonic()
        self.failures = 0
        self.restarts = 0
        self.last_error: str | None = None

    def ok(self) -> None:
        """A round completed (or the worker made progress)."""
        self.last_ok = time.monotonic()
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def state(self) -> WorkerState:
        age = time.monotonic() - self.last_ok
        return WorkerState(
            status="ok" if age <= self.expected_s else "late",
            last_round_s=round(age, 3),
            expected_s=self.expected_s,
            failures=self.failures,
            restarts=self.restarts,
            last_error=self.last_error,
        )


class Worker(Protocol):
    name: str
    liveness: Liveness

    async def run(self) -> None: ...

    def stop(self) -> None: ...


class Supervisor:
    """Runs workers for the life of a service and starts again those that die."""

    def __init__(self, *, backoff_s: float = 0.2, max_backoff_s: float = 30.0) -> None:
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.workers: list[Worker] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self, worker: Worker) -> None:
        self.workers.append(worker)
        self._tasks.append(asyncio.create_task(self._keep(worker), name=worker.name))

    async def _keep(self, worker: Worker) -> None:
        live = worker.liveness
        while not self._stopping.is_set():
            try:
                await worker.run()
                if self._stopping.is_set():
                    return
                live.failed(RuntimeError("returned without being stopped"))
                log.error(
                    "worker %s returned without being stopped; starting it again", worker.name
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                live.failed(exc)
                log.exception("worker %s died; starting it again", worker.name)
            live.restarts += 1
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** min(live.failures - 1, 16))
            try:
                async with asyncio.timeout(delay * rng.uniform(0.5, 1.0)):
                    await self._stopping.wait()
            except TimeoutError:
                pass

    def states(self) -> dict[str, WorkerState]:
        return {worker.name: worker.liveness.state() for worker in self.workers}

    async def stop(self) -> None:
        self._stopping.set()
        for worker in self.workers:
            worker.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.workers.clear()
