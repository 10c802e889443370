"""``medfuse bench --quick``: one case per kernel family, timed in this process.

For each family: medfuse at 1 thread and at every core, its NumPy twin
(``medfuse.reference``), and OpenCV / SciPy / scikit-image / PyTorch where
installed and where they define the same operation. OpenCV and PyTorch run
with their thread count matched to medfuse's (``cv2.setNumThreads``,
``torch.set_num_threads``); NumPy, SciPy and scikit-image are single
threaded and are compared with medfuse at 1 thread. Median of repeated
calls after a warm-up (:func:`medfuse.bench.cases.time_call`). The full,
recorded benchmarks are the pytest-benchmark suites in ``benchmarks/``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import medfuse as mf
from medfuse import reference as ref

from ..data import phantoms as _phantoms
from ..kernels._threads import default_num_threads
from .cases import pinned_threads, time_call

Fn = Callable[[], Any]


@dataclass
class _Impl:
    label: str
    make: Callable[[], Fn]  # builds inputs / converts, returns the timed call
    threads: int | None  # None: single-threaded library (compare with medfuse at 1 thread)
    module: str | None = None  # optional import needed


def _opt(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _cases() -> list[tuple[str, str, list[_Impl]]]:
    n = default_num_threads()
    ph = _phantoms.ct_phantom((32, 128, 128), seed=0)
    vol = ph.volume
    sl = np.ascontiguousarray(_phantoms.ct_phantom((8, 512, 512), seed=0).volume[4])
    sl8 = _phantoms.window_u8(sl, -600.0, 1500.0)
    slf = sl8.astype(np.float32)
    rng = np.random.default_rng(0)
    cases: list[tuple[str, str, list[_Impl]]] = []

    def mf_impls(fn: Fn) -> list[_Impl]:
        out = [_Impl("medfuse 1 thread", lambda: fn, 1)]
        if n > 1:
            out.append(_Impl(f"medfuse {n} threads", lambda: fn, n))
        return out

    def cv2_impls(make: Callable[[Any], Fn]) -> list[_Impl]:
        out = [_Impl("cv2 1 thread", lambda: make(importlib.import_module("cv2")), 1, "cv2")]
        if n > 1:
            out.append(_Impl(f"cv2 {n} threads", lambda: make(importlib.import_module("cv2")), n, "cv2"))
        return out

    # edges
    cases.append(("edges", "canny, 512x512 uint8 CT slice (lung window), thresholds 40/100", [
        *mf_impls(lambda: mf.canny(sl8, 40.0, 100.0)),
        _Impl("reference (NumPy)", lambda: (lambda: ref.canny(sl8, 40.0, 100.0)), None),
        *cv2_impls(lambda cv2: (lambda: cv2.Canny(sl8, 40.0, 100.0))),
    ]))
    # histogram: int16 CT in HU (the integer fast path), then float64 (numpy's own arithmetic, no fast path)
    ct4 = np.ascontiguousarray(np.tile(vol, (4, 1, 1)))
    cases.append(("histogram", "histogram, 128x128x128 int16 CT (HU), 1024 bins over [-1024, 3072)", [
        *mf_impls(lambda: mf.histogram(ct4, 1024, (-1024, 3072))),
        _Impl("reference (NumPy)", lambda: (lambda: ref.histogram(ct4, 1024, (-1024, 3072))), None),
        _Impl("numpy.histogram", lambda: (lambda: np.histogram(ct4, 1024, (-1024, 3072))), None),
    ]))
    x = rng.normal(0, 1, 4_000_000).astype(np.float64)
    cases.append(("histogram", "histogram, 4M float64, 256 bins", [
        *mf_impls(lambda: mf.histogram(x, 256, (-4.0, 4.0))),
        _Impl("reference (NumPy)", lambda: (lambda: ref.histogram(x, 256, (-4.0, 4.0))), None),
        _Impl("numpy.histogram", lambda: (lambda: np.histogram(x, 256, (-4.0, 4.0))), None),
    ]))
    # glcm
    q = (sl8 // 16).astype(np.uint8)
    angles = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    cases.append(("glcm", "glcm, 512x512 uint8, 16 levels, distance 1, 4 angles", [
        *mf_impls(lambda: mf.glcm(q, [1], angles, 16)),
        _Impl("reference (NumPy)", lambda: (lambda: ref.glcm(q, [1], angles, 16)), None),
        _Impl("skimage graycomatrix", lambda: (lambda: importlib.import_module("skimage.feature").graycomatrix(
            q, [1], angles, levels=16)), None, "skimage"),
    ]))
    # gaussian / convolve
    v32 = vol.astype(np.float32)
    cases.append(("convolve", "gaussian, 32x128x128 float32 CT volume, sigma 2", [
        *mf_impls(lambda: mf.gaussian(v32, 2.0)),
        _Impl("reference (NumPy)", lambda: (lambda: ref.gaussian(v32, 2.0)), None),
        _Impl("scipy.ndimage.gaussian_filter", lambda: (lambda: importlib.import_module("scipy.ndimage").gaussian_filter(
            v32, 2.0, mode="mirror", truncate=4.0)), None, "scipy"),
    ]))
    cases.append(("convolve", "gaussian 2D, 512x512 float32, sigma 2", [
        *mf_impls(lambda: mf.gaussian(slf, 2.0)),
        *cv2_impls(lambda cv2: (lambda: cv2.GaussianBlur(slf, (17, 17), 2.0, borderType=cv2.BORDER_REFLECT_101))),
    ]))
    # median
    cases.append(("median", "median 5x5, 512x512 uint8", [
        *mf_impls(lambda: mf.median(sl8, 5)),
        _Impl("reference (NumPy)", lambda: (lambda: ref.median(sl8, 5)), None),
        *cv2_impls(lambda cv2: (lambda: cv2.medianBlur(sl8, 5))),
        _Impl("scipy.ndimage.median_filter", lambda: (lambda: importlib.import_module("scipy.ndimage").median_filter(
            sl8, 5, mode="mirror")), None, "scipy"),
    ]))
    # conv2d
    xc = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)
    wc = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)

    def torch_conv(threads: int) -> Fn:
        torch = importlib.import_module("torch")
        tx, tw = torch.from_numpy(xc), torch.from_numpy(wc)
        return lambda: torch.nn.functional.conv2d(tx, tw, padding=1)

    cases.append(("conv2d", "conv2d, x 4x16x64x64, w 32x16x3x3, padding 1, float32", [
        *mf_impls(lambda: mf.conv2d(xc, wc, padding=1)),
        _Impl("reference (NumPy)", lambda: (lambda: ref.conv2d(xc, wc, padding=1)), None),
        _Impl("torch 1 thread", lambda: torch_conv(1), 1, "torch"),
        *([_Impl(f"torch {n} threads", lambda: torch_conv(n), n, "torch")] if n > 1 else []),
    ]))
    # attention
    qa = rng.standard_normal((8, 512, 64)).astype(np.float32)
    ka = rng.standard_normal((8, 512, 64)).astype(np.float32)
    va = rng.standard_normal((8, 512, 64)).astype(np.float32)

    def torch_attn() -> Fn:
        torch = importlib.import_module("torch")
        tq, tk, tv = (torch.from_numpy(a) for a in (qa, ka, va))
        return lambda: torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)

    cases.append(("attention", "attention, 8 heads x 512 tokens x 64, float32", [
        *mf_impls(lambda: mf.attention(qa, ka, va)),
        _Impl("reference (NumPy)", lambda: (lambda: ref.attention(qa, ka, va)), None),
        _Impl("torch sdpa 1 thread", torch_attn, 1, "torch"),
        *([_Impl(f"torch sdpa {n} threads", torch_attn, n, "torch")] if n > 1 else []),
    ]))
    # label
    binary = np.ascontiguousarray(vol > -400)
    cases.append(("label", "label (connected components), 32x128x128 bool, 6-connectivity", [
        *mf_impls(lambda: mf.label(binary)),
        _Impl("reference (NumPy)", lambda: (lambda: ref.label(binary)), None),
        _Impl("scipy.ndimage.label", lambda: (lambda: importlib.import_module("scipy.ndimage").label(binary)), None, "scipy"),
    ]))
    return cases


def run_quick(print_table: Callable[..., None]) -> None:
    import time

    t_start = time.perf_counter()
    print(
        f"medfuse {mf.__version__} quick benchmark: median wall time per call, SIMD "
        f"{mf.build_info().get('simd_active', '?')}. 'vs medfuse' = time / medfuse's time at the same "
        "thread count (> 1x: medfuse is faster); single-threaded libraries are compared with medfuse "
        "at 1 thread. Full suites: medfuse bench\n"
    )
    for family, desc, impls in _cases():
        print(f"{family}: {desc}")
        timings: list[tuple[_Impl, float]] = []
        missing: list[str] = []
        for impl in impls:
            if impl.module is not None and _opt(impl.module) is None:
                missing.append(impl.label)
                continue
            fn = impl.make()
            torch = sys.modules.get("torch")
            saved = torch.get_num_threads() if torch is not None else None
            try:
                if torch is not None:
                    torch.set_num_threads(impl.threads or 1)
                with pinned_threads(impl.threads or 1):
                    timings.append((impl, time_call(fn, budget=0.2, max_runs=50)))
            finally:
                if torch is not None and saved is not None:
                    torch.set_num_threads(saved)
        base = {impl.threads: t for impl, t in timings if impl.label.startswith("medfuse")}
        rows = []
        for impl, t in timings:
            k = impl.threads or 1
            vs = "" if impl.label.startswith("medfuse") and k == 1 else (
                f"{t / base[k]:.2f}x" if k in base else "")
            if impl.label.startswith("medfuse") and k != 1 and 1 in base:
                vs = f"speed-up {base[1] / t:.2f}x over 1 thread"
            rows.append((impl.label, f"{t * 1e3:9.2f} ms", vs))
        print_table(("implementation", "median", "vs medfuse"), rows)
        if missing:
            print(f"(not installed: {', '.join(missing)})")
        print()
    print(f"total {time.perf_counter() - t_start:.1f} s")
