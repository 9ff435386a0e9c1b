"""Real servers for the tests: a private redis-server, a fresh PostgreSQL database, a
service served by Granian in a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis

__all__ = ["RedisServer", "ServedApp", "ensure_redis", "free_port", "redis_answers", "unique"]


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
    """A private, throw-away redis-server on a free port (nothing saved to disk)."""

    def __init__(self, port: int | None = None) -> None:
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
                "no",
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

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class ServedApp:
    """An ASGI factory served by Granian in its own process, as in the mesh mode."""

    def __init__(self, target: str, env: dict[str, str], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="rm-served-", suffix=".log")[1])

    def start(self, ready_path: str = "/readyz", timeout: float = 30) -> ServedApp:
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
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.target} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


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
