"""Which large-image kernels are memory-bound: their data rate against the machine's copy bandwidth.

    python benchmarks/bandwidth.py [--repeat 7] [--blocks 9] [-o bandwidth.md]

Issue 22 asks for a two-thread speed-up of >= 1.7x on 2048² images and CT
volumes for the kernels that are not memory-bound, and for the memory-bound
ones to be named with the measured bandwidth. This script measures

* the copy bandwidth of the machine (``numpy.copyto`` of 256 MiB, on 1 thread
  and split over 2 Python threads; NumPy releases the GIL while copying),
  counted as bytes read + bytes written, and
* the first-touch bandwidth: writing a freshly allocated 256 MiB array
  (``numpy.empty`` then a fill, on 1 thread and split over 2), where the
  operating system must hand out and zero every page first -- what each
  call's new output array costs before the kernel does any work, and
* for each kernel, its time on 1 and 2 threads and the least traffic it must
  cause (its input read once, its output written once), as GB/s on the same
  count, and the time its fresh output alone takes at the first-touch rate.
  The speed-up is the median over ``--blocks`` pairs of 1-thread / 2-thread
  times, each the median of ``--repeat`` calls, the two blocks of a pair run
  back to back in alternating order: on a shared VM whose vCPUs are slowed
  for seconds at a time, both sides of a pair see the same state.

A kernel whose 1-thread rate is already near the 2-thread copy bandwidth
cannot get much faster from a second thread. The least traffic understates
what multi-pass kernels move, so a low percentage does not prove a kernel is
compute-bound; a high one shows that it is bandwidth-bound. Medians of
``--repeat`` calls; the machine should be quiet (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import medfuse
from _machine import cpu_name, emit, median_time
from medfuse.data import phantoms


def copy_bandwidth(threads: int, repeat: int, nbytes: int = 256 << 20) -> float:
    """GB/s (read + write) of numpy.copyto over ``nbytes``, split over ``threads`` Python threads."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    bounds = [(len(src) * i // threads, len(src) * (i + 1) // threads) for i in range(threads)]

    def one(lo: int, hi: int) -> None:
        np.copyto(dst[lo:hi], src[lo:hi])

    def run() -> None:
        if threads == 1:
            one(*bounds[0])
            return
        workers = [threading.Thread(target=one, args=b) for b in bounds]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return 2 * nbytes / median_time(run, repeat) / 1e9


def first_touch_bandwidth(threads: int, repeat: int, nbytes: int = 256 << 20) -> float:
    """GB/s of filling a newly allocated ``nbytes`` array, split over ``threads`` Python threads."""
    times = []
    for _ in range(repeat + 1):
        dst = np.empty(nbytes, dtype=np.uint8)
        bounds = [(nbytes * i // threads, nbytes * (i + 1) // threads) for i in range(threads)]

        def one(lo: int, hi: int, dst: np.ndarray = dst) -> None:
            dst[lo:hi] = 1

        workers = [threading.Thread(target=one, args=b) for b in bounds]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        times.append(time.perf_counter() - t0)
        del dst
    return nbytes / float(np.median(times[1:])) / 1e9


def paired_times(fn: Callable[[], object], repeat: int, blocks: int) -> tuple[float, float, float]:
    """Median 1-thread and 2-thread times and the median paired speed-up (alternating blocks)."""
    t1, t2, ratio = [], [], []
    for k in range(blocks):
        med = {}
        for n in ((1, 2) if k % 2 == 0 else (2, 1)):
            medfuse.set_num_threads(n)
            med[n] = median_time(fn, repeat)
        t1.append(med[1])
        t2.append(med[2])
        ratio.append(med[1] / med[2])
    return float(np.median(t1)), float(np.median(t2)), float(np.median(ratio))


def cases() -> list[tuple[str, Callable[[], object], int]]:
    """(description, call, least bytes moved) for the large inputs of BENCHMARKS.md."""
    ct, _ = phantoms.ct_volume((128, 512, 512), seed=0)  # int16 HU
    ctf = ct.astype(np.float32)
    air = ct < -400
    rng = np.random.default_rng(0)
    xray = np.clip(rng.normal(128.0, 40.0, (2048, 2048)), 0, 255).astype(np.uint8)
    xray16 = (xray.astype(np.uint16) << 4) | rng.integers(0, 16, xray.shape, dtype=np.uint16)
    xrayf = xray.astype(np.float32)
    out: list[tuple[str, Callable[[], object], int]] = [
        ("histogram int16 CT 128x512x512, 1024 bins", lambda: medfuse.histogram(ct, 1024, (-1024, 3072)), ct.nbytes),
        ("gaussian float32 CT 128x512x512, sigma 2", lambda: medfuse.gaussian(ctf, 2.0), 2 * ctf.nbytes),
        ("binary_erode CT air mask 128x512x512, c26", lambda: medfuse.binary_erode(air, connectivity=26),
         2 * air.nbytes),
        ("fill_holes CT body mask 128x512x512", lambda: medfuse.fill_holes(~air), 2 * air.nbytes),
        ("label CT air mask 128x512x512, c26 (int32 labels)", lambda: medfuse.label(air, connectivity=26),
         air.nbytes * 5),
        ("median 3x3 uint8 2048x2048 (noise)", lambda: medfuse.median(xray, 3), 2 * xray.nbytes),
        ("clahe uint16 2048x2048 (noise)", lambda: medfuse.clahe(xray16, 40.0, (8, 8)), 2 * xray16.nbytes),
        ("clahe uint8 2048x2048 (noise)", lambda: medfuse.clahe(xray, 40.0, (8, 8)), 2 * xray.nbytes),
        ("canny uint8 2048x2048 (noise), 100/200", lambda: medfuse.canny(xray, 100.0, 200.0), 2 * xray.nbytes),
        ("sobel uint8 2048x2048 (noise), int32 out", lambda: medfuse.sobel(xray), xray.nbytes * 9),
        ("sobel float32 2048x2048 (noise)", lambda: medfuse.sobel(xrayf), xrayf.nbytes * 3),
        ("gaussian float32 2048x2048, sigma 2", lambda: medfuse.gaussian(xrayf, 2.0), 2 * xrayf.nbytes),
        ("unsharp_mask float32 2048x2048, sigma 2", lambda: medfuse.unsharp_mask(xrayf, 2.0, 1.0),
         2 * xrayf.nbytes),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="calls per timed block")
    parser.add_argument("--blocks", type=int, default=9, help="pairs of 1-thread and 2-thread blocks")
    parser.add_argument("-o", "--output", type=Path, default=None, help="Markdown file (default: stdout)")
    args = parser.parse_args(argv)
    saved = medfuse.get_num_threads()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    copy = {n: copy_bandwidth(n, args.repeat) for n in (1, 2)}
    touch = {n: first_touch_bandwidth(n, args.repeat) for n in (1, 2)}
    lines = [
        "## Memory bandwidth and the two-thread speed-up (`benchmarks/bandwidth.py`)",
        "",
        f"{cpu_name()}, SIMD {medfuse.build_info()['simd_active']}; load average at the start: {load}. "
        f"Copy bandwidth (numpy.copyto of 256 MiB, read + write): {copy[1]:.1f} GB/s on 1 thread, "
        f"{copy[2]:.1f} GB/s on 2. First touch (filling a new 256 MiB array: the pages are handed out and "
        f"zeroed first): {touch[1]:.1f} GB/s on 1 thread, {touch[2]:.1f} GB/s on 2. Kernel rates count the least "
        f"traffic (input read once, output written once); \"fresh output\" is the time a new output array of "
        f"the kernel's size takes at the 2-thread first-touch rate; times are medians over {args.blocks} blocks of "
        f"{args.repeat} calls, the speed-up the median of the paired 1-thread / 2-thread block ratios. "
        f"Reproduce: `python benchmarks/bandwidth.py`.",
        "",
        "| kernel | least traffic MB | 1 thread ms | GB/s | 2 threads ms | GB/s | speed-up | "
        "1-thread rate / 2-thread copy | fresh output ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        for desc, fn, nbytes in cases():
            t = {}
            t[1], t[2], speedup = paired_times(fn, args.repeat, args.blocks)
            rate = {n: nbytes / t[n] / 1e9 for n in t}
            res = fn()
            out_bytes = sum(int(np.asarray(a).nbytes) for a in (res if isinstance(res, tuple) else (res,))
                            if isinstance(a, np.ndarray))
            lines.append(
                f"| {desc} | {nbytes / 1e6:.0f} | {t[1] * 1e3:.2f} | {rate[1]:.1f} | {t[2] * 1e3:.2f} | "
                f"{rate[2]:.1f} | {speedup:.2f}x | {100 * rate[1] / copy[2]:.0f}% | "
                f"{out_bytes / touch[2] / 1e6:.2f} |"
            )
    finally:
        medfuse.set_num_threads(saved)
    text = "\n".join(lines) + "\n"
    emit(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
