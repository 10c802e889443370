"""The ``medfuse`` command line: ``demo``, ``bench``, ``info``.

Exit codes: 0 success, 1 failure (e.g. a benchmark failed), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import numpy.typing as npt

import medfuse

from . import _phantoms
from ._benchcases import pinned_threads

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# Largest synthetic volume the demo builds (its float32 work array is 4 bytes a voxel).
MAX_DEMO_VOXELS = 2**27

# Demo parameters: HU thresholds for CT, raw 12-bit units for the X-ray.
CT_LOW_HU, CT_HIGH_HU, CT_SIGMA = 200.0, 500.0, 1.0
XRAY_LOW, XRAY_HIGH = 300.0, 600.0


class _UsageError(Exception):
    """A bad command line that argparse cannot catch by itself."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medfuse",
        description="Multimodal medical image analysis with a fast C++ core.",
    )
    parser.add_argument("--version", action="version", version=f"medfuse {medfuse.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="Canny edges on a synthetic chest CT and X-ray, with timings",
        description=(
            "Build a synthetic chest CT (HU, with a lung nodule) and an X-ray projected "
            "from it, find edges in a CT slice, the X-ray and the whole volume, and "
            "report what was found and how long each call took."
        ),
    )
    demo.add_argument(
        "--shape",
        nargs=3,
        type=_positive_int,
        default=(64, 256, 256),
        metavar=("Z", "Y", "X"),
        help="CT volume shape (default: 64 256 256); the field of view is fixed, "
        "so the shape sets the voxel spacing",
    )
    demo.add_argument("--seed", type=int, default=0, help="phantom seed (default: 0)")
    demo.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help=f"kernel threads for medfuse and OpenCV (default: {medfuse.get_num_threads()})",
    )
    demo.set_defaults(handler=_cmd_demo)

    bench = sub.add_parser(
        "bench",
        help="run the benchmarks (pytest-benchmark), or a quick in-process timing table",
        description=(
            "Without --quick: run `python -m pytest BENCHMARKS --benchmark-only` and print "
            "its tables (needs the source tree's benchmarks/ folder). With --quick: time "
            "the small Canny cases in this process: medfuse vs its NumPy twin, OpenCV, "
            "scikit-image and SimpleITK, whichever are installed."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="in-process timing table, a few seconds")
    bench.add_argument(
        "--path",
        type=Path,
        default=None,
        help="benchmarks folder (default: ./benchmarks, else the one beside the source package)",
    )
    bench.add_argument("--json", type=Path, default=None, help="also write pytest-benchmark JSON here")
    bench.add_argument(
        "pytest_args",
        nargs="*",
        metavar="PYTEST_ARG",
        help="extra pytest arguments, after `--` (e.g. -- -k u8-512)",
    )
    bench.set_defaults(handler=_cmd_bench)

    info = sub.add_parser("info", help="print build information (SIMD paths, threads, compiler)")
    info.set_defaults(handler=_cmd_info)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("medfuse: error: a command is required (demo, bench, info)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except _UsageError as err:
        print(f"medfuse {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into e.g. `head`, which exited early
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return EXIT_FAILURE


# -- info -------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    for key, value in medfuse.build_info().items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        print(f"{key:>20}: {value}")
    return EXIT_OK


# -- demo -------------------------------------------------------------------


@dataclass(frozen=True)
class _Timed:
    seconds: float  # best of the repeats
    result: Any


def _best_of(fn: Callable[[], Any], repeats: int = 3) -> _Timed:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return _Timed(best, result)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms" if seconds < 10 else f"{seconds:8.1f} s "


def _segments(edges: Any) -> str:
    """How many separate 8-connected edge curves were found."""
    from scipy import ndimage

    _, n = ndimage.label(edges > 0, structure=np.ones((3, 3), dtype=bool))
    return f"{n} separate edge curves (8-connected)"


def _edge_summary(edges: npt.NDArray[np.uint8]) -> str:
    n = int(np.count_nonzero(edges))
    return f"{n:>9,} edge px ({100.0 * n / edges.size:4.1f}%)"


def _surface_hit(edges: npt.NDArray[np.uint8], inside: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """(surface voxels with an edge within one voxel, surface voxels) of a region."""
    from scipy import ndimage

    surface = inside & ~ndimage.binary_erosion(inside, ndimage.generate_binary_structure(inside.ndim, 1))
    near_edge = ndimage.binary_dilation(edges != 0, np.ones((3,) * edges.ndim, dtype=bool))
    return int(np.count_nonzero(surface & near_edge)), int(np.count_nonzero(surface))


def _hit_text(hit: int, total: int, what: str) -> str:
    if total == 0:
        return f"nodule {what}: not in view"
    return f"nodule {what} hit {100.0 * hit / total:.0f}% ({hit}/{total} px)"


def _cmd_demo(args: argparse.Namespace) -> int:
    shape = tuple(args.shape)
    if shape[1] < 32 or shape[2] < 32 or shape[0] < 4:
        raise _UsageError(f"--shape must be at least 4 32 32 (Z Y X); got {' '.join(map(str, shape))}")
    if int(np.prod(shape, dtype=np.int64)) > MAX_DEMO_VOXELS:
        raise _UsageError(f"--shape {' '.join(map(str, shape))} exceeds {MAX_DEMO_VOXELS:,} voxels")

    cv2 = _optional_cv2()
    with pinned_threads(args.threads):  # medfuse's and OpenCV's; restored afterwards
        _demo(shape, args.seed, cv2)
    return EXIT_OK


def _optional_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _demo(shape: tuple[int, int, int], seed: int, cv2: Any) -> None:
    info = medfuse.build_info()
    print(
        f"medfuse {medfuse.__version__} demo: {medfuse.get_num_threads()} kernel thread(s), "
        f"SIMD {info.get('simd_active', '?')}"
    )

    t0 = time.perf_counter()
    ph = _phantoms.ct_phantom(shape, seed=seed)
    t_ct = time.perf_counter() - t0
    t0 = time.perf_counter()
    xray = _phantoms.xray_from_ct(ph.volume, ph.spacing, seed=seed)
    t_xray = time.perf_counter() - t0
    vol, spacing = ph.volume, ph.spacing
    sp = ", ".join(f"{s:g}" for s in spacing)
    print(
        f"synthetic chest CT {'x'.join(map(str, vol.shape))} int16 HU, spacing ({sp}) mm, seed {seed} "
        f"[{t_ct:.2f} s]; X-ray {'x'.join(map(str, xray.shape))} uint16 12-bit [{t_xray:.2f} s]"
    )
    print(
        f"nodule: radius {ph.nodule_radius_mm:g} mm, +{_phantoms.HU_NODULE:g} HU in lung "
        f"({_phantoms.HU_LUNG:g} HU), centre (z, y, x) = "
        f"({', '.join(f'{c:.1f}' for c in ph.nodule_center)}) voxels"
    )
    print()

    box = ph.nodule_box()
    inside = ph.nodule_mask(box)
    k = int(np.clip(round(ph.nodule_center[0]), 0, vol.shape[0] - 1))
    ct_slice = vol[k]

    rows: list[tuple[str, str, str, str, str]] = []

    run = _best_of(lambda: medfuse.canny(ct_slice, CT_LOW_HU, CT_HIGH_HU, sigma=CT_SIGMA))
    in_slice = k - box[0].start
    if 0 <= in_slice < inside.shape[0]:
        hit = _surface_hit(run.result[box[1:]], inside[in_slice])
    else:
        hit = (0, 0)
    rows.append(
        (
            f"CT slice z={k} ({ct_slice.shape[0]}x{ct_slice.shape[1]} int16)",
            f"canny(low={CT_LOW_HU:g}, high={CT_HIGH_HU:g} HU, sigma={CT_SIGMA:g})",
            _ms(run.seconds),
            _edge_summary(run.result),
            _hit_text(*hit, "outline"),
        )
    )

    run = _best_of(lambda: medfuse.canny(xray, XRAY_LOW, XRAY_HIGH))
    rows.append(
        (
            f"X-ray ({xray.shape[0]}x{xray.shape[1]} uint16)",
            f"canny(low={XRAY_LOW:g}, high={XRAY_HIGH:g})",
            _ms(run.seconds),
            _edge_summary(run.result),
            _segments(run.result),
        )
    )

    run = _best_of(lambda: medfuse.canny(vol, CT_LOW_HU, CT_HIGH_HU, sigma=CT_SIGMA, spacing=spacing))
    hit = _surface_hit(run.result[box], inside)
    rows.append(
        (
            f"CT volume ({'x'.join(map(str, vol.shape))} int16)",
            f"canny(3D, {CT_LOW_HU:g}/{CT_HIGH_HU:g} HU, sigma={CT_SIGMA:g} mm, spacing)",
            _ms(run.seconds),
            _edge_summary(run.result),
            _hit_text(*hit, "surface"),
        )
    )

    # The same slice as 8-bit (lung window): medfuse matches cv2.Canny pixel for pixel.
    center, width = -600.0, 1500.0
    slice8 = _phantoms.window_u8(ct_slice, center, width)
    low8, high8 = CT_LOW_HU * 255.0 / width, CT_HIGH_HU * 255.0 / width
    thresholds = f"(low={low8:.4g}, high={high8:.4g})"
    ours = _best_of(lambda: medfuse.canny(slice8, low8, high8))
    rows.append(
        (
            f"CT slice z={k}, 8-bit lung window",
            f"canny{thresholds}, no smoothing",
            _ms(ours.seconds),
            _edge_summary(ours.result),
            "",
        )
    )
    if cv2 is not None:
        theirs = _best_of(lambda: cv2.Canny(slice8, low8, high8))
        same = np.array_equal(ours.result, theirs.result)
        verdict = "identical to medfuse" if same else "DIFFERS from medfuse"
        ratio = theirs.seconds / ours.seconds if ours.seconds > 0 else float("nan")
        rows.append(
            (
                "",
                f"cv2.Canny{thresholds}",
                _ms(theirs.seconds),
                _edge_summary(theirs.result),
                f"{verdict}; cv2/medfuse time {ratio:.2f}x",
            )
        )
    else:
        rows.append(("", "cv2.Canny", "", "", "OpenCV not installed"))

    _print_table(("input", "call", "time", "edges", "found"), rows)
    print("\ntimes: best of 3 calls. Edges within one voxel of the nodule surface count as hits.")


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line.rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


# -- bench ------------------------------------------------------------------


def _find_benchmarks(path: Optional[Path]) -> Path:
    if path is not None:
        if not path.is_dir():
            raise _UsageError(f"--path {path} is not a folder")
        return path.resolve()
    candidates = [Path.cwd() / "benchmarks", Path(__file__).resolve().parents[2] / "benchmarks"]
    for c in candidates:
        if (c / "bench_edges.py").is_file():
            return c
    raise _UsageError(
        "benchmarks/ not found (it lives in the source tree, not in the installed package); "
        "run from the repository root, pass --path, or use --quick"
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.quick:
        if args.json is not None or args.pytest_args:
            raise _UsageError("--json and pytest arguments apply only without --quick")
        _quick_bench()
        return EXIT_OK
    folder = _find_benchmarks(args.path)
    cmd = [sys.executable, "-m", "pytest", str(folder), "--benchmark-only"]
    if args.json is not None:
        cmd.append(f"--benchmark-json={args.json.resolve()}")
    cmd += list(args.pytest_args)
    print("$ " + " ".join(cmd), flush=True)
    # Run from the repository root so pytest picks up its configuration.
    code = subprocess.call(cmd, cwd=folder.parent)
    if code == 0 and args.json is not None:
        print(f"\nMarkdown tables: python {folder / 'report.py'} {args.json} -o BENCHMARKS.md")
    return EXIT_OK if code == 0 else EXIT_FAILURE


def _quick_bench() -> None:
    from . import _benchcases as bc

    print(
        f"medfuse {medfuse.__version__} quick benchmark: median wall time per call, "
        f"SIMD {medfuse.build_info().get('simd_active', '?')}; time vs medfuse > 1x means "
        "medfuse is faster. Full suite: medfuse bench\n"
    )
    for group in bc.QUICK_GROUPS:
        case = bc.case(group)
        print(f"{group}: {case.description}")
        timings: list[tuple[bc.Impl, float]] = []
        skipped: list[str] = []
        for impl in bc.implementations(case):
            try:
                prepared = bc.prepare(case, impl)
            except ImportError:
                skipped.append(impl.label(case))
                continue
            with bc.pinned_threads(prepared.threads):
                timings.append((impl, bc.time_call(prepared.run)))
        base = {impl.threads: t for impl, t in timings if impl.family == "medfuse"}
        rows = []
        for impl, t in timings:
            n = impl.threads or 1
            if impl.family == "medfuse":
                vs = f"speed-up over 1 thread {base[1] / t:.2f}x" if n != 1 and 1 in base else ""
            elif n in base:
                vs = f"{t / base[n]:.2f}x medfuse {n} thread{'s' * (n > 1)}"
            else:
                vs = ""
            rows.append((impl.label(case), f"{t * 1e3:9.2f} ms", vs))
        _print_table(("implementation", "median", "time vs medfuse"), rows)
        if skipped:
            print(f"(not installed: {', '.join(skipped)})")
        print()
