"""Running servers and wrk for the benchmarks; everything on 127.0.0.1, bounded in time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec

__all__ = [
    "FIVE_XX_LUA",
    "Served",
    "WrkResult",
    "ensure_debian_tool",
    "resident_mb",
    "roomy_plan",
    "wrk",
]

#: appended to a wrk Lua script: counts the answers of 500 and above over all threads and
#: prints "5xx: N", which `wrk()` reads into `five_xx`
FIVE_XX_LUA = """
fivexx = 0
response = function(status, headers, body)
  if status >= 500 then fivexx = fivexx + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("fivexx") end
  io.write(string.format("5xx: %d\\n", total))
end
"""


class WrkResult(msgspec.Struct, frozen=True):
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    #: socket errors (connect, read, write, timeout)
    errors: int
    non_2xx: int
    #: answers of 500 and above, when the Lua script counts them (prints "5xx: N")
    five_xx: int = 0


def ensure_debian_tool(binary: str, package: str) -> str:
    """The tool's path; installs the Debian package when missing and we may (root)."""
    found = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if found:
        return found
    if os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", package], check=True, env=env, capture_output=True
        )
        found = shutil.which(binary) or f"/usr/sbin/{binary}"
        if Path(found).exists():
            return found
    raise SystemExit(f"{binary} is needed: apt-get install {package}")


def roomy_plan(config: str, plan: str) -> str:
    """The gateway config with `plan`'s limits out of a benchmark's way (the limiter still
    runs on every request: what it costs is measured, not what it refuses)."""
    roomy = re.sub(
        rf"\[plans\.{plan}\]\n(?:.+\n){{3}}",
        f"[plans.{plan}]\nburst_per_second = 1000000\nper_minute = 100000000\n"
        "daily_quota = 1000000000\n",
        config,
    )
    assert roomy != config, f"no [plans.{plan}] with three limits"
    return roomy


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    script: Path | None = None,
) -> WrkResult:
    args = [
        ensure_debian_tool("wrk", "wrk"),
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60)
    out = done.stdout + done.stderr
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    five_xx = re.search(r"5xx: (\d+)", out)
    return WrkResult(
        rps,
        p50,
        p99,
        requests,
        errors,
        int(non_2xx.group(1)) if non_2xx else 0,
        int(five_xx.group(1)) if five_xx else 0,
    )


def resident_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Granian's workers), in MiB."""
    total_kb = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue  # gone meanwhile
        total_kb += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        pending += [int(c) for c in children]
    return total_kb / 1024


class Served:
    """A process serving on a port, stopped on exit."""

    def __init__(self, args: list[str], url: str, env: dict[str, str] | None = None) -> None:
        self.args, self.url = args, url
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def granian(
        cls, target: str, port: int, env: dict[str, str] | None = None, workers: int = 1
    ) -> Served:
        return cls(
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
                str(port),
                "--workers",
                str(workers),
                "--no-ws",
                target,
            ],
            f"http://127.0.0.1:{port}",
            env,
        )

    def start(self, probe: str = "/", headers: dict[str, str] | None = None) -> Served:
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.args[0]} exited: {self.proc.stderr.read().decode()[-2000:]}"
                )  # type: ignore[union-attr]
            try:
                httpx.get(self.url + probe, headers=headers, timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"{self.args} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
