"""Turn pytest-benchmark JSON files into the Markdown tables of BENCHMARKS.md.

    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json -o BENCHMARKS.md

Several JSON files (one run per kernel family, e.g.
``pytest benchmarks/bench_histogram.py --benchmark-json=histogram.json``) can
be given at once; every group's ratios come from one run.

Per group: the median time of every implementation and its ratio to medfuse
at the same thread count (single-threaded NumPy/SciPy code is compared with
medfuse on 1 thread), plus the machine, the library versions and the command
that reproduces the numbers. Only what the JSON holds is reported.

Runs from several CPU kinds (a CPU model and the SIMD path medfuse ran,
e.g. the same AVX-512 machine once more with ``MEDFUSE_SIMD=avx2``) get one
machine section and one summary table per kind, in the order of the files;
the per-group tables are those of the first kind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _machine import emit

# Display order of implementation families within a group.
FAMILY_ORDER = (
    "medfuse", "reference", "cv2", "numpy", "scipy", "skimage", "sitk", "torch",
    "fast_histogram", "boost_histogram", "mahotas", "pyradiomics", "librosa",
)
FAMILY_TITLES = {
    "medfuse": "medfuse",
    "reference": "medfuse.reference",
    "cv2": "OpenCV",
    "numpy": "NumPy",
    "scipy": "SciPy",
    "skimage": "skimage",
    "sitk": "SimpleITK",
    "torch": "PyTorch",
    "fast_histogram": "fast-histogram",
    "boost_histogram": "boost-histogram",
    "mahotas": "mahotas",
    "pyradiomics": "PyRadiomics",
    "librosa": "librosa",
}

REPRODUCE = """\
python -m pip install ".[bench]"
python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
python benchmarks/report.py bench.json -o BENCHMARKS.md
# or one family at a time, then merge the runs:
python -m pytest benchmarks/bench_edges.py --benchmark-only --benchmark-json=edges.json
python benchmarks/report.py edges.json histogram.json ... -o BENCHMARKS.md
# with the nodule detection evaluation (not a timing run) appended:
python benchmarks/eval_detection.py --n 100 --seed 0 -o detection.md
python benchmarks/report.py edges.json ... --extra detection.md -o BENCHMARKS.md"""


@dataclass(frozen=True)
class Row:
    group: str
    label: str
    family: str
    threads: int | None
    median: float  # seconds
    iqr: float  # seconds
    rounds: int
    edge_fraction: float | None
    checked_against: str | None
    description: str

    @property
    def baseline_threads(self) -> int:
        return self.threads or 1


def _row(bench: dict[str, Any]) -> Row:
    extra = bench.get("extra_info", {})
    stats = bench["stats"]
    label = extra.get("implementation") or bench.get("param") or bench["name"]
    family = extra.get("family") or str(bench.get("param") or label).split("-")[0]
    return Row(
        group=bench.get("group") or bench["name"],
        label=label,
        family=family,
        threads=extra.get("threads"),
        median=float(stats["median"]),
        iqr=float(stats["iqr"]),
        rounds=int(stats["rounds"]),
        edge_fraction=extra.get("edge_fraction"),
        checked_against=extra.get("checked_against"),
        description=extra.get("input", ""),
    )


def _sort_key(row: Row) -> tuple[int, int]:
    order = FAMILY_ORDER.index(row.family) if row.family in FAMILY_ORDER else len(FAMILY_ORDER)
    return order, row.threads or 0


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms < 1:
        return f"{ms:.3f}"
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:,.0f}"


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value >= 9.95 else f"{value:.2f}x"


def _threads_text(n: int | None) -> str:
    return f"{n} thread{'s' * (n != 1)}" if n else "1 thread"


def _short(row: Row) -> str:
    """Family and threads, e.g. ``cv2.Canny 2 threads`` or ``skimage``."""
    name = FAMILY_TITLES.get(row.family, row.family)
    return name if row.threads is None else f"{name} {_threads_text(row.threads)}"


def _versus(row: Row, medfuse: dict[int, Row]) -> str:
    """The ratio cell: how this row's time compares with medfuse's."""
    if row.family == "medfuse":
        one = medfuse.get(1)
        if row.baseline_threads == 1 or one is None:
            return "baseline"
        return f"speed-up over 1 thread: {_ratio(one.median / row.median)}"
    base = medfuse.get(row.baseline_threads)
    if base is None:
        return "—"
    return f"{_short(row)} / {_short(base)} = **{_ratio(row.median / base.median)}**"


def _table(rows: Sequence[Row]) -> list[str]:
    medfuse = {r.baseline_threads: r for r in rows if r.family == "medfuse"}
    with_edges = any(r.edge_fraction is not None for r in rows)
    head = "| implementation | median ms | IQR ms | rounds |"
    rule = "|---|---:|---:|---:|"
    if with_edges:
        head += " edges |"
        rule += "---:|"
    lines = [head + " checked against | time vs medfuse |", rule + "---|---|"]
    for r in sorted(rows, key=_sort_key):
        cells = f"| {r.label} | {_ms(r.median)} | {_ms(r.iqr)} | {r.rounds} |"
        if with_edges:
            cells += " " + ("" if r.edge_fraction is None else f"{100 * r.edge_fraction:.2f}%") + " |"
        lines.append(cells + f" {r.checked_against or ''} | {_versus(r, medfuse)} |")
    return lines


def _summary(groups: dict[str, list[Row]]) -> list[str]:
    """One line per group: medfuse's medians and every other family at 1 thread."""
    families = [f for f in FAMILY_ORDER[1:] if any(r.family == f for rows in groups.values() for r in rows)]
    thread_counts = sorted({r.baseline_threads for rows in groups.values() for r in rows if r.family == "medfuse"})
    head = ["group"] + [f"medfuse {_threads_text(n)} (ms)" for n in thread_counts]
    head += [f"{FAMILY_TITLES.get(f, f)} / medfuse, 1 thread" for f in families]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for group, rows in groups.items():
        medfuse = {r.baseline_threads: r for r in rows if r.family == "medfuse"}
        cells = [f"`{group}`"]
        cells += [_ms(medfuse[n].median) if n in medfuse else "—" for n in thread_counts]
        for f in families:
            match = [r for r in rows if r.family == f and r.baseline_threads == 1]
            base = medfuse.get(1)
            cells.append(_ratio(match[0].median / base.median) if match and base else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _machine(info: dict[str, Any]) -> list[str]:
    cpu = info.get("cpu", {})
    flags = set(cpu.get("flags", []))
    simd = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw") if f in flags) or "none listed"
    family = f", family {cpu['family']} model {cpu['model']}" if "family" in cpu and "model" in cpu else ""
    lines = [
        f"- CPU: {cpu.get('brand_raw', 'unknown')}{family}, {cpu.get('count', '?')} logical cores, "
        f"{cpu.get('hz_advertised_friendly', '? GHz')} ({cpu.get('arch', info.get('machine', '?'))}; "
        f"SIMD flags: {simd})",
        f"- OS: {info.get('platform') or info.get('system', '?') + ' ' + info.get('release', '')}",
        f"- Python: {info.get('python_implementation', '')} {info.get('python_version', '?')}",
    ]
    build = info.get("medfuse")
    if build:
        lines.append(
            f"- medfuse {build.get('version', '?')}: {build.get('compiler', '?')}, "
            f"{build.get('build_type', '?')}, native={build.get('native', '?')}; "
            f"SIMD active: {build.get('simd_active', '?')} "
            f"(compiled: {', '.join(build.get('simd_compiled', []))}; "
            f"supported here: {', '.join(build.get('simd_supported', []))})"
        )
    limits = info.get("isa_limits")
    if limits:
        lines.append("- SIMD limits of the reference libraries in the environment (benchmarks/as_avx2.sh sets them): "
                     + ", ".join(f"{k}={v}" for k, v in limits.items()))
    load = info.get("load_average")
    if load:
        lines.append(f"- Load average when the run started (1, 5, 15 min): {', '.join(str(x) for x in load)}")
    libraries = info.get("libraries")
    if libraries:
        lines.append("- Libraries: " + ", ".join(f"{k} {v}" for k, v in libraries.items()))
    return lines


def kind_of(run: dict[str, Any]) -> str:
    """The CPU kind a run measured: CPU model and the SIMD path medfuse ran."""
    info = run.get("machine_info", {})
    cpu = info.get("cpu", {})
    model = cpu.get("brand_raw", "unknown CPU")
    if "family" in cpu and "model" in cpu:
        model += f" family {cpu['family']} model {cpu['model']}"
    build = info.get("medfuse", {})
    active = build.get("simd_active", "?")
    text = f"{model}, SIMD path {active}"
    supported = build.get("simd_supported", [])
    if supported and active != supported[-1]:
        text += f" (forced with MEDFUSE_SIMD; the CPU has {supported[-1]})"
        if {"OPENCV_IPP", "ATEN_CPU_CAPABILITY"} <= set(info.get("isa_limits", {})):  # benchmarks/as_avx2.sh
            text += ", references limited likewise"
    return text


def _groups(runs: Sequence[dict[str, Any]]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for run in runs:
        for bench in run.get("benchmarks", []):
            row = _row(bench)
            groups.setdefault(row.group, []).append(row)
    return groups


def _worst_two_threads(groups: dict[str, list[Row]]) -> list[str]:
    """Per group: medfuse's speed-up from 1 to 2 threads and its worst ratio at 2 threads."""
    lines = [
        "| group | medfuse 1 → 2 threads | worst anchor / medfuse, 2 threads |",
        "|---|---:|---|",
    ]
    for group, rows in groups.items():
        medfuse = {r.baseline_threads: r for r in rows if r.family == "medfuse"}
        if 1 not in medfuse or 2 not in medfuse:
            continue
        speedup = _ratio(medfuse[1].median / medfuse[2].median)
        anchors = [r for r in rows if r.family not in ("medfuse", "reference") and r.threads == 2]
        worst = min(anchors, key=lambda r: r.median / medfuse[2].median, default=None)
        cell = "—" if worst is None else f"{_ratio(worst.median / medfuse[2].median)} ({worst.label})"
        lines.append(f"| `{group}` | {speedup} | {cell} |")
    return lines


def _commands(runs: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run: when it started and the command that ran it."""
    return [
        f"- {run.get('datetime', '?')[:19].replace('T', ' ')} UTC: `{run['machine_info']['command']}`"
        for run in runs
        if run.get("machine_info", {}).get("command")
    ]


def render(data: dict[str, Any], *more: dict[str, Any]) -> str:
    """The whole Markdown document for one or several benchmark runs."""
    runs = (data, *more)
    kinds: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        kinds.setdefault(kind_of(run), []).append(run)
    groups_by_kind = {kind: _groups(kruns) for kind, kruns in kinds.items()}
    if not any(groups_by_kind.values()):
        raise ValueError("the JSON file holds no benchmarks (was it written with --benchmark-disable?)")
    several = len(kinds) > 1
    commit = data.get("commit_info", {})
    rev = commit.get("id", "")[:10] or "unknown"
    if commit.get("dirty"):
        rev += " (with uncommitted changes)"
    out = [
        "# Benchmarks",
        "",
        f"{len(runs)} run{'s' * (len(runs) != 1)} of `pytest-benchmark` (the first on "
        f"{data.get('datetime', '?')[:19].replace('T', ' ')} UTC, commit {rev}); every group's "
        "ratios come from one run. Generated by `benchmarks/report.py`; do not edit by hand.",
        "",
    ]
    for n, (kind, kruns) in enumerate(kinds.items()):
        title = "## Machine" if not several else f"## Machine {n + 1}: {kind}"
        out += [title, "", *_machine(kruns[0].get("machine_info", {})), ""]
        if several:
            out += [*_commands(kruns), ""]
    out += [
        "## Reproduce",
        "",
        "```",
        REPRODUCE,
        "```",
        "",
    ]
    if not several:
        out += [*_commands(runs), ""]
    out += [
        "## How to read the tables",
        "",
        "Times are medians of wall time per call over the rounds shown. *Time vs medfuse* is "
        "the implementation's median divided by medfuse's at the same thread count; NumPy/SciPy "
        "code (single-threaded) is compared with medfuse on 1 thread. Above 1x, medfuse is "
        "faster. *Edges* (Canny) is the fraction of pixels (voxels) marked, to show that the "
        "implementations solve the same problem; *checked against* names the result the "
        "output was asserted equal to (exactly, or within the stated tolerance) before "
        "timing. Inputs come from the synthetic chest phantom (`medfuse.data.phantoms`); each "
        "group's parameters are in its `benchmarks/bench_<family>.py` (Canny: "
        "`medfuse/_benchcases.py`).",
        "",
    ]
    for n, (kind, groups) in enumerate(groups_by_kind.items()):
        if not groups:
            continue
        suffix = f": machine {n + 1}, {kind}" if several else ""
        out += [f"## Summary{suffix}", "", *_summary(groups), ""]
        two = _worst_two_threads(groups)
        if len(two) > 2:
            out += [f"### Two threads{suffix}", "", *two, ""]
    first_kind = next(iter(kinds))
    if several:
        out += [f"## Per-group tables: machine 1, {first_kind}", ""]
    for group, rows in groups_by_kind[first_kind].items():
        out += [f"## `{group}`", ""]
        description = next((r.description for r in rows if r.description), "")
        if description:
            out += [description + ".", ""]
        out += [*_table(rows), ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_files", type=Path, nargs="+", help="outputs of --benchmark-json")
    parser.add_argument("-o", "--output", type=Path, default=None, help="Markdown file (default: stdout)")
    parser.add_argument(
        "--extra",
        type=Path,
        action="append",
        default=[],
        help="a Markdown section appended as it is (results that are not pytest-benchmark timings, "
        "e.g. the output of benchmarks/eval_detection.py); may be repeated",
    )
    args = parser.parse_args(argv)
    try:
        runs = [json.loads(f.read_text(encoding="utf-8")) for f in args.json_files]
        text = render(*runs)
        for extra in args.extra:
            text = text.rstrip("\n") + "\n\n" + extra.read_text(encoding="utf-8").strip() + "\n"
    except (OSError, ValueError, KeyError) as err:
        print(f"report.py: error: {err}", file=sys.stderr)
        return 1
    emit(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
