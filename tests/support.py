"""Real servers for the tests: a private redis-server, a fresh PostgreSQL database, a
service served by Granian in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import redis

__all__ = [
    "IdentityAuth",
    "RedisServer",
    "ServedApp",
    "ensure_redis",
    "free_port",
    "patiently",
    "redis_answers",
    "settle",
    "settle_sync",
    "unique",
]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


class RedisServer:
    """A private, throw-away redis-server on a free port: nothing saved to disk, so a
    restart comes back empty, unless `persistent` (an append-only file, fsynced on every
    write: a restart comes back with every acknowledged write)."""

    def __init__(self, port: int | None = None, *, persistent: bool = False) -> None:
        self.persistent = persistent
        self.frozen = False
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="rm-redis-")

    @staticmethod
    def binary() -> str | None:
        return shutil.which("redis-server")

    def start(self) -> RedisServer:
        binary = self.binary()
        if binary is None:
            raise RuntimeError(
                "no Redis answers and no redis-server to start: install one "
                "(Debian: apt-get install redis-server) or set REDIS_URL"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def freeze(self) -> None:
        """SIGSTOP: the server hangs (connections open, nothing answered), as under a
        stalled disk or a paused VM."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot exit
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


_local: httpx.Client | None = None


def local() -> httpx.Client:
    """One client for plain HTTP calls to servers on this machine. Each `httpx.get` builds
    a client, and with it a TLS context (about 20 ms, loading the CA store) that a call to
    127.0.0.1 never uses; tests that poll a server would spend seconds on that alone."""
    global _local
    if _local is None:
        _local = httpx.Client(timeout=15)
    return _local


class ServedApp:
    """An ASGI factory served by Granian in its own process, as in the mesh mode. Every one
    started is stopped at the end of the run at the latest (`stop_all`, from conftest)."""

    started: ClassVar[list[ServedApp]] = []

    @classmethod
    def stop_all(cls) -> None:
        """Stop whatever a test left running (a test that failed before its `finally`)."""
        while cls.started:
            cls.started.pop().stop()

    def __init__(self, target: str, env: dict[str, str], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="rm-served-", suffix=".log")[1])

    @staticmethod
    def start_together(apps: Sequence[ServedApp], timeout: float = 60) -> None:
        """Launch every app, then wait for each to be ready: their imports and start-ups
        overlap (a mesh's ten processes one after another took 12 to 17 s of the suite's
        setup). When one does not start, none is left running."""
        try:
            for app in apps:
                app.launch()
            for app in apps:
                app.wait_ready(timeout=timeout)
        except BaseException:
            for app in apps:
                app.stop()
            raise

    def start(self, ready_path: str = "/readyz", timeout: float = 30) -> ServedApp:
        self.launch()
        return self.wait_ready(ready_path, timeout)

    def launch(self) -> ServedApp:
        """The process, started; not yet known to answer (`wait_ready`)."""
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "granian",
                    "--interface",
                    "asgi",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    self.target,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # its own process group: a kill reaches Granian's workers too, which would
                # otherwise outlive their SIGKILLed parent and hold ports and databases
                start_new_session=True,
            )
        ServedApp.started.append(self)
        return self

    def wait_ready(self, ready_path: str = "/readyz", timeout: float = 30) -> ServedApp:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if local().get(self.url + ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()  # never leave a half-started server behind
                raise RuntimeError(f"{self.target} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def cpu_ticks(self) -> int:
        """CPU time (clock ticks) used so far by this server's processes, workers included:
        a measure of whether it is still at work, for waits derived from progress."""
        if self.proc is None:
            return 0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            # after the command: state, ppid, pgrp, session, ..., utime (12th), stime (13th)
            if int(fields[3]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, the server and its workers at once (a crash, not a shutdown)."""
        if self.proc is not None:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM (a graceful drain), then SIGKILL if it takes more than 15 s; always
        waited for, and always the whole process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        self._signal_group(signal.SIGKILL)  # workers left behind by a crashed parent too
        self.proc.wait()
        self.proc = None


class IdentityAuth(httpx.Auth):
    """Signs a fresh identity header on every request: a header signed once expires after
    a minute, and a long test on a slow machine would outlive it."""

    def __init__(self, codec: Any, identity: Any) -> None:
        self.codec, self.identity = codec, identity

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["x-retailmesh-identity"] = self.codec.sign(self.identity)
        yield request


class Stalled(AssertionError):
    """The awaited condition did not come true and nothing moved for the stall period."""


async def settle(
    observe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    stall_s: float = 30.0,
    interval_s: float = 0.05,
    hang_s: float = 900.0,
) -> T:
    """Poll `observe()` until `done(value)`. A wait derived from progress, not from the
    clock: it fails only when the observed value stopped changing for `stall_s` (the work
    is stuck), however long a slow machine takes while the value still moves. `hang_s` is
    only the guard against a value that moves for ever without arriving (a livelock)."""
    value = await observe()
    changed_at = started = time.monotonic()
    while not done(value):
        if time.monotonic() - changed_at > stall_s or time.monotonic() - started > hang_s:
            raise Stalled(f"stuck at {value!r}")
        await asyncio.sleep(interval_s)
        latest = await observe()
        if latest != value:
            value, changed_at = latest, time.monotonic()
    return value


def settle_sync(
    observe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    stall_s: float = 30.0,
    interval_s: float = 0.05,
    hang_s: float = 900.0,
) -> T:
    """`settle` for synchronous tests."""
    value = observe()
    changed_at = started = time.monotonic()
    while not done(value):
        if time.monotonic() - changed_at > stall_s or time.monotonic() - started > hang_s:
            raise Stalled(f"stuck at {value!r}")
        time.sleep(interval_s)
        latest = observe()
        if latest != value:
            value, changed_at = latest, time.monotonic()
    return value


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


_redis_for_run: list[str] = []


def ensure_redis() -> str:
    """The Redis of this test run: REDIS_URL, else 127.0.0.1:6379, else a private server
    started once (and stopped at exit). Raises with how to get one when none can be had."""
    if _redis_for_run:
        return _redis_for_run[0]
    url = os.environ.get("REDIS_URL")
    if url:
        if not redis_answers(url):
            raise RuntimeError(f"REDIS_URL={url} does not answer")
    elif redis_answers("redis://127.0.0.1:6379/0"):
        url = "redis://127.0.0.1:6379/0"
    else:
        import atexit

        server = RedisServer().start()
        atexit.register(server.stop)
        url = server.url
    _redis_for_run.append(url)
    return url


async def patiently(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Call until the answer is not 429, waiting what `Retry-After` says in between."""
    while True:
        r = await call()
        if r.status_code != 429:
            return r
        await asyncio.sleep(int(r.headers["retry-after"]))
