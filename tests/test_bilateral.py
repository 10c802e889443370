"""medfuse.bilateral: kernel vs NumPy twin (bit-identical) vs cv2.bilateralFilter."""

from __future__ import annotations

import os
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

params = st.tuples(
    st.sampled_from([-1, 0, 1, 2, 3, 5, 9, 15]),
    st.floats(0.5, 200.0),
    st.floats(0.3, 8.0),
)


def _native(x):
    return np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))


@settings(max_examples=80)
@given(data=st.data())
def test_uint8_matches_twin_and_cv2(data, cv2):
    x = data.draw(image_views(np.uint8, 2, families=images.TAME_FAMILIES))
    d, sc, ss = data.draw(params)
    got = medfuse.bilateral(x, d, sc, ss)
    assert got.dtype == np.uint8 and got.shape == x.shape
    np.testing.assert_array_equal(got, ref.bilateral(x, d, sc, ss))
    want = cv2.bilateralFilter(_native(x), d, sc, ss)
    assert np.abs(got.astype(int) - want).max() <= 1


@settings(max_examples=80)
@given(data=st.data())
def test_float32_matches_twin_and_cv2(data, cv2):
    x = data.draw(image_views(np.float32, 2, families=images.TAME_FAMILIES))
    d, sc, ss = data.draw(params)
    rng = float(np.ptp(x)) if x.size else 0.0
    sc = sc * max(rng, 1e-3) / 100.0
    got = medfuse.bilateral(x, d, sc, ss)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, ref.bilateral(x, d, sc, ss))
    if 0 < rng < float(np.finfo(np.float32).eps) and int(cv2.__version__.split(".")[0]) < 5:
        return  # cv2 4.x copies such an image instead of filtering it (see test_tiny_float_range_is_filtered_not_copied)
    want = cv2.bilateralFilter(_native(x), d, sc, ss)
    scale = max(float(np.abs(want).max()), rng, 1e-30)
    assert np.abs(got - want).max() <= 1e-4 * scale


@pytest.mark.parametrize("tiny", [1.5326267e-23, 1e-30, 2e-35, 1e-36])
def test_tiny_float_range_is_filtered_not_copied(cv2, tiny):
    """A range below FLT_EPSILON is an image, not a constant: cv2 4.x copied it (and so did medfuse until a
    fresh hypothesis seed drew [[1.53e-23, 0]]); the weighted means are computed (here: colour weights ~1)."""
    x = np.array([[tiny, 0.0, tiny], [0.0, tiny, 0.0]], np.float32)
    got = medfuse.bilateral(x, 3, 1.0, 1.0)
    np.testing.assert_array_equal(got, ref.bilateral(x, 3, 1.0, 1.0))
    assert 0 < got.min() and got.max() < tiny  # every pixel mixes both values
    if int(cv2.__version__.split(".")[0]) >= 5:
        np.testing.assert_allclose(got, cv2.bilateralFilter(x, 3, 1.0, 1.0), rtol=1e-4)


def test_float_range_below_old_table_limit_is_filtered():
    """Ranges below 1.2e-35 were refused while float32 weights came from a table scaled by 4096 / range; the
    weights are now computed from the differences themselves, so such an image is filtered like any other."""
    x = np.array([[1e-36, 0.0, 1e-36], [0.0, 1e-36, 0.0]], np.float32)
    got = medfuse.bilateral(x, 3, 1.0, 1.0)
    np.testing.assert_array_equal(got, ref.bilateral(x, 3, 1.0, 1.0))
    assert 0 < got.min() and got.max() < 1e-36  # colour weights ~1: every pixel mixes both values
    np.testing.assert_array_equal(medfuse.bilateral(np.full((2, 3), 1e-36, np.float32), 3, 1.0, 1.0),
                                  np.full((2, 3), 1e-36, np.float32))  # constant: returned as it is


def test_color_weight_polynomial_accuracy():
    """The float32 colour weight 2^-y, y = (d * coeff)^2, against exp(-d^2 / (2 sigma^2)) in float64: relative
    error below 3e-7 (the polynomial) + 2.2e-7 y (three float32 roundings in y, each scaled by ln 2 y: inherent
    to a float32 argument) while the weight is above 2^-120, and tiny but positive beyond."""
    from medfuse.reference.enhance import _color_weight_f32

    sigma = 7.0
    coeff = np.float32(np.float64(0.8493218002880191) / sigma)
    d = np.linspace(0.0, 120.0, 200001).astype(np.float32)  # exponents 0 .. ~212 bits
    got = _color_weight_f32(d, np.zeros_like(d), coeff).astype(np.float64)
    want = np.exp(-d.astype(np.float64) ** 2 / (2 * sigma * sigma))
    y = -np.log2(want)
    big = want > 2.0 ** -120
    assert (np.abs(got[big] / want[big] - 1) <= 3e-7 + 2.2e-7 * y[big]).all()
    assert np.abs(got[y <= 1] / want[y <= 1] - 1).max() < 4e-7  # weights above 1/2
    assert (got[~big] <= 1.5 * 2.0 ** -120).all() and (got > 0).all()
    # symmetric in the difference, bit for bit (what the AVX-512 pair path relies on)
    v0 = np.float32(3.25)
    np.testing.assert_array_equal(_color_weight_f32(d + v0, np.full_like(d, v0), coeff),
                                  _color_weight_f32(np.full_like(d, v0), d + v0, coeff))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("d", [3, 5, 9, 17, 33, 35])
def test_pair_path_matches_twin(dtype, d):
    """Widths around the AVX-512 pair path's limits (48 columns; four-vector blocks of 64 between 16-column
    direct edges; radius up to 16) and a strided view, bit for bit against the twin on every path."""
    rng = np.random.default_rng(d)
    for w in (47, 48, 63, 64, 79, 96, 97, 113, 130):
        x = rng.integers(0, 256, (23, w)).astype(dtype)
        if dtype == np.float32:
            x = x * np.float32(3.7) - np.float32(900.0)
        np.testing.assert_array_equal(medfuse.bilateral(x, d, 40.0, 3.0), ref.bilateral(x, d, 40.0, 3.0))
    big = rng.integers(0, 256, (60, 2 * 150)).astype(dtype)[::2, ::2]  # non-contiguous, 30 x 150
    np.testing.assert_array_equal(medfuse.bilateral(big, d, 25.0, 2.0), ref.bilateral(big, d, 25.0, 2.0))
    # bands that start inside the image (the uint8 float-row ring starts at each band's first row)
    tall = rng.integers(0, 256, (157, 70)).astype(dtype)
    before = medfuse.get_num_threads()
    try:
        medfuse.set_num_threads(5)
        np.testing.assert_array_equal(medfuse.bilateral(tall, d, 40.0, 3.0), ref.bilateral(tall, d, 40.0, 3.0))
    finally:
        medfuse.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("d", [3, 5])
def test_many_bands_match_twin(dtype, d):
    """Wide images split into several bands of rows (each band pads its own rows, borders and halo included),
    bit for bit against the twin at 1 and 3 threads."""
    rng = np.random.default_rng(40 + d)
    x = rng.integers(0, 256, (301, 2100)).astype(dtype)
    if dtype == np.float32:
        x = x * np.float32(5.3) - np.float32(1000.0)
    want = ref.bilateral(x, d, 35.0, 2.5)
    before = medfuse.get_num_threads()
    try:
        for n in (1, 3):
            medfuse.set_num_threads(n)
            np.testing.assert_array_equal(medfuse.bilateral(x, d, 35.0, 2.5), want)
    finally:
        medfuse.set_num_threads(before)


def test_invariants(cv2):
    c = np.full((20, 30), 100, np.uint8)
    np.testing.assert_array_equal(medfuse.bilateral(c, 5, 20.0, 3.0), c)
    cf = np.full((20, 30), -3.5, np.float32)
    np.testing.assert_array_equal(medfuse.bilateral(cf, 5, 20.0, 3.0), cf)
    # Tiny sigma_color: every neighbour with another value gets weight ~0.
    x = images.make("blocks", (40, 40), np.uint8, seed=1)
    np.testing.assert_array_equal(medfuse.bilateral(x, 5, 0.01, 3.0), x)
    # Result stays within the window's range.
    y = images.make("noise", (60, 70), np.uint8, seed=2)
    r = medfuse.bilateral(y, 7, 50.0, 3.0)
    assert r.min() >= y.min() and r.max() <= y.max()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_thread_count_invariance(dtype):
    x = images.make("natural", (700, 530), dtype, seed=3)
    results = []
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        results.append(medfuse.bilateral(x, 5, 30.0, 2.0))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_python_threads_concurrently():
    xs = [images.make("noise", (200, 210), np.uint8, seed=i) for i in range(5)]
    serial = [medfuse.bilateral(x, 5, 40.0, 2.0) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda x: medfuse.bilateral(x, 5, 40.0, 2.0), xs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


_DISPATCH = r"""
import numpy as np, medfuse, medfuse.reference as ref
rng = np.random.default_rng(0)
bad = 0
for shape in [(1, 1), (5, 7), (9, 17), (33, 40), (20, 48), (17, 131)]:
    for d in (5, 9, 33):
        x = rng.integers(0, 256, shape).astype(np.uint8)
        bad += int((medfuse.bilateral(x, d, 30.0, 2.0) != ref.bilateral(x, d, 30.0, 2.0)).sum())
        xf = (x * 3.7 - 100).astype(np.float32)
        bad += int((medfuse.bilateral(xf, d, 80.0, 2.0) != ref.bilateral(xf, d, 80.0, 2.0)).sum())
print(medfuse.build_info()["simd_active"], bad)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_dispatch_paths(simd):
    if simd not in medfuse.build_info()["simd_supported"]:
        pytest.skip(f"{simd} not available")
    env = {**os.environ, "MEDFUSE_SIMD": simd}
    out = subprocess.run([sys.executable, "-c", _DISPATCH], env=env, capture_output=True, text=True, check=True)
    active, bad = out.stdout.split()
    assert active == simd and bad == "0"


# ---- refusals -------------------------------------------------------------

@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_sigma_color(value):
    with pytest.raises(ValueError, match="sigma_color"):
        medfuse.bilateral(np.zeros((5, 5), np.uint8), 5, value, 2.0)


@pytest.mark.parametrize("value", [0.0, -2.0, float("nan")])
def test_bad_sigma_space(value):
    with pytest.raises(ValueError, match="sigma_space"):
        ref.bilateral(np.zeros((5, 5), np.uint8), 5, 10.0, value)
    with pytest.raises(ValueError, match="sigma_space"):
        medfuse.bilateral(np.zeros((5, 5), np.uint8), 5, 10.0, value)


def test_bad_d():
    with pytest.raises(TypeError, match="d"):
        medfuse.bilateral(np.zeros((5, 5), np.uint8), 5.0, 10.0, 2.0)
    with pytest.raises(ValueError, match="d"):
        medfuse.bilateral(np.zeros((5, 5), np.uint8), 5000, 10.0, 2.0)
    with pytest.raises(ValueError, match="sigma_space"):
        medfuse.bilateral(np.zeros((5, 5), np.uint8), 0, 10.0, 2000.0)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float64])
def test_wrong_dtype(dtype):
    with pytest.raises(TypeError, match="image"):
        medfuse.bilateral(np.zeros((5, 5), dtype), 5, 10.0, 2.0)


def test_wrong_ndim():
    with pytest.raises(ValueError, match="image"):
        medfuse.bilateral(np.zeros((3, 5, 5), np.uint8), 5, 10.0, 2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_refused(bad):
    x = np.zeros((5, 5), np.float32)
    x[1, 1] = bad
    with pytest.raises(ValueError, match="NaN"):
        medfuse.bilateral(x, 3, 10.0, 2.0)
    with pytest.raises(ValueError, match="NaN"):
        ref.bilateral(x, 3, 10.0, 2.0)
    from medfuse import _core  # the kernel itself refuses (its min/max pass), not only the wrappers

    with pytest.raises(ValueError, match="NaN or infinity"):
        _core.bilateral_f32(x, 1, 10.0, 2.0, 1)


def test_float32_range_that_overflows_is_refused():
    """Issue 25 (found while routing the gathers through checked_simd.hpp): a
    finite float32 image whose max - min overflows float32 made the colour
    weight index inf * 0 = NaN -> INT_MIN, and the table gather read far
    outside the table (SIGSEGV). Kernel, twin and the raw binding refuse it."""
    from medfuse import _core

    img = np.zeros((16, 40), np.float32)
    img[::2] = -3e38
    img[1::2] = 3e38
    with pytest.raises(ValueError, match="overflows float32"):
        medfuse.bilateral(img, 5, 10.0, 3.0)
    with pytest.raises(ValueError, match="overflows float32"):
        ref.bilateral(img, 5, 10.0, 3.0)
    with pytest.raises(ValueError, match="overflows float32"):
        _core.bilateral_f32(img, 2, 10.0, 3.0, 1)
    # A huge range that fits still works and agrees with the twin (d=3: the sums stay finite).
    ok = np.zeros((16, 40), np.float32)
    ok[::2] = -1e37
    ok[1::2] = 1e37
    np.testing.assert_array_equal(medfuse.bilateral(ok, 3, 1e37, 3.0), ref.bilateral(ok, 3, 1e37, 3.0))
