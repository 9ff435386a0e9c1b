"""The mesh mode's processes under supervision (`retailmesh run-mesh`).

Each service is a Granian server: a main process and its worker. Each runs in a process
group of its own, and is told to stop when the supervisor dies (Linux's parent-death
signal), so that nothing outlives the mesh: when a main process dies (a
crash, `kill -9`), its whole group is killed (the worker would otherwise stay, orphaned,
still listening on the port) and started again after a backoff that doubles while it keeps
dying and starts over once it stayed up. The mesh stops only when asked (Ctrl-C, SIGTERM):
then every group gets SIGTERM (graceful drain) and, after a grace period, SIGKILL.

Written here rather than delegated to supervisord or systemd: `make run` must work on a
fresh clone with nothing but Python; in production each service is its own unit of the
platform's orchestrator, which does this job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = ["Child", "ProcessSupervisor"]


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the supervisor dies, even by
    `kill -9`, so that no service outlives the mesh that started it."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Child:
    """One supervised command, started in its own process group."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, list(argv), env
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.failures = 0  # deaths in a row, without a stable run between
        self.due = 0.0  # when to start it again after a death

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            self.argv, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.started_at = time.monotonic()

    def signal_group(self, sig: int) -> None:
        """Signal every process of its group: the main and whatever it started."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


class ProcessSupervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        stable_s: float = 60.0,
        grace_s: float = 10.0,
    ) -> None:
        self.children = list(children)
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.stable_s, self.grace_s = stable_s, grace_s

    def start_all(self) -> None:
        for child in self.children:
            child.start()

    def tend(self) -> None:
        """One look: a child that died is cleaned up and scheduled; one that is due starts."""
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                child.signal_group(signal.SIGKILL)  # its orphans go with it
                ran = now - child.started_at
                child.failures = 1 if ran >= self.stable_s else child.failures + 1
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (child.failures - 1))
                child.due = now + delay
                child.proc = None
                print(
                    f"{child.name} exited ({proc.returncode}) after {ran:.1f} s; "
                    f"starting it again in {delay:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            elif proc is None and now >= child.due:
                child.restarts += 1
                child.start()

    def run_until_interrupted(self, poll_s: float = 0.2) -> None:
        while True:
            self.tend()
            time.sleep(poll_s)

    def stop_all(self) -> None:
        for child in self.children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for child in self.children:
            if child.proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            child.signal_group(signal.SIGKILL)  # the main and any worker left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
