"""Convolution and filtering: medfuse against its NumPy twin, OpenCV, SciPy and SimpleITK.

Groups (one per kernel and size), parametrized over implementations:

* gaussian-f32-2048: sigma 2 on a 2048x2048 float32 CT slice — medfuse.gaussian,
  cv2.GaussianBlur (ksize 17 = scipy's radius 8, reflect101), cv2.sepFilter2D
  with medfuse's taps, scipy.ndimage.gaussian_filter (mode mirror, float32 in/out).
* convolve5-f32-2048 / convolve5-u8-2048: a 5x5 kernel — medfuse.convolve,
  cv2.filter2D (CV_32F output), scipy.ndimage.correlate (f32 only).
* gaussian3d-f32-128x512x512: sigma 2 on a CT volume (float32) — medfuse.gaussian,
  scipy.ndimage.gaussian_filter, SimpleITK DiscreteGaussian (variance 4, kernel
  width 17, no image spacing: the same sampled Gaussian, ITK's own
  normalisation and zero-flux border — comparable, not identical) and
  SmoothingRecursiveGaussian (Deriche IIR approximation; not identical).
* convolve3d-f32-64x128x128: a 5x5x5 kernel — medfuse.convolve, scipy.ndimage.correlate.
* log-bank-f32-512: LoG at sigmas 1, 2, 4 — medfuse.filter_bank, scipy.ndimage.gaussian_laplace.

medfuse and cv2 / SimpleITK run at 1 and 2 threads (matched); SciPy is single-threaded.
Inputs are built once (cached) outside the timed calls; every implementation
that promises the same result is compared once, outside the timing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import medfuse
import medfuse.reference as ref
from medfuse.data import phantoms as _phantoms
from medfuse.kernels._convolve_plan import gaussian_taps


@functools.cache
def _slice_2048() -> np.ndarray:
    vol, _ = _phantoms.ct_volume((2, 2048, 2048), seed=1)
    return np.ascontiguousarray(vol[1], dtype=np.float32)


@functools.cache
def _slice_2048_u8() -> np.ndarray:
    return _phantoms.window_u8(_slice_2048())


@functools.cache
def _volume(shape: tuple[int, int, int]) -> np.ndarray:
    vol, _ = _phantoms.ct_volume(shape, seed=2)
    return vol.astype(np.float32)


@functools.cache
def _slice_512() -> np.ndarray:
    return np.ascontiguousarray(_volume((64, 512, 512))[32])


KERNEL5 = np.random.default_rng(5).standard_normal((5, 5))
KERNEL555 = np.random.default_rng(6).standard_normal((5, 5, 5))


@contextlib.contextmanager
def _threads(family: str, n: int | None) -> Iterator[None]:
    saved = medfuse.get_num_threads()
    medfuse.set_num_threads(n or 1)
    if family == "cv2":
        import cv2

        cv2.setNumThreads(n or 1)
    sitk_saved = None
    if family == "sitk":
        import SimpleITK as sitk

        sitk_saved = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n or 1)
    try:
        yield
    finally:
        medfuse.set_num_threads(saved)
        if sitk_saved is not None:
            import SimpleITK as sitk

            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(sitk_saved)


def _check(got: Any, want: np.ndarray, scale: float, rtol: float = 1e-5) -> None:
    got = np.asarray(got, dtype=np.float64)
    err = np.abs(got - want).max()
    assert err <= rtol * scale, f"max error {err} > {rtol} * {scale}"


# ---- one case = input + implementations ------------------------------------------------
# Each implementation: id -> (label, family, threads, make_call(), checked_against or None)
def _gaussian2d(impl: str):
    x = _slice_2048()
    taps = gaussian_taps(2.0, 4.0)
    t32 = taps.astype(np.float32)
    desc = "CT slice 2048x2048 float32, sigma 2 (17 taps), reflect101"
    if impl.startswith("medfuse"):
        return desc, "medfuse.gaussian", "medfuse", lambda: medfuse.gaussian(x, 2.0), None
    if impl == "reference":
        return desc, "reference.gaussian", "reference", lambda: ref.gaussian(x, 2.0), "medfuse"
    if impl.startswith("cv2-gaussianblur"):
        import cv2

        return desc, "cv2.GaussianBlur", "cv2", lambda: cv2.GaussianBlur(
            x, (17, 17), 2.0, borderType=cv2.BORDER_REFLECT_101), "medfuse"
    if impl.startswith("cv2-sepfilter2d"):
        import cv2

        return desc, "cv2.sepFilter2D", "cv2", lambda: cv2.sepFilter2D(
            x, -1, t32, t32, borderType=cv2.BORDER_REFLECT_101), "medfuse"
    from scipy import ndimage

    return desc, "scipy.ndimage.gaussian_filter", "scipy", lambda: ndimage.gaussian_filter(
        x, 2.0, mode="mirror"), "medfuse"


def _convolve2d(impl: str, u8: bool):
    x = _slice_2048_u8() if u8 else _slice_2048()
    desc = f"CT slice 2048x2048 {'uint8 (lung window)' if u8 else 'float32'}, 5x5 kernel -> float32, reflect101"
    if impl.startswith("medfuse"):
        return desc, "medfuse.convolve", "medfuse", lambda: medfuse.convolve(x, KERNEL5), None
    if impl.startswith("cv2"):
        import cv2

        k = KERNEL5.astype(np.float32)
        return desc, "cv2.filter2D", "cv2", lambda: cv2.filter2D(x, cv2.CV_32F, k), "medfuse"
    from scipy import ndimage

    xs = x.astype(np.float32)
    return desc, "scipy.ndimage.correlate", "scipy", lambda: ndimage.correlate(xs, KERNEL5, mode="mirror"), "medfuse"


def _gaussian3d(impl: str):
    v = _volume((128, 512, 512))
    desc = "CT volume 128x512x512 float32 (HU), sigma 2 voxels, truncate 4"
    if impl.startswith("medfuse"):
        return desc, "medfuse.gaussian", "medfuse", lambda: medfuse.gaussian(v, 2.0), None
    if impl == "scipy":
        from scipy import ndimage

        return desc, "scipy.ndimage.gaussian_filter", "scipy", lambda: ndimage.gaussian_filter(
            v, 2.0, mode="mirror"), "medfuse"
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(v)
    if impl.startswith("sitk-discrete"):
        def run() -> np.ndarray:
            out = sitk.DiscreteGaussian(img, variance=4.0, maximumKernelWidth=17, maximumError=1e-6,
                                        useImageSpacing=False)
            return sitk.GetArrayViewFromImage(out)

        return desc, "sitk.DiscreteGaussian (not identical)", "sitk", run, None

    def run_rec() -> np.ndarray:
        return sitk.GetArrayViewFromImage(sitk.SmoothingRecursiveGaussian(img, 2.0))

    return desc, "sitk.SmoothingRecursiveGaussian (IIR, not identical)", "sitk", run_rec, None


def _convolve3d(impl: str):
    v = _volume((64, 128, 128))
    desc = "CT volume 64x128x128 float32, 5x5x5 kernel, reflect101"
    if impl.startswith("medfuse"):
        return desc, "medfuse.convolve", "medfuse", lambda: medfuse.convolve(v, KERNEL555), None
    from scipy import ndimage

    return desc, "scipy.ndimage.correlate", "scipy", lambda: ndimage.correlate(v, KERNEL555, mode="mirror"), "medfuse"


def _log_bank(impl: str):
    x = _slice_512()
    desc = "CT slice 512x512 float32, LoG at sigma 1, 2, 4 (not scale-normalised)"
    if impl.startswith("medfuse"):
        return desc, "medfuse.filter_bank(kind='log')", "medfuse", lambda: medfuse.filter_bank(
            x, kind="log", sigmas=[1, 2, 4], normalize=False)[0], None
    from scipy import ndimage

    return desc, "scipy.ndimage.gaussian_laplace x3", "scipy", lambda: np.stack(
        [ndimage.gaussian_laplace(x, s, mode="mirror") for s in (1, 2, 4)]), "medfuse"


def _unsharp2d(impl: str):
    x = _slice_2048()
    desc = "CT slice 2048x2048 float32, unsharp mask sigma 2 (17 taps), amount 1, threshold 0, reflect101"
    if impl.startswith("medfuse"):
        return desc, "medfuse.unsharp_mask", "medfuse", lambda: medfuse.unsharp_mask(x, 2.0, 1.0), None
    if impl.startswith("cv2"):
        import cv2

        return desc, "cv2.GaussianBlur + cv2.addWeighted", "cv2", lambda: cv2.addWeighted(
            x, 2.0, cv2.GaussianBlur(x, (17, 17), 2.0, borderType=cv2.BORDER_REFLECT_101), -1.0, 0.0), "medfuse"
    from scipy import ndimage

    return desc, "scipy.ndimage.gaussian_filter + NumPy", "scipy", lambda: x + 1.0 * (
        x - ndimage.gaussian_filter(x, 2.0, mode="mirror")), "medfuse"


def _threads_of(impl: str) -> int | None:
    if impl.endswith("-1t"):
        return 1
    if impl.endswith("-2t"):
        return 2
    return None


def _run(benchmark: BenchmarkFixture, group: str, impl: str, build: Callable[[str], Any], *,
         large: bool = False, rtol: float = 1e-5) -> None:
    n = _threads_of(impl)
    try:
        desc, label, family, call, checked = build(impl)
    except ImportError as err:
        pytest.skip(str(err))
    with _threads(family, n):
        if checked is not None:
            with _threads("medfuse", 1):
                _, _, _, mcall, _ = build("medfuse-1t")
                want = np.asarray(mcall(), dtype=np.float64)
            _check(call(), want, float(np.abs(want).max()), rtol)
        if large:
            # medfuse: more rounds (a 3-round median of a 2-thread run is one noisy call)
            benchmark.pedantic(call, rounds=7 if family == "medfuse" else 3, iterations=1,
                               warmup_rounds=1 if family == "medfuse" else 0)
        else:
            benchmark(call)
    benchmark.extra_info.update(implementation=label, family=family, threads=n, input=desc,
                                checked_against=checked)


G2 = ["medfuse-1t", "medfuse-2t", "cv2-gaussianblur-1t", "cv2-gaussianblur-2t", "cv2-sepfilter2d-1t",
      "cv2-sepfilter2d-2t", "scipy", "reference"]


@pytest.mark.benchmark(group="gaussian-f32-2048")
@pytest.mark.parametrize("impl", G2)
def test_gaussian_f32_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "gaussian-f32-2048", impl, _gaussian2d, large=impl in ("scipy", "reference"))


@pytest.mark.benchmark(group="unsharp-f32-2048")
@pytest.mark.parametrize("impl", ["medfuse-1t", "medfuse-2t", "cv2-1t", "cv2-2t", "scipy"])
def test_unsharp_f32_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "unsharp-f32-2048", impl, _unsharp2d, large=impl == "scipy")


C2 = ["medfuse-1t", "medfuse-2t", "cv2-1t", "cv2-2t", "scipy"]


@pytest.mark.benchmark(group="convolve5-f32-2048")
@pytest.mark.parametrize("impl", C2)
def test_convolve5_f32_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "convolve5-f32-2048", impl, lambda i: _convolve2d(i, False), large=impl == "scipy")


@pytest.mark.benchmark(group="convolve5-u8-2048")
@pytest.mark.parametrize("impl", ["medfuse-1t", "medfuse-2t", "cv2-1t", "cv2-2t"])
def test_convolve5_u8_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "convolve5-u8-2048", impl, lambda i: _convolve2d(i, True))


@pytest.mark.benchmark(group="gaussian3d-f32-128x512x512")
# DiscreteGaussian takes 10-20 s per call here: one thread count only, so that
# the file stays under a minute with --benchmark-disable.
@pytest.mark.parametrize("impl", ["medfuse-1t", "medfuse-2t", "scipy", "sitk-discrete-1t",
                                  "sitk-recursive-1t", "sitk-recursive-2t"])
def test_gaussian3d_f32(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "gaussian3d-f32-128x512x512", impl, _gaussian3d, large=True)


@pytest.mark.benchmark(group="convolve3d-f32-64x128x128")
@pytest.mark.parametrize("impl", ["medfuse-1t", "medfuse-2t", "scipy"])
def test_convolve3d_f32(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "convolve3d-f32-64x128x128", impl, _convolve3d, large=impl == "scipy")


@pytest.mark.benchmark(group="log-bank-f32-512")
@pytest.mark.parametrize("impl", ["medfuse-1t", "medfuse-2t", "scipy"])
def test_log_bank_f32_512(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "log-bank-f32-512", impl, _log_bank, rtol=1e-4)
