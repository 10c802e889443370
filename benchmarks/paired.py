"""Issue 22's rows as paired ratios: medfuse and its anchor in alternating blocks of one process.

    python benchmarks/paired.py [--pairs 11] [--repeat 5] [--rows conv2d,canny-ct,...] [-o paired.md]

pytest-benchmark times each implementation in its own stretch of a run, and
on a shared VM the host's state moves 30-60 % between two stretches minutes
apart (BENCHMARKS.md, "The groups below 1.0x"): a cell near 1.0x can land on
either side. Here, for each row and thread count, a block of medfuse calls
and a block of the anchor's calls run back to back, ``--pairs`` times, the
order alternating (medfuse first in odd pairs, the anchor first in even
ones); each block is the median of ``--repeat`` calls after ``--warmup``
untimed ones, and the ratio (anchor time / medfuse time, above 1.0 = medfuse faster)
is taken per pair, so both sides of a ratio see the same state of the host.
The table gives the median ratio over the pairs, the lowest and highest, and
how many pairs had medfuse ahead. The anchor runs at the same thread count
(``cv2.setNumThreads``, ``torch.set_num_threads``) except single-threaded
SciPy / NumPy, which are compared with medfuse at 1 and at 2 threads. Each
row's results are checked against the anchor once, outside the timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import medfuse
from _machine import cpu_name, emit, median_time
from medfuse.bench import cases as bc

Fn = Callable[[], Any]


@dataclass
class Row:
    key: str  # --rows selects by this
    name: str
    anchor: str
    make: Callable[[int], tuple[Fn, Fn]]  # threads -> (medfuse call, anchor call), anchor threads set by pinned()
    check: Callable[[Any, Any], None]


@contextmanager
def pinned(threads: int) -> Iterator[None]:
    """medfuse and OpenCV (``medfuse.bench.cases.pinned_threads``) and PyTorch, if imported, at ``threads``."""
    torch = sys.modules.get("torch")
    saved_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with bc.pinned_threads(threads):
            yield
    finally:
        if torch is not None and saved_torch is not None:
            torch.set_num_threads(saved_torch)


def _equal(a: Any, b: Any) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and np.array_equal(a, b), "results differ"


def _close(a: Any, b: Any) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1e-4 * max(float(np.abs(b).max()), 1e-30)


def _conv_row(key: str, name: str, n: int, cin: int, h: int, cout: int, k: int, s: int, p: int, g: int) -> Row:
    def make(threads: int) -> tuple[Fn, Fn]:
        import torch

        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, cin, h, h)).astype(np.float32)
        w = (rng.standard_normal((cout, cin // g, k, k)) / np.sqrt(cin // g * k * k)).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

        def anchor() -> Any:
            with torch.no_grad():
                return torch.relu(torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p, groups=g)).numpy()

        return (lambda: medfuse.conv2d(x, w, b, stride=s, padding=p, groups=g, activation="relu")), anchor

    return Row(key, name, "torch conv2d + relu", make, _close)


def _canny_row(key: str, group: str) -> Row:
    case = bc.case(group)

    def make(threads: int) -> tuple[Fn, Fn]:
        mf = bc.prepare(case, bc.Impl.from_id(f"medfuse-{threads}t"))
        cv = bc.prepare(case, bc.Impl.from_id(f"cv2-{threads}t"))
        # cv2 against what the benchmark checks it against: medfuse on the same 8-bit image (for an
        # int16 CT slice, the 8-bit lung-window copy cv2 gets, thresholds in grey levels)
        assert cv.expected is not None
        assert np.array_equal(cv.edges(cv.run()), cv.expected() != 0), f"cv2.Canny differs from {cv.expected_name}"
        return mf.run, cv.run

    def check(a: Any, b: Any) -> None:
        assert np.asarray(a).shape == np.asarray(b).shape

    return Row(key, f"Canny {case.description}", "cv2.Canny", make, check)


def _rows() -> list[Row]:
    rows = [
        _conv_row("conv2d", "conv2d 4x16x64x64 -> 32, 3x3, padding 1, bias, ReLU", 4, 16, 64, 32, 3, 1, 1, 1),
        _conv_row("conv2d-grouped", "conv2d 4x96x28x28 -> 96, 5x5, stride 2, padding 2, groups 4, bias, ReLU",
                  4, 96, 28, 96, 5, 2, 2, 4),
        _canny_row("canny-ct", "canny-u8-512"),
        _canny_row("canny-ct-i16", "canny-i16-ct-512"),
        _canny_row("canny-xray", "canny-u8-xray-512"),
    ]

    def label_make(threads: int) -> tuple[Fn, Fn]:
        import scipy.ndimage as ndi

        vol = np.random.default_rng(0).random((96, 384, 384)) < 0.45
        st = np.ones((3, 3, 3), bool)
        return (lambda: medfuse.label(vol, connectivity=26)), (lambda: ndi.label(vol, structure=st))

    def label_check(a: Any, b: Any) -> None:
        la, na = a
        lb, nb = b
        assert na == nb and np.array_equal(la != 0, lb != 0), "different components"

    rows.append(Row("label", "label 3D 96x384x384, 45 % random, 26-connectivity", "scipy.ndimage.label (1 thread)",
                    label_make, label_check))

    def hist_make(threads: int) -> tuple[Fn, Fn]:
        x = np.random.default_rng(0).standard_normal(4 << 20)
        return (lambda: medfuse.histogram(x, 256, (-4.0, 4.0))), (lambda: np.histogram(x, 256, (-4.0, 4.0)))

    def hist_check(a: Any, b: Any) -> None:
        assert np.array_equal(a[0], b[0]), "counts differ"

    rows.append(Row("histogram", "histogram 4M float64 (standard normal), 256 bins over [-4, 4)",
                    "numpy.histogram (1 thread)", hist_make, hist_check))

    from _inputs import xray_u8

    xray = xray_u8(2048)  # the benchmarks' chest X-ray (bench_enhance.py)

    def median_make(threads: int) -> tuple[Fn, Fn]:
        import cv2

        return (lambda: medfuse.median(xray, 3, border="replicate")), (lambda: cv2.medianBlur(xray, 3))

    rows.append(Row("median", "median 3x3 (replicated border), chest X-ray uint8 2048x2048", "cv2.medianBlur", median_make, _equal))

    def bilateral_make(threads: int) -> tuple[Fn, Fn]:
        import cv2

        return (lambda: medfuse.bilateral(xray, 5, 30.0, 3.0)), (lambda: cv2.bilateralFilter(xray, 5, 30.0, 3.0))

    def bilateral_check(a: Any, b: Any) -> None:  # same float32 formula up to cv2's exp table: within 1 grey level
        assert np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 1

    rows.append(Row("bilateral", "bilateral d=5, sigmas 30/3, chest X-ray uint8 2048x2048", "cv2.bilateralFilter",
                    bilateral_make, bilateral_check))
    return rows


def _block(fn: Fn, repeat: int, gap: float = 0.0, warmup: int = 2) -> float:
    if gap > 0:
        time.sleep(gap)
    return median_time(fn, repeat, warmup)


def measure(row: Row, threads: int, pairs: int, repeat: int, gap: float = 0.0, warmup: int = 2) -> dict[str, float]:
    import cv2  # noqa: F401  (imported before pinning, so that its thread count is set too)

    mf, anchor = row.make(threads)  # first: it may import torch, whose thread count pinned() sets
    with pinned(threads):
        row.check(mf(), anchor())
        t_mf, t_an, ratios = [], [], []
        for i in range(pairs):
            if i % 2 == 0:
                a = _block(mf, repeat, gap, warmup)
                b = _block(anchor, repeat, gap, warmup)
            else:
                b = _block(anchor, repeat, gap, warmup)
                a = _block(mf, repeat, gap, warmup)
            t_mf.append(a)
            t_an.append(b)
            ratios.append(b / a)
    r = np.array(ratios)
    return {"mf": float(np.median(t_mf)), "anchor": float(np.median(t_an)), "ratio": float(np.median(r)),
            "lo": float(r.min()), "hi": float(r.max()), "ahead": int(np.count_nonzero(r > 1.0)), "pairs": len(r)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=11, help="pairs of blocks per row and thread count")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per block")
    parser.add_argument("--rows", default="", help="comma-separated row keys (default: all)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls at the start of each block (default 2): they absorb the previous "
                             "library's threads still spinning for work, and a host slow to wake a vCPU")
    parser.add_argument("--gap", type=float, default=0.0,
                        help="seconds of sleep before each block (default 0; on a VM, idle vCPUs wake slowly "
                             "and every library's 2-thread calls right after a pause are slower)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="Markdown file (default: stdout)")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeat < 1 or args.warmup < 0 or args.gap < 0:
        parser.error("--pairs and --repeat must be >= 1, --warmup and --gap >= 0")
    rows = _rows()
    if args.rows:
        wanted = args.rows.split(",")
        unknown = sorted(set(wanted) - {r.key for r in rows})
        if unknown:
            parser.error(f"unknown rows {unknown}; known: {[r.key for r in rows]}")
        rows = [r for r in rows if r.key in wanted]
    threads = [int(t) for t in args.threads.split(",")]
    load = os.getloadavg()
    lines = [
        f"{cpu_name()}, SIMD {medfuse.build_info()['simd_active']}; "
        f"load average at the start: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}. "
        f"{args.pairs} pairs of blocks of {args.repeat} timed calls per cell (after {args.warmup} untimed), "
        f"{args.gap * 1e3:g} ms apart; ratio = anchor / medfuse per pair "
        f"(above 1.0: medfuse faster). Reproduce: `python benchmarks/paired.py`.",
        "",
        "| row | anchor | threads | medfuse ms | anchor ms | ratio (median) | lowest - highest | pairs medfuse ahead |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        for t in threads:
            m = measure(row, t, args.pairs, args.repeat, args.gap, args.warmup)
            lines.append(
                f"| {row.name} | {row.anchor} | {t} | {m['mf'] * 1e3:.3f} | {m['anchor'] * 1e3:.3f} | "
                f"**{m['ratio']:.2f}x** | {m['lo']:.2f} - {m['hi']:.2f} | {m['ahead']}/{m['pairs']} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    emit("\n".join(lines) + "\n", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
