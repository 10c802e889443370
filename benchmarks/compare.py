"""The worst ratio per benchmark group, so a regression is visible at a glance.

    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/compare.py bench.json [more.json ...] [--fail-below 1.0]

For every group: each other implementation's median time divided by medfuse's
median at the same thread count (single-threaded libraries against medfuse on
1 thread; > 1 means medfuse is faster), the smallest of those ratios and which
anchor gives it, and medfuse's speed-up from 1 to its largest thread count.
Groups are printed worst first; with ``--fail-below R`` the exit status is 1
when any group's worst ratio is below R. The NumPy twin (medfuse.reference)
is left out unless ``--with-reference``: it is the exactness reference, not a
speed anchor. Rows are parsed as benchmarks/report.py parses them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import Row, _row


@dataclass(frozen=True)
class GroupSummary:
    group: str
    worst: float  # nan when the group has no anchor
    worst_anchor: str
    medfuse_ms: dict[int, float]
    speedup: float  # nan with one thread count


def summarise(rows: Sequence[Row], *, with_reference: bool = False) -> list[GroupSummary]:
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    out = []
    for group, members in groups.items():
        medfuse = {r.baseline_threads: r for r in members if r.family == "medfuse"}
        worst, anchor = math.nan, ""
        for r in members:
            if r.family == "medfuse" or (r.family == "reference" and not with_reference):
                continue
            base = medfuse.get(r.baseline_threads)
            if base is None or base.median <= 0:
                continue
            ratio = r.median / base.median
            if math.isnan(worst) or ratio < worst:
                worst = ratio
                threads = "" if r.threads is None else f" ({r.threads} thread{'s' * (r.threads != 1)})"
                anchor = r.label + threads
        counts = sorted(medfuse)
        speedup = medfuse[1].median / medfuse[counts[-1]].median if 1 in medfuse and len(counts) > 1 else math.nan
        out.append(GroupSummary(group, worst, anchor, {n: medfuse[n].median * 1e3 for n in counts}, speedup))
    return sorted(out, key=lambda s: (math.isnan(s.worst), s.worst))


def render(summaries: Sequence[GroupSummary], fail_below: float | None = None) -> str:
    lines = [f"{'group':<34} {'worst':>8}  {'anchor':<44} {'medfuse ms (threads)':<26} {'speed-up':>8}"]
    for s in summaries:
        worst = "-" if math.isnan(s.worst) else f"{s.worst:.2f}x"
        ms = ", ".join(f"{v:.3g} ({n})" for n, v in s.medfuse_ms.items()) or "-"
        speed = "-" if math.isnan(s.speedup) else f"{s.speedup:.2f}x"
        flag = "  <-- below" if fail_below is not None and not math.isnan(s.worst) and s.worst < fail_below else ""
        lines.append(f"{s.group:<34} {worst:>8}  {s.worst_anchor[:44]:<44} {ms:<26} {speed:>8}{flag}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", type=Path, help="pytest-benchmark JSON files")
    ap.add_argument("--fail-below", type=float, default=None, help="exit 1 if a group's worst ratio is below this")
    ap.add_argument("--with-reference", action="store_true", help="count the NumPy twin as an anchor too")
    args = ap.parse_args(argv)
    rows = []
    for path in args.json:
        data = json.loads(path.read_text())
        rows += [_row(b) for b in data.get("benchmarks", [])]
    summaries = summarise(rows, with_reference=args.with_reference)
    print(render(summaries, args.fail_below))
    if args.fail_below is not None and any(s.worst < args.fail_below for s in summaries if not math.isnan(s.worst)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
