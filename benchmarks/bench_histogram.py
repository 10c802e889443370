"""Histograms and CLAHE: medfuse against NumPy, OpenCV, fast-histogram, boost-histogram.

Inputs (built once, outside the timed calls) come from ``medfuse.data.phantoms``:
a synthetic chest X-ray (projected from the phantom CT, 12 bits, resized to
512x512 and 2048x2048) and the 128x512x512 int16 CT volume. Every
implementation's counts are compared once with numpy.histogram (or cv2 for
CLAHE) outside the timing; libraries with half-open last bins
(fast-histogram, boost-histogram, cv2.calcHist, bincount) agree because the
data never reach the top edge.

With ``--benchmark-disable`` (CI) each case runs once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import medfuse
import medfuse.reference as ref
from medfuse.data import phantoms as _phantoms


@functools.cache
def _ct() -> np.ndarray:
    return _phantoms.ct_phantom((128, 512, 512), seed=0).volume


@functools.cache
def _xray(size: int) -> np.ndarray:
    import cv2

    ph = _phantoms.ct_phantom((64, 256, 256), seed=1)
    x = _phantoms.xray_from_ct(ph.volume, ph.spacing, bits=12).astype(np.float32)
    return np.ascontiguousarray(cv2.resize(x, (size, size), interpolation=cv2.INTER_LINEAR).round().astype(np.uint16))


def _input(group: str) -> tuple[np.ndarray, int, tuple[int, int], str]:
    if group == "hist-u8-xray-512":
        return (_xray(512) >> 4).astype(np.uint8), 256, (0, 256), "512x512 uint8 chest X-ray (phantom), 256 bins over [0, 256)"
    if group == "hist-u16-xray-2048":
        return _xray(2048), 4096, (0, 4096), "2048x2048 uint16 (12-bit) chest X-ray (phantom), 4096 bins over [0, 4096)"
    if group == "hist-i16-ct-128x512x512":
        return _ct(), 1024, (-1024, 3072), "128x512x512 int16 CT volume (phantom, HU), 1024 bins over [-1024, 3072)"
    raise KeyError(group)


def _hist_impl(name: str, x: np.ndarray, bins: int, rng: tuple[int, int]) -> tuple[Callable[[], Any], Callable[[Any], np.ndarray], str, int | None]:
    """(call, counts-of-result, family, threads)."""
    lo, hi = rng
    if name.startswith("medfuse"):
        n = int(name.split("-")[1][:-1])
        return (lambda: medfuse.histogram(x, bins, rng)), (lambda r: r[0]), "medfuse", n
    if name == "reference":
        return (lambda: ref.histogram(x, bins, rng)), (lambda r: r[0]), "reference", None
    if name == "numpy-histogram":
        return (lambda: np.histogram(x, bins, rng)), (lambda r: r[0]), "numpy", None
    if name == "numpy-bincount":
        width = (hi - lo) // bins
        shift = width.bit_length() - 1
        if lo == 0 and shift == 0:
            return (lambda: np.bincount(x.ravel(), minlength=bins)), (lambda r: r[:bins]), "numpy", None
        return (lambda: np.bincount(((x.astype(np.int32) - lo) >> shift).ravel(), minlength=bins)), (lambda r: r[:bins]), "numpy", None
    if name.startswith("cv2"):
        import cv2

        n = int(name.split("-")[1][:-1])
        return (lambda: cv2.calcHist([x], [0], None, [bins], [lo, hi])), (lambda r: r.ravel().astype(np.int64)), "cv2", n
    if name == "fast_histogram":
        from fast_histogram import histogram1d

        return (lambda: histogram1d(x, bins, (lo, hi))), (lambda r: r.astype(np.int64)), "fast_histogram", None
    if name == "boost_histogram":
        import boost_histogram as bh

        h = bh.Histogram(bh.axis.Regular(bins, lo, hi), storage=bh.storage.Int64())
        flat = x.ravel()

        def run() -> Any:
            h.reset()
            h.fill(flat)
            return h

        return run, (lambda r: r.view().astype(np.int64)), "boost_histogram", None
    raise KeyError(name)


_OPTIONAL = {"cv2": "cv2", "fast_histogram": "fast_histogram", "boost_histogram": "boost_histogram"}
_HIST_IMPLS = ["medfuse-1t", "medfuse-2t", "numpy-histogram", "numpy-bincount", "cv2-1t", "cv2-2t",
               "fast_histogram", "boost_histogram", "reference"]


def _with_threads(n: int | None, family: str) -> None:
    if n is None:
        return
    if family == "medfuse":
        medfuse.set_num_threads(n)
    elif family == "cv2":
        import cv2

        cv2.setNumThreads(n)


def _hist_case(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    x, bins, rng, desc = _input(group)
    if impl.startswith("cv2") and x.dtype == np.int16:
        pytest.skip("cv2.calcHist has no int16 input")
    module = _OPTIONAL.get(impl.split("-")[0])
    if module:
        pytest.importorskip(module)
    call, counts, family, threads = _hist_impl(impl, x, bins, rng)
    _with_threads(threads, family)
    expected = np.histogram(x, bins, rng)[0]
    got = counts(call())
    assert np.array_equal(got, expected), f"{impl} differs from numpy.histogram"
    if x.size > 10**7 or (impl in ("numpy-histogram", "reference", "boost_histogram") and x.size > 10**6):
        benchmark.pedantic(call, rounds=3, iterations=1)
    else:
        benchmark(call)
    benchmark.extra_info.update(implementation=impl, family=family, threads=threads, input=desc,
                                checked_against="numpy.histogram")


@pytest.mark.benchmark(group="hist-u8-xray-512")
@pytest.mark.parametrize("impl", _HIST_IMPLS)
def test_hist_u8_xray_512(benchmark: BenchmarkFixture, impl: str) -> None:
    _hist_case(benchmark, "hist-u8-xray-512", impl)


@pytest.mark.benchmark(group="hist-u16-xray-2048")
@pytest.mark.parametrize("impl", _HIST_IMPLS)
def test_hist_u16_xray_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _hist_case(benchmark, "hist-u16-xray-2048", impl)


@pytest.mark.benchmark(group="hist-i16-ct-128x512x512")
@pytest.mark.parametrize("impl", _HIST_IMPLS)
def test_hist_i16_ct(benchmark: BenchmarkFixture, impl: str) -> None:
    _hist_case(benchmark, "hist-i16-ct-128x512x512", impl)


def _clahe_case(benchmark: BenchmarkFixture, image: np.ndarray, desc: str, impl: str) -> None:
    cv2 = pytest.importorskip("cv2")
    expected = cv2.createCLAHE(40.0, (8, 8)).apply(image)
    if impl.startswith("medfuse"):
        n = int(impl.split("-")[1][:-1])
        medfuse.set_num_threads(n)
        call, family, threads = (lambda: medfuse.clahe(image, 40.0, (8, 8))), "medfuse", n
    elif impl.startswith("cv2"):
        n = int(impl.split("-")[1][:-1])
        cv2.setNumThreads(n)
        clahe = cv2.createCLAHE(40.0, (8, 8))
        call, family, threads = (lambda: clahe.apply(image)), "cv2", n
    else:
        call, family, threads = (lambda: ref.clahe(image, 40.0, (8, 8))), "reference", None
    assert np.array_equal(call(), expected), f"{impl} differs from cv2 CLAHE"
    if impl == "reference":
        benchmark.pedantic(call, rounds=3, iterations=1)
    else:
        benchmark(call)
    benchmark.extra_info.update(implementation=impl, family=family, threads=threads, input=desc,
                                checked_against="cv2.createCLAHE(40, (8, 8)).apply")


_CLAHE_IMPLS = ["medfuse-1t", "medfuse-2t", "cv2-1t", "cv2-2t", "reference"]


@pytest.mark.benchmark(group="clahe-u8-xray-512")
@pytest.mark.parametrize("impl", _CLAHE_IMPLS)
def test_clahe_u8_512(benchmark: BenchmarkFixture, impl: str) -> None:
    _clahe_case(benchmark, (_xray(512) >> 4).astype(np.uint8), "512x512 uint8 chest X-ray (phantom), clip 40, 8x8 tiles", impl)


@pytest.mark.benchmark(group="clahe-u8-xray-2048")
@pytest.mark.parametrize("impl", _CLAHE_IMPLS)
def test_clahe_u8_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _clahe_case(benchmark, (_xray(2048) >> 4).astype(np.uint8), "2048x2048 uint8 chest X-ray (phantom), clip 40, 8x8 tiles", impl)


@pytest.mark.benchmark(group="clahe-u16-xray-2048")
@pytest.mark.parametrize("impl", _CLAHE_IMPLS)
def test_clahe_u16_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _clahe_case(benchmark, _xray(2048), "2048x2048 uint16 (12-bit) chest X-ray (phantom), clip 40, 8x8 tiles", impl)


@pytest.mark.benchmark(group="first-order-i16-ct-32x512x512")
@pytest.mark.parametrize("impl", ["medfuse-1t", "medfuse-2t", "reference"])
def test_first_order_ct(benchmark: BenchmarkFixture, impl: str) -> None:
    vol = np.ascontiguousarray(_ct()[48:80])
    mask = vol > -500
    if impl == "reference":
        call, family, threads = (lambda: ref.first_order(vol, mask)), "reference", None
    else:
        threads = int(impl.split("-")[1][:-1])
        medfuse.set_num_threads(threads)
        call, family = (lambda: medfuse.first_order(vol, mask)), "medfuse"
    want = ref.first_order(vol, mask)
    got = call()
    for k in want:
        assert np.isclose(got[k], want[k], rtol=1e-9), k
    benchmark.pedantic(call, rounds=3, iterations=1)
    benchmark.extra_info.update(implementation=impl, family=family, threads=threads,
                                input="32x512x512 int16 CT block (phantom), mask HU > -500",
                                checked_against="medfuse.reference.first_order (rtol 1e-9)")
