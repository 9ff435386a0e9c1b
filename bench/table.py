"""The one table `make bench` ends with: each target of the performance work as a row, with
what this run measured, its anchor from the same run, the ratio and the target."""

from __future__ import annotations

import os

import msgspec

__all__ = ["QUICK", "Row", "quick", "render"]

#: BENCH_QUICK=1: every benchmark, shorter (a check that they run and roughly where they
#: stand, in under three minutes); the full run is the one whose numbers count.
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def quick(full: float, short: float) -> float:
    return short if QUICK else full


class Row(msgspec.Struct, frozen=True, kw_only=True):
    what: str
    now: float
    unit: str
    #: the same measure of the anchor in the same run, when the target is a ratio
    anchor: float | None = None
    anchor_name: str = ""
    #: the target: a ratio to reach (`ratio >= target`), or a bound on `now`
    target: float
    #: how `now` (or the ratio) compares to the target: ">=" or "<="
    sense: str = ">="

    @property
    def ratio(self) -> float | None:
        if self.anchor is None:
            return None
        return self.now / self.anchor if self.anchor else 0.0

    @property
    def met(self) -> bool:
        value = self.ratio if self.ratio is not None else self.now
        return value >= self.target if self.sense == ">=" else value <= self.target


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def render(rows: list[Row]) -> str:
    head = ("what", "now", "anchor (same run)", "ratio", "target", "")
    cells: list[tuple[str, ...]] = [head]
    for r in rows:
        anchor = f"{_number(r.anchor)} {r.anchor_name}" if r.anchor is not None else "—"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
        target = f"{r.sense} {_number(r.target)}" + ("" if r.anchor is not None else f" {r.unit}")
        cells.append(
            (r.what, f"{_number(r.now)} {r.unit}", anchor, ratio, target, "ok" if r.met else "MISS")
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def line(c: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])
