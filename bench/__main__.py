"""Run every benchmark, print each one's report, and end with one table of every target:
what this run measured, its anchor from the same run, the ratio and the target.
`BENCH_QUICK=1` runs each of them shorter; `BENCH_SUITE=1` adds the test suite's time."""

from __future__ import annotations

from bench import burst, checkout, flash_sale, gateway_vs_haproxy, pos_ingest, suite
from bench.table import QUICK, Row, render

if __name__ == "__main__":
    rows: list[Row] = []
    benches = [gateway_vs_haproxy, flash_sale, pos_ingest, checkout, burst]
    if suite.ENABLED:  # BENCH_SUITE=1: the suite's time too (minutes)
        benches.append(suite)
    for bench in benches:
        result = bench.run()
        print(bench.report(result), flush=True)
        rows += bench.rows(result)
    print()
    print("all targets, one run" + (" (BENCH_QUICK: short runs, indicative only)" if QUICK else ""))
    print(render(rows), flush=True)
