"""Median and bilateral filters: medfuse vs its NumPy twin, OpenCV and SciPy.

One group per kernel and input, parametrized over implementations. Inputs
(built once, outside the timed calls) come from medfuse.data.phantoms: a chest
X-ray (uint8, 512x512 and 2048x2048, resampled from the phantom's projection
with detector noise added), a CT slice (HU as float32 / int16) and a small CT
volume. Every implementation is checked once against the expected result
outside the timing: exact equality for the median (cv2 with border
"replicate", scipy with mode "mirror"), within 1 gray level / 1e-4 of the
range for cv2.bilateralFilter, bit-identical for the NumPy twins.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import medfuse
import medfuse.reference as ref
from _inputs import xray_u8  # benchmarks/, on sys.path by conftest.py
from medfuse.data import phantoms as _phantoms


@functools.cache
def ct_slice(side: int) -> np.ndarray:
    return _phantoms.ct_phantom((1, side, side), seed=0).volume[0]  # int16 HU


@functools.cache
def ct_volume() -> np.ndarray:
    return _phantoms.ct_phantom((32, 128, 128), seed=0).volume  # int16 HU


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    cv2 = sys.modules.get("cv2")
    saved = medfuse.get_num_threads()
    saved_cv2 = cv2.getNumThreads() if cv2 is not None else None
    medfuse.set_num_threads(n)
    if cv2 is not None:
        cv2.setNumThreads(n)
    try:
        yield
    finally:
        medfuse.set_num_threads(saved)
        if cv2 is not None and saved_cv2 is not None:
            cv2.setNumThreads(saved_cv2)


def _run(benchmark: BenchmarkFixture, impl: str, n: int | None, fn: Callable[[], Any],
         check: Callable[[Any], None], checked_against: str | None, family: str, description: str) -> None:
    with threads(n):
        check(fn())
        benchmark(fn)
    benchmark.extra_info.update(implementation=impl, family=family, threads=n, input=description,
                                checked_against=checked_against)


def _exact(want: np.ndarray) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        np.testing.assert_array_equal(np.asarray(got), want)
    return check


# ---- median -------------------------------------------------------------

MEDIAN_CASES = {
    # group: (input builder, size, description, with cv2, with twin)
    "median-u8-xray-512-k3": (lambda: xray_u8(512), 3, "chest X-ray uint8 512x512, 3x3", True, True),
    "median-u8-xray-512-k5": (lambda: xray_u8(512), 5, "chest X-ray uint8 512x512, 5x5", True, True),
    "median-u8-xray-2048-k5": (lambda: xray_u8(2048), 5, "chest X-ray uint8 2048x2048, 5x5", True, False),
    "median-u8-xray-2048-k3": (lambda: xray_u8(2048), 3, "chest X-ray uint8 2048x2048, 3x3", True, False),
    "median-u8-xray-2048-k15": (lambda: xray_u8(2048), 15, "chest X-ray uint8 2048x2048, 15x15", True, False),
    "median-f32-ct-512-k5": (lambda: ct_slice(512).astype(np.float32), 5, "CT slice float32 HU 512x512, 5x5", True, True),
    "median-i16-ct-512-k9": (lambda: ct_slice(512), 9, "CT slice int16 HU 512x512, 9x9", False, False),
    "median-i16-ctvol-32x128x128-k3": (ct_volume, 3, "CT volume int16 HU 32x128x128, 3x3x3", False, True),
}

MEDIAN_IMPLS = ["medfuse-1", "medfuse-2", "cv2-1", "cv2-2", "scipy", "reference"]
# scipy.ndimage.median_filter takes 3-60 s per call on 2048x2048: left out there.
NO_SCIPY = {"median-u8-xray-2048-k5", "median-u8-xray-2048-k3", "median-u8-xray-2048-k15"}


def _median_params() -> list[Any]:
    out = []
    for group, (_, _, _, with_cv2, with_twin) in MEDIAN_CASES.items():
        for impl in MEDIAN_IMPLS:
            if impl.startswith("cv2") and not with_cv2:
                continue
            if impl == "reference" and not with_twin:
                continue
            if impl == "scipy" and group in NO_SCIPY:
                continue
            out.append(pytest.param(group, impl, id=f"{group}-{impl}",
                                    marks=pytest.mark.benchmark(group=group)))
    return out


@functools.cache
def _median_expected(group: str) -> tuple[np.ndarray, str, str]:
    """(expected result, border medfuse runs with, what it is checked against).

    Groups with cv2 run medfuse with border="replicate" (cv2.medianBlur's
    border) and check against cv2; the others use scipy with mode "mirror".
    """
    build, k, _, with_cv2, _ = MEDIAN_CASES[group]
    if with_cv2:
        cv2 = pytest.importorskip("cv2")
        return cv2.medianBlur(build(), k), "replicate", "cv2.medianBlur"
    from scipy import ndimage

    return ndimage.median_filter(build(), size=k, mode="mirror"), "reflect101", "scipy.ndimage.median_filter(mode='mirror')"


@pytest.mark.parametrize("group,impl", _median_params())
def test_median(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    build, k, desc, _, _ = MEDIAN_CASES[group]
    x = build()
    if impl.startswith("medfuse"):
        n = int(impl.split("-")[1])
        want, border, against = _median_expected(group)
        _run(benchmark, f"medfuse.median ({n} thread{'s' if n > 1 else ''})", n,
             lambda: medfuse.median(x, k, border=border), _exact(want), against, "medfuse", desc)
    elif impl.startswith("cv2"):
        cv2 = pytest.importorskip("cv2")
        n = int(impl.split("-")[1])
        want = medfuse.median(x, k, border="replicate")
        _run(benchmark, f"cv2.medianBlur ({n} thread{'s' if n > 1 else ''})", n, lambda: cv2.medianBlur(x, k),
             _exact(want), "medfuse.median(border='replicate')", "cv2", desc)
    elif impl == "scipy":
        from scipy import ndimage

        _run(benchmark, "scipy.ndimage.median_filter (mode='nearest')", None,
             lambda: ndimage.median_filter(x, size=k, mode="nearest"), _exact(medfuse.median(x, k, border="replicate")),
             "medfuse.median(border='replicate')", "scipy", desc)
    else:
        _run(benchmark, "medfuse.reference.median (NumPy)", None, lambda: ref.median(x, k, border="replicate"),
             _exact(medfuse.median(x, k, border="replicate")), "medfuse.median", "reference", desc)


# ---- bilateral ----------------------------------------------------------

BILATERAL_CASES = {
    "bilateral-u8-xray-512-d9": (lambda: xray_u8(512), (9, 75.0, 75.0), "chest X-ray uint8 512x512, d=9, sigmas 75/75"),
    "bilateral-u8-xray-2048-d5": (lambda: xray_u8(2048), (5, 30.0, 3.0), "chest X-ray uint8 2048x2048, d=5, sigmas 30/3"),
    "bilateral-f32-ct-512-d9": (lambda: ct_slice(512).astype(np.float32), (9, 150.0, 3.0), "CT slice float32 HU 512x512, d=9, sigmas 150 HU/3"),
}
BILATERAL_IMPLS = ["medfuse-1", "medfuse-2", "cv2-1", "cv2-2", "reference"]


def _bilateral_params() -> list[Any]:
    return [pytest.param(g, i, id=f"{g}-{i}", marks=pytest.mark.benchmark(group=g))
            for g in BILATERAL_CASES for i in BILATERAL_IMPLS if not (i == "reference" and "2048" in g)]


def _close_to(want: np.ndarray) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        got = np.asarray(got)
        if want.dtype == np.uint8:
            assert np.abs(got.astype(int) - want).max() <= 1
        else:
            assert np.abs(got - want).max() <= 1e-4 * max(float(np.ptp(want)), float(np.abs(want).max()), 1e-30)
    return check


@pytest.mark.parametrize("group,impl", _bilateral_params())
def test_bilateral(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    cv2 = pytest.importorskip("cv2")
    build, (d, sc, ss), desc = BILATERAL_CASES[group]
    x = build()
    if impl.startswith("medfuse"):
        n = int(impl.split("-")[1])
        _run(benchmark, f"medfuse.bilateral ({n} thread{'s' if n > 1 else ''})", n,
             lambda: medfuse.bilateral(x, d, sc, ss), _close_to(cv2.bilateralFilter(x, d, sc, ss)),
             "cv2.bilateralFilter", "medfuse", desc)
    elif impl.startswith("cv2"):
        n = int(impl.split("-")[1])
        _run(benchmark, f"cv2.bilateralFilter ({n} thread{'s' if n > 1 else ''})", n,
             lambda: cv2.bilateralFilter(x, d, sc, ss), _close_to(medfuse.bilateral(x, d, sc, ss)),
             "medfuse.bilateral", "cv2", desc)
    else:
        _run(benchmark, "medfuse.reference.bilateral (NumPy)", None, lambda: ref.bilateral(x, d, sc, ss),
             _exact(medfuse.bilateral(x, d, sc, ss)), "medfuse.bilateral", "reference", desc)
