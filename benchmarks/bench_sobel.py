"""Sobel gradients: medfuse.sobel against OpenCV, SciPy and its NumPy twin.

One group per input, parametrized over implementations; every implementation
returns the derivative along each axis (2D: d/dy and d/dx, two cv2.Sobel
calls; 3D: three scipy.ndimage.sobel calls). Inputs come from
medfuse.data.phantoms (a chest X-ray as uint8, a CT slice as float32 HU, a CT
volume as int16 HU) and are built outside the timed calls. Each
implementation is checked once against medfuse's result outside the timing:
exact for integer input (cv2 with a float32 result, which holds these integer
sums exactly; scipy with an int32 result), within 1e-6 of the gradient range
for float32 input (cv2 and medfuse both sum in float32, in different orders;
scipy sums in float64).
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
def ct_volume(shape: tuple[int, int, int]) -> np.ndarray:
    return _phantoms.ct_phantom(shape, seed=0).volume  # int16 HU


CASES: dict[str, tuple[Callable[[], np.ndarray], int, str]] = {
    "sobel-u8-xray-512-k3": (lambda: xray_u8(512), 3, "chest X-ray uint8 512x512, aperture 3"),
    "sobel-u8-xray-2048-k3": (lambda: xray_u8(2048), 3, "chest X-ray uint8 2048x2048, aperture 3"),
    "sobel-f32-ct-512-k3": (lambda: ct_volume((1, 512, 512))[0].astype(np.float32), 3,
                            "CT slice float32 HU 512x512, aperture 3"),
    "sobel-u8-xray-2048-k5": (lambda: xray_u8(2048), 5, "chest X-ray uint8 2048x2048, aperture 5"),
    "sobel-i16-ct-64x256x256-k3": (lambda: ct_volume((64, 256, 256)), 3, "CT volume int16 HU 64x256x256, aperture 3"),
}
IMPLS = ["medfuse-1", "medfuse-2", "cv2-1", "cv2-2", "scipy-1", "reference"]


def _params() -> list[Any]:
    out = []
    for g in CASES:
        for i in IMPLS:
            is3d = g.startswith("sobel-i16-ct-64")
            if (i.startswith("cv2") and is3d) or (i == "reference" and ("2048" in g or is3d)):
                continue
            out.append(pytest.param(g, i, id=f"{g}-{i}", marks=pytest.mark.benchmark(group=g)))
    return out


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
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


def _check(got: Any, want: tuple[np.ndarray, ...], exact: bool) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = np.asarray(g, dtype=np.float64)
        if exact:
            assert np.array_equal(g, w)
        else:
            assert np.abs(g - w).max() <= 1e-6 * max(float(np.abs(w).max()), 1.0)


@pytest.mark.parametrize("group,impl", _params())
def test_sobel(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    build, aperture, desc = CASES[group]
    x = build()
    fam, _, n = impl.partition("-")
    threads = int(n) if n else 1
    exact = x.dtype.kind in "iu"
    fn: Callable[[], Any]
    if fam == "medfuse":
        fn, label = (lambda: medfuse.sobel(x, aperture_size=aperture)), "medfuse.sobel"
    elif fam == "reference":
        fn, label = (lambda: ref.sobel(x, aperture_size=aperture)), "medfuse.reference.sobel (NumPy twin)"
    elif fam == "cv2":
        cv2 = pytest.importorskip("cv2")

        def fn() -> Any:
            return (cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=aperture), cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=aperture))
        label = "cv2.Sobel (float32 result), both axes"
    else:
        ndimage = pytest.importorskip("scipy.ndimage")
        if aperture != 3:
            pytest.skip("scipy.ndimage.sobel has aperture 3 only")
        out_dtype = np.int32 if exact else np.float64

        def fn() -> Any:
            return tuple(ndimage.sobel(x, axis=a, mode="mirror", output=out_dtype) for a in range(x.ndim))
        label = "scipy.ndimage.sobel, every axis"
    with _threads(threads):
        want = tuple(np.asarray(g, dtype=np.float64) for g in medfuse.sobel(x, aperture_size=aperture))
        _check(fn(), want, exact or fam == "reference")
        benchmark(fn)
    benchmark.extra_info.update(implementation=f"{label} ({threads} thread{'s' if threads > 1 else ''})",
                                family=fam, threads=threads, input=desc,
                                checked_against=None if fam == "medfuse" else "medfuse.sobel")
