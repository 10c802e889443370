"""medfuse.convolve and medfuse.sep_filter against their NumPy twins,
cv2.filter2D / cv2.sepFilter2D and scipy.ndimage.correlate; invariants,
refusals, threads and SIMD dispatch.

Float results are compared with a tolerance of 1e-5 * (|kernel| ⊛ |image|)
per pixel: medfuse sums in float32 (FMA on AVX2), the twin in float64, cv2
in float32 or by DFT for large kernels. Integer outputs may differ by 1 where
a float32 sum sits at a rounding tie.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import images
import medfuse
import medfuse.reference as ref
from strategies import correlate_padded, image_views

ndi = pytest.importorskip("scipy.ndimage")

BORDERS = ["reflect101", "reflect", "replicate", "constant", "wrap"]
SCIPY = {"reflect101": "mirror", "reflect": "reflect", "replicate": "nearest", "constant": "constant",
         "wrap": "grid-wrap"}
TAME = ("natural", "ct", "noise", "constant", "blocks")
RTOL = 1e-5


def _bound(x, k, border, value=0.0):
    """1e-5 * (|k| ⊛ |x|) per pixel, plus a floor for tiny sums."""
    # np.pad, not scipy.ndimage.correlate: scipy is wrong for mode "reflect"
    # once a kernel axis is >= 8x the image axis (test_scipy_reflect_limit)
    mag = correlate_padded(np.abs(np.asarray(x, dtype=np.float64)), np.abs(k), border, abs(value))
    return RTOL * mag + 1e-30


def scipy_in_range(x, k, border):
    """Whether scipy.ndimage.correlate is right for this case (test_scipy_reflect_limit)."""
    return border != "reflect" or all(kn < 8 * xn for kn, xn in zip(np.shape(k), np.shape(x)))


def _sep_bound(x, ks, border, value=0.0):
    full = ks[0]
    for k in ks[1:]:
        full = np.multiply.outer(full, k)
    return _bound(x, np.asarray(full, dtype=np.float64), border, value)


def assert_close(got, want, bound):
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    if got.dtype.kind in "ui":
        assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max(initial=0) <= 1
        return
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = ~(diff <= bound)
    assert not bad.any(), f"{bad.sum()} pixels off; worst {diff[bad].max()} vs bound {bound[bad].min()}"


def out_dtypes(x):
    return st.sampled_from([None, np.float32, np.float64, x.dtype])


@st.composite
def kernels_for(draw, ndim, max_side):
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(ndim))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "int", "sparse"]))
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "int":
        return rng.integers(-3, 4, shape).astype(np.float64)
    k = rng.standard_normal(shape) * (rng.random(shape) < 0.2)
    return k


# ---- vs twin -------------------------------------------------------------------------
@given(data=st.data())
def test_convolve_2d_matches_twin(data):
    x = data.draw(image_views(ndim=2, families=TAME, max_side=40))
    k = data.draw(kernels_for(2, 31))
    border = data.draw(st.sampled_from(BORDERS))
    value = data.draw(st.sampled_from([0.0, 3.5, -100.0]))
    out = data.draw(out_dtypes(x))
    got = medfuse.convolve(x, k, border=border, value=value, out_dtype=out)
    want = ref.convolve(x, k, border=border, value=value, out_dtype=out)
    assert_close(got, want, _bound(x, k, border, value))


@given(data=st.data())
def test_convolve_3d_matches_twin_and_scipy(data):
    x = data.draw(image_views(ndim=3, families=TAME, max_side=12))
    k = data.draw(kernels_for(3, 7))
    border = data.draw(st.sampled_from(BORDERS))
    value = data.draw(st.sampled_from([0.0, 2.0]))
    got = medfuse.convolve(x, k, border=border, value=value)
    want = ref.convolve(x, k, border=border, value=value)
    b = _bound(x, k, border, value)
    assert_close(got, want, b)
    assert_close(got, correlate_padded(x, k, border, value).astype(got.dtype), b)
    if scipy_in_range(x, k, border):
        sc = ndi.correlate(np.asarray(x, dtype=np.float64), k, mode=SCIPY[border], cval=value)
        assert_close(got, sc.astype(got.dtype), b)


@given(data=st.data())
def test_sep_filter_matches_twin(data):
    nd = data.draw(st.sampled_from([2, 3]))
    x = data.draw(image_views(ndim=nd, families=TAME, max_side=40 if nd == 2 else 14))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    sym = data.draw(st.booleans())
    ks = []
    for _ in range(nd):
        n = data.draw(st.integers(1, 31 if nd == 2 else 9))
        k = rng.standard_normal(n)
        if sym:
            k = k + k[::-1]
        ks.append(k)
    border = data.draw(st.sampled_from(BORDERS))
    value = data.draw(st.sampled_from([0.0, 7.0]))
    out = data.draw(out_dtypes(x))
    got = medfuse.sep_filter(x, ks, border=border, value=value, out_dtype=out)
    want = ref.sep_filter(x, ks, border=border, value=value, out_dtype=out)
    b = _sep_bound(x, ks, border, value)
    assert_close(got, want, b)
    # the separable filter is the dense correlation with the outer product
    full = ks[0]
    for k in ks[1:]:
        full = np.multiply.outer(full, k)
    dense = ref.convolve(x, full, border=border, value=value, out_dtype=out)
    assert_close(got, dense, b)


# ---- vs OpenCV -------------------------------------------------------------------------
CV_BORDERS = ["reflect101", "reflect", "replicate", "constant"]


def _cv_bound(x, k, border):
    """cv2.filter2D uses a DFT for kernels of 11x11 and more: its rounding error
    is spread over the whole (padded) image, so the tolerance adds 1e-5 of the
    largest sum and float32's epsilon times max|x| * sum|k| (the scale of every
    DFT term: a pixel whose exact sum is 0, e.g. a 1x1 image under a zero
    kernel centre with a constant border, still gets ~1e-5 from cv2)."""
    b = _bound(x, k, border)
    if max(k.shape) >= 11 or k.size >= 50:
        scale = float(np.abs(np.asarray(x, dtype=np.float64)).max(initial=0.0)) * float(np.abs(k).sum())
        b = b + b.max() + float(np.finfo(np.float32).eps) * scale
    return b


def _cv_border(cv2, name):
    return {"reflect101": cv2.BORDER_REFLECT_101, "reflect": cv2.BORDER_REFLECT,
            "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}[name]


@given(data=st.data())
def test_convolve_matches_cv2_filter2d(cv2, data):
    dt = data.draw(st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64]))
    x = data.draw(image_views(dtype=dt, ndim=2, families=TAME, max_side=48))
    k = data.draw(kernels_for(2, 31))
    border = data.draw(st.sampled_from(CV_BORDERS))
    got = medfuse.convolve(x, k, border=border)
    xc = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
    ddepth = cv2.CV_64F if dt == np.float64 else cv2.CV_32F
    kk = k.astype(np.float64 if dt == np.float64 else np.float32)
    want = cv2.filter2D(xc, ddepth, kk, borderType=_cv_border(cv2, border))
    assert_close(got, want, _cv_bound(xc, k, border))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16])
def test_convolve_saturating_output_equals_cv2(cv2, dtype):
    """Integer kernels on integer images: exact float32 sums, so out_dtype=input equals cv2's ddepth=-1."""
    x = images.make("natural", (57, 63), dtype, seed=3)
    k = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float64)
    got = medfuse.convolve(x, k, out_dtype=x.dtype)
    want = cv2.filter2D(x, -1, k.astype(np.float32))
    np.testing.assert_array_equal(got, want)
    half = medfuse.convolve(x, np.full((1, 2), 0.5), out_dtype=x.dtype)
    np.testing.assert_array_equal(half, cv2.filter2D(x, -1, np.full((1, 2), 0.5, np.float32)))


@pytest.mark.parametrize("ksize", [(2, 2), (4, 3), (1, 4), (6, 1), (8, 8)])
def test_even_kernels_anchor_like_cv2(cv2, ksize):
    x = images.make("natural", (33, 41), np.float32, seed=ksize[0])
    k = np.random.default_rng(1).standard_normal(ksize)
    got = medfuse.convolve(x, k)
    want = cv2.filter2D(x, -1, k.astype(np.float32))
    assert_close(got, want, _bound(x, k, "reflect101"))


@pytest.mark.parametrize("border", CV_BORDERS)
def test_kernel_larger_than_image_like_cv2(cv2, border):
    """cv2 accepts kernels larger than the image (the border rule repeats); so do we."""
    x = images.make("noise", (3, 4), np.float32, seed=1)
    k = np.random.default_rng(2).standard_normal((9, 11))
    got = medfuse.convolve(x, k, border=border)
    want = cv2.filter2D(x, -1, k.astype(np.float32), borderType=_cv_border(cv2, border))
    assert_close(got, want, _cv_bound(x, k, border))


@given(data=st.data())
def test_sep_filter_matches_cv2_sepfilter2d(cv2, data):
    x = data.draw(image_views(dtype=np.float32, ndim=2, families=TAME, max_side=48))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    ky = rng.standard_normal(data.draw(st.integers(1, 15)))
    kx = rng.standard_normal(data.draw(st.integers(1, 15)))
    border = data.draw(st.sampled_from(CV_BORDERS))
    got = medfuse.sep_filter(x, [ky, kx], border=border)
    xc = np.ascontiguousarray(x, dtype=np.float32)
    want = cv2.sepFilter2D(xc, -1, kx.astype(np.float32), ky.astype(np.float32), borderType=_cv_border(cv2, border))
    assert_close(got, want, _sep_bound(xc, [ky, kx], border))


# ---- invariants ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", images.DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (4, 6, 9)])
@pytest.mark.parametrize("border", BORDERS)
def test_delta_kernel_is_identity(dtype, shape, border):
    x = images.make("extremes", shape, dtype, seed=2)
    for ks in [(1,) * len(shape), (3,) * len(shape), (5, 4, 3)[: len(shape)]]:
        k = np.zeros(ks)
        k[tuple(s // 2 for s in ks)] = 1.0
        got = medfuse.convolve(x, k, border=border, out_dtype=x.dtype)
        np.testing.assert_array_equal(got, x)
        got = medfuse.sep_filter(x, [np.eye(s)[s // 2] for s in ks], border=border, out_dtype=x.dtype)
        np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("shape", [(16, 20), (6, 9, 11)])
def test_wrap_preserves_sum_for_normalised_kernels(shape):
    x = images.make("natural", shape, np.float64, seed=4)
    rng = np.random.default_rng(5)
    k = rng.random((5, 3, 4)[: len(shape)])
    k /= k.sum()
    got = medfuse.convolve(x, k, border="wrap")
    assert got.sum() == pytest.approx(x.sum(), rel=1e-12)
    g = medfuse.gaussian(x, 1.5, border="wrap")
    assert g.sum() == pytest.approx(x.sum(), rel=1e-12)


def test_linearity():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((30, 40))
    b = rng.standard_normal((30, 40))
    k = rng.standard_normal((5, 5))
    lhs = medfuse.convolve(2.0 * a - 3.0 * b, k)
    rhs = 2.0 * medfuse.convolve(a, k) - 3.0 * medfuse.convolve(b, k)
    np.testing.assert_allclose(lhs, rhs, atol=1e-12)


def test_shift_kernel_moves_image():
    """A delta off centre reads x[p + offset - k//2]: catches an anchor bug the twin could share."""
    x = np.arange(5 * 6, dtype=np.float64).reshape(5, 6)
    k = np.zeros((3, 3))
    k[2, 0] = 1.0  # offset (+1, -1)
    got = medfuse.convolve(x, k, border="constant", value=-1.0)
    want = np.full_like(x, -1.0)
    want[:-1, 1:] = x[1:, :-1]
    np.testing.assert_array_equal(got, want)


def test_constant_border_value():
    x = np.zeros((4, 4), np.uint8)
    got = medfuse.convolve(x, np.ones((3, 3)), border="constant", value=2.0)
    assert got[0, 0] == 10.0 and got[1, 1] == 0.0 and got[0, 1] == 6.0
    sep = medfuse.sep_filter(x, [np.ones(3), np.ones(3)], border="constant", value=2.0)
    np.testing.assert_array_equal(sep, got)


def test_nan_propagates_through_nonzero_taps_only():
    x = np.ones((7, 7), np.float32)
    x[3, 3] = np.nan
    got = medfuse.convolve(x, np.array([[0.0, 1.0, 0.0]]))
    assert np.isnan(got[3, 3]) and np.isnan(got).sum() == 1
    got = medfuse.convolve(x, np.ones((3, 3)))
    assert np.isnan(got).sum() == 9


def test_float32_overflow_gives_inf():
    """float32 sums: a sum beyond float32's range is inf (as cv2); float64 output keeps it."""
    x = np.full((4, 4), np.finfo(np.float32).max, np.float32)
    assert np.isinf(medfuse.convolve(x, np.ones((3, 3)))).all()
    assert np.isfinite(medfuse.convolve(x, np.ones((3, 3)), out_dtype=np.float64)).all()


def test_output_dtypes():
    for dt, want in [(np.uint8, np.float32), (np.uint16, np.float32), (np.int16, np.float32),
                     (np.float32, np.float32), (np.float64, np.float64)]:
        x = np.ones((3, 3), dt)
        assert medfuse.convolve(x, np.ones((1, 1))).dtype == want
        assert medfuse.sep_filter(x, [[1.0], [1.0]]).dtype == want
        assert medfuse.convolve(x, np.ones((1, 1)), out_dtype=dt).dtype == dt


def test_saturation_and_rounding():
    x = np.array([[100, 200, 250]], np.uint8)
    got = medfuse.convolve(x, np.array([[2.0]]), out_dtype=np.uint8)
    np.testing.assert_array_equal(got, [[200, 255, 255]])
    got = medfuse.convolve(np.array([[1, 3, 5]], np.int16), np.array([[-0.5]]), out_dtype=np.int16)
    np.testing.assert_array_equal(got, [[0, -2, -2]])  # half to even


# ---- the references' own range -------------------------------------------------------------
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape,kshape", [((5, 6), (3, 5)), ((2, 7), (16, 3)), ((3, 4), (25, 1)), ((1, 3, 2), (9, 2, 17)),
                                           ((4, 1), (4, 4)), ((2, 9), (1, 1))])
def test_correlate_padded_is_a_reference(shape, kshape, border):
    """The np.pad reference used for the bounds: the NumPy twin everywhere, and
    scipy.ndimage.correlate wherever scipy is in range."""
    rng = np.random.default_rng(sum(shape) + 7 * sum(kshape))
    x = rng.standard_normal(shape)
    k = rng.standard_normal(kshape)
    got = correlate_padded(x, k, border, 2.5)
    np.testing.assert_allclose(got, ref.convolve(x, k, border=border, value=2.5), rtol=1e-12, atol=1e-12)
    if scipy_in_range(x, k, border):
        np.testing.assert_allclose(got, ndi.correlate(x, k, mode=SCIPY[border], cval=2.5), rtol=1e-12, atol=1e-12)


_SCIPY_REFLECT = r"""
import json
import numpy as np
from scipy import ndimage as ndi
rng = np.random.default_rng(0)
wrong = []
for rows in (2, 3, 4):
    x = rng.standard_normal((rows, 9))
    for taps in range(4 * rows, 12 * rows):
        k = rng.standard_normal((taps, 3))
        xp = np.pad(x, [(taps // 2, taps - 1 - taps // 2), (1, 1)], mode="symmetric")
        want = np.tensordot(np.lib.stride_tricks.sliding_window_view(xp, k.shape), k, axes=2)
        got = ndi.correlate(x, k, mode="reflect")
        if not np.allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=False):
            wrong.append([rows, taps])
print(json.dumps(wrong))
"""


def test_scipy_reflect_limit():
    """Documents why the bounds above use np.pad: scipy 1.17.1's n-D
    ndimage.correlate in mode="reflect" is wrong (an out-of-bounds heap read in
    NI_Correlate: NaN or garbage such as -1.9e54) exactly when a kernel axis is
    >= 8x the image axis (16 taps on 2 rows, 24 on 3, 32 on 4); correlate1d and
    the other modes are right. Run in a subprocess: the bad read must not touch
    this interpreter. Skipped once scipy gets it right."""
    import scipy

    run = subprocess.run([sys.executable, "-c", _SCIPY_REFLECT], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    wrong = [tuple(w) for w in json.loads(run.stdout)]
    if not wrong:
        pytest.skip(f"scipy {scipy.__version__}: n-D correlate in mode='reflect' is right for long kernels")
    assert not [w for w in wrong if w[1] < 8 * w[0]], f"scipy wrong below 8x too: {wrong}"


# ---- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [medfuse.convolve, ref.convolve])
def test_refusals_convolve(fn):
    x = np.zeros((5, 5), np.float32)
    with pytest.raises(TypeError, match="image"):
        fn(np.zeros((5, 5), np.int32), np.ones((3, 3)))
    with pytest.raises(TypeError, match="image"):
        fn(np.zeros((5, 5), bool), np.ones((3, 3)))
    with pytest.raises(ValueError, match="image"):
        fn(np.zeros(5, np.float32), np.ones(3))
    with pytest.raises(ValueError, match="image"):
        fn(np.zeros((0, 5), np.float32), np.ones((1, 1)))
    with pytest.raises(ValueError, match="kernel"):
        fn(x, np.ones(3))
    with pytest.raises(ValueError, match="kernel"):
        fn(x, np.ones((0, 3)))
    with pytest.raises(ValueError, match="kernel"):
        fn(x, np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="kernel"):
        fn(x, np.array([[1.0, np.inf]]))
    with pytest.raises(TypeError, match="kernel"):
        fn(x, np.ones((2, 2), complex))
    with pytest.raises(ValueError, match="kernel"):
        fn(x, np.ones((1025, 1025)))
    with pytest.raises(ValueError, match="border"):
        fn(x, np.ones((3, 3)), border="mirror")
    with pytest.raises(ValueError, match="value"):
        fn(x, np.ones((3, 3)), border="constant", value=np.nan)
    with pytest.raises(ValueError, match="out_dtype"):
        fn(x, np.ones((3, 3)), out_dtype=np.uint8)
    with pytest.raises(TypeError, match="out_dtype"):
        fn(x, np.ones((3, 3)), out_dtype=object())


@pytest.mark.parametrize("fn", [medfuse.sep_filter, ref.sep_filter])
def test_refusals_sep_filter(fn):
    x = np.zeros((5, 5), np.float32)
    with pytest.raises(ValueError, match="kernels"):
        fn(x, [np.ones(3)])
    with pytest.raises(TypeError, match="kernels"):
        fn(x, np.ones(3))
    with pytest.raises(ValueError, match="kernels"):
        fn(x, [np.ones(3), np.ones((3, 1))])
    with pytest.raises(ValueError, match="kernels"):
        fn(x, [np.ones(3), []])
    with pytest.raises(ValueError, match="kernels"):
        fn(x, [np.ones(3), [np.nan]])
    with pytest.raises(TypeError, match="kernels"):
        fn(x, 3)
    with pytest.raises(ValueError, match="border"):
        fn(x, [np.ones(3), np.ones(3)], border="wrapped")


def test_core_rechecks_arguments():
    from medfuse import _core

    x = np.zeros((5, 5), np.float32)
    with pytest.raises(TypeError):
        _core.correlate_f32(x.astype(np.float64), np.ones((3, 3)), 0, 0.0, 0, False, 1)
    with pytest.raises(TypeError):
        _core.correlate_f32(x[:, ::2], np.ones((3, 3)), 0, 0.0, 0, False, 1)
    with pytest.raises(ValueError, match="border"):
        _core.correlate_f32(x, np.ones((3, 3)), 9, 0.0, 0, False, 1)
    with pytest.raises(ValueError, match="kernel"):
        _core.correlate_f32(x, np.ones(3), 0, 0.0, 0, False, 1)
    with pytest.raises(ValueError, match="kernel"):
        _core.correlate_f32(x, np.full((3, 3), np.nan), 0, 0.0, 0, False, 1)
    with pytest.raises(ValueError, match="threads"):
        _core.sep_filter_f32(x, [np.ones(3), np.ones(3)], 0, 0.0, 0, False, 0)
    with pytest.raises(ValueError, match="kernels"):
        _core.sep_filter_f32(x, [np.ones(3)], 0, 0.0, 0, False, 1)


# ---- threads and dispatch ----------------------------------------------------------------------
def _thread_cases():
    return [
        (images.make("natural", (517, 389), np.float32, seed=1), "conv"),
        (images.make("ct", (21, 97, 83), np.int16, seed=2), "conv"),
        (images.make("natural", (1031, 777), np.uint8, seed=3), "sep"),
        (images.make("ct", (37, 131, 120), np.float64, seed=4), "sep"),
    ]


def _run_case(x, kind):
    rng = np.random.default_rng(7)
    if kind == "conv":
        return medfuse.convolve(x, rng.standard_normal((5,) * x.ndim), border="reflect")
    return medfuse.sep_filter(x, [rng.standard_normal(7) for _ in range(x.ndim)], border="wrap")


def test_thread_count_invariance():
    for x, kind in _thread_cases():
        results = []
        for n in (1, 2, 7):
            medfuse.set_num_threads(n)
            results.append(_run_case(x, kind))
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])


def test_python_threads_concurrently_equal_serial():
    medfuse.set_num_threads(2)
    cases = _thread_cases()
    serial = [_run_case(x, kind) for x, kind in cases]
    results = [None] * (2 * len(cases))

    def work(i):
        x, kind = cases[i % len(cases)]
        results[i] = _run_case(x, kind)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r, serial[i % len(cases)])


_DISPATCH = r"""
import json
import numpy as np
import medfuse, medfuse.reference as ref
from scipy import ndimage as ndi
worst = 0.0
cases = 0
rng = np.random.default_rng(0)
modes = {"reflect101": "mirror", "constant": "constant", "wrap": "grid-wrap"}
for shape in [(1, 1), (3, 17), (9, 31), (16, 33), (7, 65), (5, 4, 37), (6, 11, 64)]:
    for dt in (np.uint8, np.int16, np.float32, np.float64):
        x = (rng.random(shape) * 200).astype(dt)
        for n in (1, 2, 5, 9):
            ks = [rng.standard_normal(n) for _ in shape]
            dense = ks[0]
            for k in ks[1:]:
                dense = np.multiply.outer(dense, k)
            for border, mode in modes.items():
                b = 1e-5 * ndi.correlate(np.abs(x.astype(float)), np.abs(dense), mode=mode) + 1e-30
                for got, want in [
                    (medfuse.convolve(x, dense, border=border), ref.convolve(x, dense, border=border)),
                    (medfuse.sep_filter(x, ks, border=border), ref.sep_filter(x, ks, border=border)),
                ]:
                    cases += 1
                    worst = max(worst, float((np.abs(got.astype(float) - want.astype(float)) / b).max()))
print(json.dumps({"active": medfuse.build_info()["simd_active"], "cases": cases, "worst": worst}))
"""


def _available_paths():
    info = medfuse.build_info()
    return [p for p in info["simd_compiled"] if p in info["simd_supported"]]


@pytest.mark.parametrize("path", _available_paths())
def test_each_simd_path_matches_twin(path):
    env = dict(os.environ, MEDFUSE_SIMD=path)
    proc = subprocess.run([sys.executable, "-c", _DISPATCH], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["active"] == path
    assert out["cases"] > 100
    assert out["worst"] <= 1.0


def test_simd_paths_agree_on_large_image():
    """baseline and avx2 (FMA) differ by rounding only."""
    paths = _available_paths()
    if len(paths) < 2:
        pytest.skip("only one SIMD path on this CPU")
    code = (
        "import numpy as np, medfuse, sys\n"
        "x = np.random.default_rng(1).random((67, 301)).astype(np.float32)\n"
        "k = np.random.default_rng(2).standard_normal((5, 5))\n"
        "np.save(sys.argv[1], np.stack([medfuse.convolve(x, k), medfuse.gaussian(x, 2.0)]))\n"
    )
    import tempfile

    res = []
    with tempfile.TemporaryDirectory() as d:
        for p in paths[:2]:
            f = os.path.join(d, p + ".npy")
            env = dict(os.environ, MEDFUSE_SIMD=p)
            proc = subprocess.run([sys.executable, "-c", code, f], env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            res.append(np.load(f))
    np.testing.assert_allclose(res[0], res[1], rtol=1e-5, atol=1e-4)


def test_avx512_same_bits_as_avx2():
    """AVX-512 runs the AVX2 chain per output (c0 x0, then one FMA per tap) in wider vectors: same bits."""
    paths = _available_paths()
    if "avx512" not in paths or "avx2" not in paths:
        pytest.skip("needs a CPU with avx2 and avx512")
    code = (
        "import numpy as np, medfuse, sys\n"
        "rng = np.random.default_rng(1)\n"
        "x = rng.random((67, 301)).astype(np.float32)\n"
        "v = rng.random((9, 23, 150))\n"
        "k = rng.standard_normal((5, 5))\n"
        "out = [medfuse.convolve(x, k), medfuse.gaussian(x, 2.0), medfuse.gaussian(v, 1.5),\n"
        "       medfuse.sep_filter(x.astype(np.float64), [rng.standard_normal(4), rng.standard_normal(7)])]\n"
        "np.save(sys.argv[1], np.concatenate([o.ravel().astype(np.float64) for o in out]))\n"
    )
    import tempfile

    res = []
    with tempfile.TemporaryDirectory() as d:
        for p in ("avx2", "avx512"):
            f = os.path.join(d, p + ".npy")
            env = dict(os.environ, MEDFUSE_SIMD=p)
            proc = subprocess.run([sys.executable, "-c", code, f], env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            res.append(np.load(f))
    np.testing.assert_array_equal(res[0], res[1])
