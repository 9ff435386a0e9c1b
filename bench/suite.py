"""The test suite's own time, as `make test` runs it (one worker per core), for the table.
Off by default (it takes minutes): BENCH_SUITE=1 make bench."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import msgspec

from bench.table import Row

__all__ = ["ENABLED", "SuiteResult", "report", "rows", "run"]

ENABLED = os.environ.get("BENCH_SUITE", "") not in ("", "0")


class SuiteResult(msgspec.Struct):
    seconds: float
    passed: bool


def run() -> SuiteResult:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto"],
        capture_output=True,
        text=True,
        check=False,
    )
    return SuiteResult(time.perf_counter() - started, done.returncode == 0)


def rows(r: SuiteResult) -> list[Row]:
    return [
        Row(
            what="the test suite (pytest, one worker per core)" + ("" if r.passed else ", FAILED"),
            now=r.seconds,
            unit="s",
            target=300,
            sense="<=",
        )
    ]


def report(r: SuiteResult) -> str:
    return f"test suite: {r.seconds:.0f} s, {'passed' if r.passed else 'FAILED'}"


if __name__ == "__main__":
    print(report(run()))
