"""medfuse.gaussian and medfuse.unsharp_mask against their twins,
scipy.ndimage.gaussian_filter and cv2.GaussianBlur; refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import images
import medfuse
import medfuse.reference as ref
from simd_paths import simd_paths
from strategies import image_views

ndi = pytest.importorskip("scipy.ndimage")

TAME = ("natural", "ct", "noise", "constant", "blocks")
BORDERS = ["reflect101", "reflect", "replicate", "constant", "wrap"]
SCIPY = {"reflect101": "mirror", "reflect": "reflect", "replicate": "nearest", "constant": "constant",
         "wrap": "grid-wrap"}


def _close(got, want, x, rtol=1e-5):
    """|got - want| <= rtol * (gaussian of |x|): taps are positive and sum to 1."""
    scale = np.abs(np.asarray(x, dtype=np.float64)).max(initial=0.0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=rtol * scale + 1e-30)


sigmas = st.floats(0.0, 6.0).map(lambda s: round(s, 3))


@given(data=st.data())
def test_gaussian_matches_scipy_and_twin(data):
    nd = data.draw(st.sampled_from([2, 3]))
    x = data.draw(image_views(ndim=nd, families=TAME, max_side=48 if nd == 2 else 14))
    sig = tuple(data.draw(sigmas) for _ in range(nd))
    truncate = data.draw(st.sampled_from([4.0, 2.5, 1.0]))
    border = data.draw(st.sampled_from(BORDERS))
    got = medfuse.gaussian(x, sig, truncate=truncate, border=border)
    assert got.dtype == (np.float64 if x.dtype.newbyteorder("=") == np.float64 else np.float32)
    want = ndi.gaussian_filter(np.asarray(x, dtype=np.float64), sig, truncate=truncate, mode=SCIPY[border])
    _close(got, want, x)
    _close(got, ref.gaussian(x, sig, truncate=truncate, border=border), x)


@pytest.mark.parametrize("dtype", images.DTYPES)
def test_gaussian_out_dtype_like_scipy(dtype):
    """out_dtype=image.dtype gives scipy's dtype. Integers are rounded once at the
    end (scipy rounds after every axis pass, so it can be 2 levels off)."""
    x = images.make("natural", (40, 37), dtype, seed=1)
    got = medfuse.gaussian(x, 1.7, out_dtype=x.dtype)
    want = ndi.gaussian_filter(x, 1.7, mode="mirror")
    assert got.dtype == want.dtype
    if x.dtype.kind in "ui":
        exact = np.rint(ndi.gaussian_filter(x.astype(np.float64), 1.7, mode="mirror"))
        assert np.abs(got.astype(int) - exact).max() <= 1
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
    else:
        _close(got, want, x)


def test_gaussian_matches_cv2_gaussianblur(cv2):
    x = images.make("natural", (300, 211), np.float32, seed=2)
    for s in (0.8, 2.0, 3.3):
        r = int(4.0 * s + 0.5)
        want = cv2.GaussianBlur(x, (2 * r + 1, 2 * r + 1), s, borderType=cv2.BORDER_REFLECT_101)
        # cv2 truncates its kernel at ksize but normalises it the same way as scipy
        _close(medfuse.gaussian(x, s), want, x, rtol=2e-5)


def test_spacing_converts_mm_to_voxels():
    x = images.make("ct", (10, 30, 32), np.float32, seed=3)
    got = medfuse.gaussian(x, 2.0, spacing=(4.0, 1.0, 0.5))
    np.testing.assert_array_equal(got, medfuse.gaussian(x, (0.5, 2.0, 4.0)))


def test_sigma_zero_axis_is_untouched():
    x = images.make("natural", (20, 30), np.float64, seed=4)
    got = medfuse.gaussian(x, (0.0, 1.5))
    np.testing.assert_allclose(got, ndi.gaussian_filter1d(x, 1.5, axis=1, mode="mirror"), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(medfuse.gaussian(x, 0.0), x)


def test_gaussian_of_constant_is_constant():
    for dt in images.DTYPES:
        x = images.make("constant", (17, 19, 5), dt, seed=5)
        got = medfuse.gaussian(x, (1.0, 2.0, 3.0))
        np.testing.assert_allclose(got, x.astype(np.float64), rtol=1e-6)


def test_large_sigma_on_small_image():
    x = images.make("noise", (3, 4), np.float32, seed=6)
    got = medfuse.gaussian(x, 10.0)
    want = ndi.gaussian_filter(x.astype(np.float64), 10.0, mode="mirror")
    _close(got, want, x)


def test_gaussian_threads_invariant():
    x = images.make("ct", (23, 140, 131), np.int16, seed=7)
    res = []
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        res.append(medfuse.gaussian(x, (1.0, 2.0, 1.5)))
    for r in res[1:]:
        np.testing.assert_array_equal(r, res[0])


@pytest.mark.parametrize("fn", [medfuse.gaussian, ref.gaussian])
def test_gaussian_refusals(fn):
    x = np.zeros((5, 6), np.float32)
    with pytest.raises(ValueError, match="sigma"):
        fn(x, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        fn(x, (1.0, -0.5))
    with pytest.raises(ValueError, match="sigma"):
        fn(x, (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="sigma"):
        fn(x, np.nan)
    with pytest.raises(TypeError, match="sigma"):
        fn(x, None)
    with pytest.raises(ValueError, match="truncate"):
        fn(x, 1.0, truncate=0.0)
    with pytest.raises(ValueError, match="border"):
        fn(x, 1.0, border="nearest")
    with pytest.raises(ValueError, match="spacing"):
        fn(x, 1.0, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="sigma"):
        fn(x, 1e7)
    with pytest.raises(TypeError, match="image"):
        fn(np.zeros((4, 4), np.int64), 1.0)


# ---- unsharp mask -------------------------------------------------------------------
@given(data=st.data())
def test_unsharp_matches_twin(data):
    x = data.draw(image_views(families=TAME, max_side=40))
    sigma = data.draw(st.floats(0.3, 3.0))
    amount = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.5, -0.5]))
    thr = data.draw(st.sampled_from([0.0, 2.0, 30.0]))
    got = medfuse.unsharp_mask(x, sigma, amount, threshold=thr)
    want = ref.unsharp_mask(x, sigma, amount, threshold=thr)
    assert got.dtype == want.dtype == x.dtype.newbyteorder("=")
    xf = np.asarray(x, dtype=np.float64)
    scale = np.abs(xf).max(initial=0.0)
    if x.dtype.kind in "ui":
        # float32 blur vs float64: a pixel may round or pass the threshold differently
        d = np.abs(got.astype(np.int64) - want.astype(np.int64))
        near_thr = np.abs(np.abs(xf - ref.gaussian(x, sigma, out_dtype=np.float64)) - thr) <= 1e-4 * scale + 1e-9
        assert (d[~near_thr] <= 1).all()
    else:
        tol = 1e-5 * scale * (1 + abs(amount))
        d = np.abs(got.astype(np.float64) - want.astype(np.float64))
        near_thr = np.abs(np.abs(xf - ref.gaussian(x, sigma, out_dtype=np.float64)) - thr) <= 1e-4 * scale + 1e-9
        assert (d[~near_thr] <= tol + 1e-30).all()


@given(data=st.data())
def test_unsharp_combine_is_the_float64_formula(data):
    """The C++ combine gives plan.unsharp_combine's bits (its float64 NumPy formula) on the same blur:
    every dtype, views, extreme values, amounts that clip, thresholds, 1 and 3 threads."""
    from medfuse.kernels import _convolve_plan as plan

    x = data.draw(image_views(max_side=40))
    sigma = data.draw(st.floats(0.3, 3.0))
    amount = data.draw(st.sampled_from([0.0, 0.7, 1.0, 3.0, -2.5, 1e6]))
    thr = data.draw(st.sampled_from([0.0, 0.5, 2.0, 1e4]))
    want = plan.unsharp_combine(x, medfuse.gaussian(x, sigma), amount, thr)
    before = medfuse.get_num_threads()
    try:
        for n in (1, 3):
            medfuse.set_num_threads(n)
            got = medfuse.unsharp_mask(x, sigma, amount, threshold=thr)
            assert got.dtype == want.dtype.newbyteorder("=")
            np.testing.assert_array_equal(got, want)
    finally:
        medfuse.set_num_threads(before)


def test_unsharp_combine_large_image_every_dtype():
    """Images of several 64k-element chunks (the kernel's work split), against the formula."""
    from medfuse.kernels import _convolve_plan as plan

    for dtype in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        x = images.make("natural", (300, 517), dtype, seed=11)
        want = plan.unsharp_combine(x, medfuse.gaussian(x, 1.5), 2.0, 1.0)
        np.testing.assert_array_equal(medfuse.unsharp_mask(x, 1.5, 2.0, threshold=1.0), want)


def test_unsharp_formula_and_clipping():
    x = np.array([[10, 10, 10, 200, 200, 200]] * 3, np.uint8)
    blurred = medfuse.gaussian(x, 1.0).astype(np.float64)
    d = x - blurred
    got = medfuse.unsharp_mask(x, 1.0, 3.0)
    want = np.clip(np.rint(x + 3.0 * d), 0, 255)
    np.testing.assert_array_equal(got, want)
    assert got.min() == 0 and got.max() == 255  # clipped both ways
    # threshold: pixels with |d| < threshold are unchanged
    thr = float(np.sort(np.abs(d).ravel())[len(d.ravel()) // 2]) + 1e-3
    got = medfuse.unsharp_mask(x, 1.0, 3.0, threshold=thr)
    small = np.abs(d) < thr
    np.testing.assert_array_equal(got[small], x[small])
    assert (got[~small] != x[~small]).any()


def test_unsharp_float_stays_float_and_amount_zero_is_identity():
    x = images.make("natural", (20, 21), np.float32, seed=8)
    got = medfuse.unsharp_mask(x, 2.0, 0.0)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x)
    x16 = images.make("extremes", (9, 9), np.int16, seed=9)
    assert medfuse.unsharp_mask(x16, 1.0, 5.0).dtype == np.int16


@pytest.mark.parametrize("fn", [medfuse.unsharp_mask, ref.unsharp_mask])
def test_unsharp_refusals(fn):
    x = np.zeros((5, 6), np.uint8)
    with pytest.raises(ValueError, match="threshold"):
        fn(x, 1.0, 1.0, threshold=-1)
    with pytest.raises(ValueError, match="amount"):
        fn(x, 1.0, np.inf)
    with pytest.raises(TypeError, match="amount"):
        fn(x, 1.0, None)
    with pytest.raises(ValueError, match="sigma"):
        fn(x, -2.0, 1.0)


@pytest.mark.parametrize("shape", [(5, 6), (3, 5, 6)], ids=["2D", "3D"])
def test_unsharp_core_rechecks_arguments(shape):
    """The binding refuses what the wrapper would (its own checks, shared with sep_filter's), messages included."""
    from medfuse import _core

    x = np.zeros(shape, np.float32)
    nd = len(shape)
    ok = [np.ones(3) / 3] * nd
    np.testing.assert_array_equal(_core.unsharp_mask_f32(x, ok, 0, 1.0, 0.0, 1), x)
    bad_kernels = [
        ([np.ones(3)] * (nd - 1), "one 1D kernel per axis"),
        ([np.ones(3)] * (nd + 1), "one 1D kernel per axis"),
        ([np.ones(3)] * (nd - 1) + [np.ones((3, 1))], "1-dimensional"),
        ([np.ones(3)] * (nd - 1) + [np.ones(0)], "kernels is empty"),
        ([np.ones(3)] * (nd - 1) + [np.array([1.0, np.nan])], "kernels contains NaN or infinity"),
        ([np.array([np.inf])] + [np.ones(3)] * (nd - 1), "kernels contains NaN or infinity"),
        ([np.ones(3)] * (nd - 1) + [np.ones(2**20 + 1)], r"kernels has more than 2\*\*20 taps"),
    ]
    for kernels, msg in bad_kernels:
        with pytest.raises(ValueError, match=msg):
            _core.unsharp_mask_f32(x, kernels, 0, 1.0, 0.0, 1)
        with pytest.raises(ValueError, match=msg):  # the same checks and messages as sep_filter's
            _core.sep_filter_f32(x, kernels, 0, 0.0, 0, False, 1)
    with pytest.raises(ValueError, match="amount must be finite"):
        _core.unsharp_mask_f32(x, ok, 0, np.nan, 0.0, 1)
    with pytest.raises(ValueError, match="threshold must be finite and >= 0"):
        _core.unsharp_mask_f32(x, ok, 0, 1.0, -1.0, 1)
    with pytest.raises(ValueError, match="threshold must be finite and >= 0"):
        _core.unsharp_mask_f32(x, ok, 0, 1.0, np.inf, 1)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("out_dtype", [None, np.float64, np.int16])
def test_gaussian_3d_multi_chunk_volume(border, out_dtype):
    """Planes larger than the z pass's column blocks (several blocks, both z-pass layouts)."""
    x = images.make("ct", (9, 41, 53), np.int16, seed=11)
    got = medfuse.gaussian(x, (1.2, 0.8, 2.0), border=border, value=-1000.0, out_dtype=out_dtype)
    want = ndi.gaussian_filter(x.astype(np.float64), (1.2, 0.8, 2.0), mode=SCIPY[border], cval=-1000.0)
    if out_dtype == np.int16:
        assert np.abs(got.astype(int) - np.rint(want)).max() <= 1
    else:
        _close(got, want, x)


# ---- the fused 2D unsharp mask, on every SIMD path ----------------------------------------------
_UNSHARP_PATHS = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
import images
import medfuse
from medfuse.kernels import _convolve_plan as plan

bad = []
cases = 0
rng = np.random.default_rng(7)
def check(x, sigma, amount, thr, border, tag):
    global cases
    with np.errstate(over="ignore", invalid="ignore"):
        want = plan.unsharp_combine(x, medfuse.gaussian(x, sigma, border=border), amount, thr)
    for n in (1, 3):
        medfuse.set_num_threads(n)
        cases += 1
        got = medfuse.unsharp_mask(x, sigma, amount, threshold=thr, border=border)
        if got.dtype != want.dtype or not np.array_equal(got, want, equal_nan=got.dtype.kind == "f"):
            bad.append((tag, x.dtype.name, x.shape, sigma, amount, thr, border, n))
for dtype in images.DTYPES:
    for w in list(range(1, 18)) + [31, 32, 33, 63, 64, 65, 129]:
        h = 1 + (w % 5)
        for fam in ("natural", "extremes", "noise"):
            x = images.make(fam, (h, w), dtype, seed=w)
            for sigma, amount, thr in ((1.0, 1.5, 0.0), ((0.0, 2.0), 3.0, 2.0), ((1.3, 0.0), -2.5, 0.0),
                                       (0.7, 1e6, 30.0)):
                for border in ("reflect101", "constant", "wrap"):
                    check(x, sigma, amount, thr, border, fam)
    x = images.make("natural", (40, 70), dtype, seed=1)
    check(x[::2, 1::3], 1.5, 2.0, 1.0, "replicate", "view")
    check(images.make("natural", (5, 9, 33), dtype, seed=2), 1.2, 2.0, 0.5, "reflect101", "3d")
    if np.dtype(dtype).kind == "f":
        y = rng.normal(0, 50, (9, 37)).astype(dtype)
        y[3, 36] = np.nan
        y[5, 0] = np.inf
        check(y, 1.0, 2.0, 0.0, "reflect101", "nonfinite")
        check(y, 1.0, 2.0, 5.0, "reflect101", "nonfinite-thr")
print(json.dumps({{"active": medfuse.build_info()["simd_active"], "cases": cases, "bad": bad[:10], "n_bad": len(bad)}}))
"""


@pytest.mark.parametrize("path", simd_paths())
def test_unsharp_every_simd_path_is_blur_then_formula(path):
    """2D is fused (the blur row by row straight into the combine) and the combine runs in vectors: same bits
    as medfuse.gaussian followed by plan.unsharp_combine's float64 NumPy formula, for every dtype, widths
    around the vector widths, clipping amounts, thresholds, borders, views, 3D, NaN/inf and 1/3 threads."""
    import json
    import os
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, MEDFUSE_SIMD=path)
    proc = subprocess.run([sys.executable, "-c", _UNSHARP_PATHS.format(tests=tests)], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["active"] == path
    assert out["cases"] > 3000
    assert out["n_bad"] == 0, out["bad"]


def test_unsharp_rounds_half_to_even_and_clips():
    """Integer results: x + amount * d exactly on a half -> the even neighbour (numpy.rint), and beyond the
    dtype's range -> clipped, in the vector body and the scalar tail alike (rows of 131)."""
    from medfuse.kernels import _convolve_plan as plan

    # Columns of constants 500..630: along y the blur of a constant is c * sum(taps) in float32, off by a
    # few ulp (2^-14 here); amount 2^13 turns those into halves. Sigma 1.7: the baseline path's sums are
    # exact for more sigmas than the AVX paths' (at 1.3 it has no halves); 1.7 gives halves on every path.
    y = np.repeat(np.arange(500, 631, dtype=np.int16)[None, :], 9, axis=0)
    amount = 2.0**13
    t = y + amount * (y - medfuse.gaussian(y, (1.7, 0.0)).astype(np.float64))
    ties = np.abs(t - np.floor(t) - 0.5) == 0
    assert ties.sum() > 10  # the case really has halves to round
    for dtype in (np.int16, np.uint16):
        x = y.astype(dtype)
        got = medfuse.unsharp_mask(x, (1.7, 0.0), amount)
        np.testing.assert_array_equal(got, plan.unsharp_combine(x, medfuse.gaussian(x, (1.7, 0.0)), amount, 0.0))
        np.testing.assert_array_equal(got[ties], np.rint(t[ties]).astype(dtype))
    rng = np.random.default_rng(3)
    for dtype in (np.uint8, np.uint16, np.int16):
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, (7, 131), dtype=dtype, endpoint=True)
        for amount in (0.5, 1.5, 2.5, 40.0, -40.0):
            want = plan.unsharp_combine(x, medfuse.gaussian(x, 0.8), amount, 0.0)
            got = medfuse.unsharp_mask(x, 0.8, amount)
            np.testing.assert_array_equal(got, want)
        assert got.min() == info.min and got.max() == info.max  # clipped both ways at amount -40
