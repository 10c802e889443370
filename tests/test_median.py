"""medfuse.median: kernel vs NumPy twin vs scipy.ndimage.median_filter / cv2.medianBlur."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import images
import medfuse
import medfuse.reference as ref
from strategies import image_views

ndimage = pytest.importorskip("scipy.ndimage")

DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
SCIPY_MODE = {"reflect101": "mirror", "replicate": "nearest"}
odd = st.sampled_from([1, 3, 5, 7, 9])


def _sizes(ndim):
    return st.one_of(odd, st.tuples(*[st.sampled_from([1, 3, 5, 7, 11])] * ndim))


@settings(max_examples=150)
@given(data=st.data())
def test_matches_twin_and_scipy(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    ndim = data.draw(st.sampled_from([2, 3]))
    x = data.draw(image_views(dtype, ndim))
    size = data.draw(_sizes(x.ndim))
    border = data.draw(st.sampled_from(["reflect101", "replicate"]))
    got = medfuse.median(x, size, border=border)
    assert got.dtype == x.dtype.newbyteorder("=") and got.shape == x.shape
    np.testing.assert_array_equal(got, ref.median(x, size, border=border))
    want = ndimage.median_filter(np.asarray(x, dtype=x.dtype.newbyteorder("=")), size=size, mode=SCIPY_MODE[border])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=100)
@given(data=st.data())
def test_uint8_2d_matches_cv2(data, cv2):
    x = data.draw(image_views(np.uint8, 2))
    k = data.draw(st.sampled_from([3, 5, 7, 9, 15]))
    got = medfuse.median(x, k, border="replicate")
    np.testing.assert_array_equal(got, cv2.medianBlur(np.ascontiguousarray(x), k))


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize(
    "shape", [(1, 1), (2, 3), (7, 31), (5, 32), (9, 33), (17, 64), (13, 65), (40, 127), (6, 128), (5, 129), (3, 200)]
)
def test_networks_at_vector_widths(k, shape, cv2):
    """The 3x3/5x5 vector networks around the 16/32/64-lane widths, vs cv2 and scipy."""
    for family in ("noise", "natural", "extremes", "blocks"):
        x = images.make(family, shape, np.uint8, seed=sum(shape) + k)
        np.testing.assert_array_equal(medfuse.median(x, k, border="replicate"), cv2.medianBlur(x, k))
        np.testing.assert_array_equal(medfuse.median(x, k), ndimage.median_filter(x, size=k, mode="mirror"))


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32])
@pytest.mark.parametrize("k", [3, 5])
def test_networks_other_dtypes(dtype, k):
    """3x3/5x5 networks on 16-bit and float32 images around the 4/8/16-lane widths."""
    for shape in [(1, 1), (3, 4), (6, 8), (5, 9), (7, 16), (9, 17), (12, 33), (30, 70)]:
        for family in ("noise", "extremes", "natural"):
            x = images.make(family, shape, dtype, seed=sum(shape) + k)
            for border in ("reflect101", "replicate"):
                want = ndimage.median_filter(x, size=k, mode=SCIPY_MODE[border])
                np.testing.assert_array_equal(medfuse.median(x, k, border=border), want)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_3x3_register_path_widths_and_borders(dtype):
    """The 3x3 path that keeps the column-sorted rows in registers: rows of whole vectors (the border columns enter
    as broadcast vectors), rows with a tail (vectors at any column, the last pixel alone), rows under three vectors,
    for every border, on 4/8/16/32/64-lane vectors; against scipy."""
    rng = np.random.default_rng(7)
    widths = sorted({w for n in (4, 8, 16, 32, 64) for m in (1, 2, 3, 4) for w in (m * n - 1, m * n, m * n + 1, m * n + 2)
                     if w >= 3})
    for w in widths:
        if dtype == np.float32:
            x = rng.standard_normal((4, w)).astype(dtype)
        else:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, (4, w), endpoint=True).astype(dtype)
        for border, mode in SCIPY_MODE.items():
            np.testing.assert_array_equal(medfuse.median(x, 3, border=border),
                                          ndimage.median_filter(x, size=3, mode=mode), err_msg=f"{w} {border}")


def test_few_levels_exhaustive_5x5():
    """0/1 images (the 0-1 principle behind sorting networks): every 5x5 result."""
    rng = np.random.default_rng(0)
    x = (rng.random((300, 300)) < 0.5).astype(np.uint8)
    np.testing.assert_array_equal(medfuse.median(x, 5), ndimage.median_filter(x, size=5, mode="mirror"))
    x = rng.integers(0, 3, (300, 300)).astype(np.uint8)
    np.testing.assert_array_equal(medfuse.median(x, 5), ndimage.median_filter(x, size=5, mode="mirror"))


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_16bit_histogram_path(dtype):
    """Windows above 49 values use the two-level histogram."""
    x = images.make("ct", (20, 30, 40), dtype, seed=3)
    for size in [(3, 5, 5), (1, 9, 9), (5, 3, 7)]:
        np.testing.assert_array_equal(medfuse.median(x, size), ndimage.median_filter(x, size=size, mode="mirror"))
    x = images.make("extremes", (40, 50), dtype, seed=4)
    np.testing.assert_array_equal(medfuse.median(x, 9, border="replicate"), ndimage.median_filter(x, size=9, mode="nearest"))


def test_window_larger_than_image():
    x = images.make("noise", (3, 4), np.uint8, seed=1)
    for size in [(7, 9), (15, 15), (1, 31)]:
        for border in ("reflect101", "replicate"):
            want = ndimage.median_filter(x, size=size, mode=SCIPY_MODE[border])
            np.testing.assert_array_equal(medfuse.median(x, size, border=border), want)


def test_invariants():
    x = images.make("natural", (50, 60), np.uint8, seed=2)
    np.testing.assert_array_equal(medfuse.median(x, 1), x)  # size 1 is the identity
    c = np.full((30, 40), 77, np.uint8)
    np.testing.assert_array_equal(medfuse.median(c, 5), c)
    # The median commutes with monotone maps: 255 - x.
    for k in (3, 5, 7):
        np.testing.assert_array_equal(medfuse.median(255 - x, k), 255 - medfuse.median(x, k))
    # Output values come from the window: min <= median <= max.
    m = medfuse.median(x, 5)
    lo = ndimage.minimum_filter(x, 5, mode="mirror")
    hi = ndimage.maximum_filter(x, 5, mode="mirror")
    assert (lo <= m).all() and (m <= hi).all()


def test_float_infinities_are_ordered():
    x = np.zeros((9, 9), np.float32)
    x[4, 4] = np.inf
    x[0:3, 0:3] = -np.inf
    got = medfuse.median(x, 3)
    np.testing.assert_array_equal(got, ndimage.median_filter(x, 3, mode="mirror"))
    assert np.isneginf(got[0, 0]) and got[4, 4] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [3, 5, 9, (1, 3, 3)])
def test_thread_count_invariance(dtype, size):
    x = images.make("natural", (3, 300, 520) if isinstance(size, tuple) else (700, 530), dtype, seed=5)
    results = []
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        results.append(medfuse.median(x, size))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_python_threads_concurrently():
    xs = [images.make("noise", (300, 310), np.uint8, seed=i) for i in range(6)]
    serial = [medfuse.median(x, 5) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda x: medfuse.median(x, 5), xs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


_DISPATCH = r"""
import sys, numpy as np
from scipy import ndimage
import medfuse
bad = 0
rng = np.random.default_rng(0)
for shape in [(1, 1), (5, 17), (9, 33), (20, 64), (31, 100), (6, 63), (7, 65), (4, 128), (5, 129), (3, 191),
              (3, 66), (4, 96), (3, 130), (5, 192), (3, 194), (4, 256), (3, 258)]:
    for dtype in (np.uint8, np.uint16, np.int16, np.float32):
        if dtype == np.float32:
            x = rng.standard_normal(shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        for k in (3, 5, 7):
            bad += int((medfuse.median(x, k) != ndimage.median_filter(x, k, mode="mirror")).sum())
        if dtype == np.uint8:  # the column-histogram path (2D uint8, width >= 9)
            for size in ((9, 9), (3, 11), (15, 9)):
                bad += int((medfuse.median(x, size) != ndimage.median_filter(x, size, mode="mirror")).sum())
print(medfuse.build_info()["simd_active"], bad)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_dispatch_paths(simd):
    if simd not in medfuse.build_info()["simd_supported"]:
        pytest.skip(f"{simd} not available")
    env = {**__import__("os").environ, "MEDFUSE_SIMD": simd}
    out = subprocess.run([sys.executable, "-c", _DISPATCH], env=env, capture_output=True, text=True, check=True)
    active, bad = out.stdout.split()
    assert active == simd and bad == "0"


# ---- refusals -------------------------------------------------------------

def test_even_size_refused():
    with pytest.raises(ValueError, match="size"):
        medfuse.median(np.zeros((5, 5), np.uint8), 4)
    with pytest.raises(ValueError, match="size"):
        ref.median(np.zeros((5, 5), np.uint8), (3, 2))


def test_bad_sizes_refused():
    x = np.zeros((5, 5), np.uint8)
    with pytest.raises(ValueError, match="size"):
        medfuse.median(x, 0)
    with pytest.raises(ValueError, match="size"):
        medfuse.median(x, (3, 3, 3))
    with pytest.raises(TypeError, match="size"):
        medfuse.median(x, 3.0)
    with pytest.raises(TypeError, match="size"):
        medfuse.median(x, True)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.bool_, np.complex64])
def test_wrong_dtype_refused(dtype):
    with pytest.raises(TypeError, match="image"):
        medfuse.median(np.zeros((5, 5), dtype), 3)


def test_wrong_ndim_and_empty_refused():
    with pytest.raises(ValueError, match="image"):
        medfuse.median(np.zeros(5, np.uint8), 3)
    with pytest.raises(ValueError, match="image"):
        medfuse.median(np.zeros((0, 5), np.uint8), 3)


def test_nan_refused():
    x = np.zeros((5, 5), np.float32)
    x[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        medfuse.median(x, 3)
    with pytest.raises(ValueError, match="NaN"):
        ref.median(x, 3)


def test_bad_border_refused():
    with pytest.raises(ValueError, match="border"):
        medfuse.median(np.zeros((5, 5), np.uint8), 3, border="wrap")


def test_core_defends_itself():
    from medfuse import _core

    with pytest.raises(TypeError):
        _core.median_u8(np.zeros((5, 5), np.float32), [3, 3], 0, 1)
    with pytest.raises(ValueError, match="size"):
        _core.median_u8(np.zeros((5, 5), np.uint8), [2, 3], 0, 1)
    with pytest.raises(ValueError, match="threads"):
        _core.median_u8(np.zeros((5, 5), np.uint8), [3, 3], 0, 0)


# window counts up to 255 take byte counts on AVX2/AVX-512: (17, 15) and
# (1, 255) are that path's limit (a bin can hold all 255), (19, 15) is past it
@pytest.mark.parametrize("size", [(9, 9), (1, 9), (3, 11), (15, 15), (17, 15), (1, 255), (19, 15), (31, 9),
                                  (9, 41), (255, 9)])
@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (40, 1), (7, 8), (33, 70), (300, 257)])
@pytest.mark.parametrize("content", ["noise", "two-levels", "extremes", "constant"])
def test_uint8_column_histogram_path(size, shape, content):
    """2D uint8 windows at least 9 wide (column histograms): against the twin
    and scipy, windows larger than the image, windows up to 255 rows (column
    counts in one byte), few levels and the extremes 0 / 255, 1-3 threads."""
    rng = np.random.default_rng(size[0] * 1000 + size[1] + shape[1])
    if content == "noise":
        x = rng.integers(0, 256, shape, endpoint=False).astype(np.uint8)
    elif content == "two-levels":
        x = np.where(rng.random(shape) < 0.5, 17, 18).astype(np.uint8)
    elif content == "extremes":
        x = np.where(rng.random(shape) < 0.5, 0, 255).astype(np.uint8)
    else:
        x = np.full(shape, 255, np.uint8)
    want = ndimage.median_filter(x, size=size, mode="mirror")
    before = medfuse.get_num_threads()
    try:
        for n in (1, 2, 3):
            medfuse.set_num_threads(n)
            np.testing.assert_array_equal(medfuse.median(x, size), want)
    finally:
        medfuse.set_num_threads(before)
    np.testing.assert_array_equal(medfuse.median(x, size, border="replicate"),
                                  ndimage.median_filter(x, size=size, mode="nearest"))


def test_float32_window_too_large_is_refused():
    """float32 medians gather every window value per output: a window of more than 2**21 values is refused
    (it would run for hours), by the kernel and the twin alike; 8-bit data take the sliding histogram and
    accept it."""
    x = np.random.default_rng(0).random((4, 4, 13)).astype(np.float32)
    for fn in (medfuse.median, ref.median):
        with pytest.raises(ValueError, match="window of 16581375 values"):
            fn(x, 255)
        with pytest.raises(ValueError, match="at most 2097152"):
            fn(x[0], (1449, 1449))
    assert medfuse.median(x[:1, :2, :3], (127, 127, 127)).shape == (1, 2, 3)  # 2048383 values: allowed
    u8 = (x * 255).astype(np.uint8)[:2, :2, :3]
    assert medfuse.median(u8, 255).shape == u8.shape
