"""medfuse.sobel: against its NumPy twin, cv2.Sobel (2D) and scipy.ndimage (2D/3D)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from scipy import ndimage

import images
import medfuse
import medfuse.reference as ref
import strategies as S
from medfuse.kernels._edges_plan import SOBEL_DERIV, SOBEL_SMOOTH
from simd_paths import TESTS, run_on_path, simd_paths

_CV2_BORDER = {"reflect101": "BORDER_REFLECT_101", "replicate": "BORDER_REPLICATE"}
_SCIPY_MODE = {"reflect101": "mirror", "replicate": "nearest"}


def ref_sobel(x, **kw):
    with np.errstate(over="ignore", invalid="ignore"):  # float64 extremes overflow to inf
        return ref.sobel(x, **kw)


def expected_dtype(dtype, ndim, aperture):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    if ndim == 3 and aperture == 7 and dtype != np.uint8:
        return np.dtype(np.int64)
    return np.dtype(np.int32)


def assert_same_gradients(got, want):
    assert isinstance(got, tuple) and len(got) == len(want)
    for axis, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype, f"axis {axis}: dtype {g.dtype}, want {w.dtype}"
        assert g.shape == w.shape
        if not np.array_equal(g, w, equal_nan=g.dtype.kind == "f"):
            bad = np.argwhere(~((g == w) | (np.isnan(g) & np.isnan(w)) if g.dtype.kind == "f" else g == w))
            i = tuple(bad[0])
            raise AssertionError(f"axis {axis}: {len(bad)} values differ; first at {list(i)}: got {g[i]!r}, want {w[i]!r}")


def scipy_sobel(x, aperture, border):
    """Independent Sobel: separable correlation with scipy.ndimage in float64."""
    x = np.asarray(x, dtype=np.float64)
    out = []
    for axis in range(x.ndim):
        g = x
        for ax in range(x.ndim):
            taps = SOBEL_DERIV[aperture] if ax == axis else SOBEL_SMOOTH[aperture]
            g = ndimage.correlate1d(g, np.asarray(taps, dtype=np.float64), axis=ax, mode=_SCIPY_MODE[border])
        out.append(g)
    return out


# ---------------------------------------------------------------------------
# kernel == twin


@given(x=S.image_views(), aperture=S.apertures, border=S.borders)
def test_matches_reference_property(x, aperture, border):
    got = medfuse.sobel(x, aperture_size=aperture, border=border)
    assert_same_gradients(got, ref_sobel(x, aperture_size=aperture, border=border))


@pytest.mark.parametrize("border", ["reflect101", "replicate"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", images.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("family", list(images.FAMILIES))
def test_matches_reference_families(family, dtype, ndim, border):
    shape = (37, 41) if ndim == 2 else (7, 19, 16)
    x = images.make(family, shape, dtype, seed=ndim)
    for aperture in (3, 5, 7):
        got = medfuse.sobel(x, aperture_size=aperture, border=border)
        assert_same_gradients(got, ref_sobel(x, aperture_size=aperture, border=border))


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", images.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("aperture", [3, 5, 7])
def test_output_dtypes_and_shapes(dtype, ndim, aperture):
    shape = (6, 5) if ndim == 2 else (3, 6, 5)
    x = images.make("noise", shape, dtype, seed=1)
    before = x.copy()
    out = medfuse.sobel(x, aperture_size=aperture)
    assert isinstance(out, tuple) and len(out) == ndim
    for g in out:
        assert g.dtype == expected_dtype(dtype, ndim, aperture)
        assert g.shape == x.shape
        assert not np.shares_memory(g, x)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16], ids=["uint16", "int16"])
def test_wide_3d_aperture7_does_not_overflow(dtype):
    """The largest 16-bit steps: sums beyond int32 must come out exact (int64)."""
    info = np.iinfo(dtype)
    x = np.full((9, 9, 9), info.min, dtype=dtype)
    x[4:, 4:, 4:] = info.max
    for border in ("reflect101", "replicate"):
        got = medfuse.sobel(x, aperture_size=7, border=border)
        want = scipy_sobel(x, 7, border)
        assert max(np.abs(w).max() for w in want) > 2**31  # the case is really out of int32 range
        for g, w in zip(got, want):
            assert g.dtype == np.int64
            assert np.array_equal(g, w.astype(np.int64))


@pytest.mark.parametrize("ndim", [2, 3])
def test_float32_beyond_2_100_sums_in_float64(ndim):
    """float32 data sums in float32 (as cv2) unless some |x| > 2^100: 1e38 would overflow a float32 sum
    (1e38 + 2e38 + 1e38 = inf, and inf - inf = NaN), so such data sums in float64 and stays finite."""
    shape = (6, 7) if ndim == 2 else (5, 6, 7)
    x = np.full(shape, 1e38, np.float32)
    x[..., 3:] = np.float32(9e37)
    got = medfuse.sobel(x)
    want = scipy_sobel(x, 3, "reflect101")
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and np.isfinite(g).all()
        np.testing.assert_array_equal(g, w.astype(np.float32))  # float64 sums of these, then rounded once
    small = (x / np.float32(1e8)).astype(np.float32)  # |x| <= 2^100: float32 sums, still equal to the twin
    assert_same_gradients(medfuse.sobel(small), ref_sobel(small))


# ---------------------------------------------------------------------------
# independent references: scipy.ndimage (2D and 3D) and cv2.Sobel (2D)


@pytest.mark.parametrize("border", ["reflect101", "replicate"])
@pytest.mark.parametrize("aperture", [3, 5, 7])
@pytest.mark.parametrize("dtype", images.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(31, 26), (1, 9), (9, 1), (1, 1), (11, 13, 12), (1, 5, 6), (4, 1, 1)])
def test_matches_scipy(shape, dtype, aperture, border):
    family = "natural" if np.dtype(dtype).kind in "ui" else "ct"
    x = images.make(family, shape, dtype, seed=3)
    got = medfuse.sobel(x, aperture_size=aperture, border=border)
    want = scipy_sobel(x, aperture, border)
    for g, w in zip(got, want):
        if g.dtype.kind in "iu":
            assert np.array_equal(g, w.astype(g.dtype))  # integer sums are exact in float64
        else:
            scale = np.abs(x).max() * sum(map(abs, SOBEL_DERIV[aperture])) * sum(SOBEL_SMOOTH[aperture]) ** (x.ndim - 1)
            eps = np.finfo(g.dtype).eps * 8
            np.testing.assert_allclose(g, w, rtol=0, atol=eps * scale + 1e-300)


def _cv2_sobel(cv2, x, ddepth, aperture, border, axis):
    dx, dy = (1, 0) if axis == 1 else (0, 1)
    x = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))  # cv2 ignores byte order
    return cv2.Sobel(x, ddepth, dx, dy, ksize=aperture, borderType=getattr(cv2, _CV2_BORDER[border]))


@given(x=S.image_views(np.uint8, 2), aperture=S.apertures, border=S.borders)
def test_uint8_matches_cv2_property(cv2, x, aperture, border):
    gy, gx = medfuse.sobel(x, aperture_size=aperture, border=border)
    for axis, g in ((0, gy), (1, gx)):
        want = _cv2_sobel(cv2, x, cv2.CV_32F, aperture, border, axis)
        assert g.dtype == np.int32
        assert np.array_equal(g, want.astype(np.int64)), f"axis {axis}"


@pytest.mark.parametrize("border", ["reflect101", "replicate"])
@pytest.mark.parametrize("aperture", [3, 5, 7])
@pytest.mark.parametrize("family", list(images.FAMILIES))
def test_uint8_matches_cv2_families(cv2, family, aperture, border):
    for shape in [(64, 64), (33, 70), (200, 131)]:
        x = images.make(family, shape, np.uint8, seed=4)
        gy, gx = medfuse.sobel(x, aperture_size=aperture, border=border)
        assert np.array_equal(gx, _cv2_sobel(cv2, x, cv2.CV_32F, aperture, border, 1))
        assert np.array_equal(gy, _cv2_sobel(cv2, x, cv2.CV_32F, aperture, border, 0))


def test_default_border_is_cv2_default(cv2, natural_image):
    gy, gx = medfuse.sobel(natural_image)
    assert np.array_equal(gx, cv2.Sobel(natural_image, cv2.CV_32F, 1, 0, ksize=3))
    assert np.array_equal(gy, cv2.Sobel(natural_image, cv2.CV_32F, 0, 1, ksize=3))


@pytest.mark.parametrize("aperture", [3, 5, 7])
def test_uint8_matches_cv2_tiny(cv2, tiny_image, aperture):
    for border in ("reflect101", "replicate"):
        gy, gx = medfuse.sobel(tiny_image, aperture_size=aperture, border=border)
        assert np.array_equal(gx, _cv2_sobel(cv2, tiny_image, cv2.CV_32F, aperture, border, 1))
        assert np.array_equal(gy, _cv2_sobel(cv2, tiny_image, cv2.CV_32F, aperture, border, 0))


@given(
    x=S.image_views(np.float32, 2, families=images.TAME_FAMILIES),
    aperture=S.apertures,
    border=S.borders,
)
def test_float32_matches_cv2_property(cv2, x, aperture, border):
    _check_float_vs_cv2(cv2, x, aperture, border, cv2.CV_32F, 1e-5)


@pytest.mark.parametrize("border", ["reflect101", "replicate"])
@pytest.mark.parametrize("aperture", [3, 5, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_float_matches_cv2_families(cv2, dtype, aperture, border):
    depth, rtol = (cv2.CV_32F, 1e-5) if dtype == np.float32 else (cv2.CV_64F, 1e-12)
    for family in images.TAME_FAMILIES:
        x = images.make(family, (57, 83), dtype, seed=5)
        _check_float_vs_cv2(cv2, x, aperture, border, depth, rtol)


def _check_float_vs_cv2(cv2, x, aperture, border, depth, rtol):
    """Equal up to float rounding: |diff| <= rtol * (largest possible |gradient|)."""
    gy, gx = medfuse.sobel(x, aperture_size=aperture, border=border)
    scale = max(float(np.abs(x).max()), 1e-30) * sum(map(abs, SOBEL_DERIV[aperture])) * sum(SOBEL_SMOOTH[aperture])
    for axis, g in ((0, gy), (1, gx)):
        assert g.dtype == x.dtype.newbyteorder("=")
        want = _cv2_sobel(cv2, x, depth, aperture, border, axis)
        np.testing.assert_allclose(g, want, rtol=0, atol=rtol * scale, err_msg=f"axis {axis}")


# ---------------------------------------------------------------------------
# properties


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", images.DTYPES, ids=lambda d: np.dtype(d).name)
def test_constant_has_zero_gradient(dtype, ndim):
    for value in images.extreme_values(dtype):
        if np.dtype(dtype) == np.float64 and abs(value) > 1e300:
            continue  # gradients of +-max overflow the float64 accumulator
        x = np.full((5, 7) if ndim == 2 else (3, 5, 7), value, dtype=dtype)
        for aperture in (3, 5, 7):
            for border in ("reflect101", "replicate"):
                for g in medfuse.sobel(x, aperture_size=aperture, border=border):
                    assert not np.any(g), (value, aperture, border)


@pytest.mark.parametrize("aperture", [3, 5, 7])
def test_linear_ramp_interior(aperture):
    """Interior of a ramp a*z + b*y + c*x: gradients are slope x Sobel gain, per axis."""
    slopes = (3, -2, 5)
    z, y, x = np.indices((12, 13, 14))
    vol = (100 + slopes[0] * z + slopes[1] * y + slopes[2] * x).astype(np.int16)
    r = aperture // 2
    gain = sum(k * t for k, t in enumerate(SOBEL_DERIV[aperture], -r)) * sum(SOBEL_SMOOTH[aperture]) ** 2
    inner = tuple(slice(r, n - r) for n in vol.shape)
    for g, s in zip(medfuse.sobel(vol, aperture_size=aperture), slopes):
        assert np.all(g[inner] == s * gain)


@given(x=S.image_views(), aperture=S.apertures)
def test_input_untouched(x, aperture):
    before = x.copy()
    medfuse.sobel(x, aperture_size=aperture)
    assert np.array_equal(x, before)


# ---------------------------------------------------------------------------
# every SIMD path: the int16 sums of uint8 data (apertures 3 and 5), the explicit-vector 2D loop at
# widths around the vector widths, and the float scan that rides along the first pass

_PATHS_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
import images
import medfuse
import medfuse.reference as ref

bad = []
cases = 0
def same(got, want):
    return all(g.dtype == w.dtype and np.array_equal(g, w, equal_nan=g.dtype.kind == "f") for g, w in zip(got, want))
def check(x, aperture, border, tag):
    global cases
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref.sobel(x, aperture_size=aperture, border=border)
    for n in (1, 3):
        medfuse.set_num_threads(n)
        cases += 1
        if not same(medfuse.sobel(x, aperture_size=aperture, border=border), want):
            bad.append((tag, x.dtype.name, x.shape, aperture, border, n))
rng = np.random.default_rng(5)
for w in list(range(1, 20)) + [31, 32, 33, 47, 48, 63, 64, 65, 66, 97, 129]:
    for h in (1, 2, 3, 6, 17):
        for aperture in (3, 5, 7):
            for border in ("reflect101", "replicate"):
                # the largest uint8 gradients: 0/255 stripes and a checkerboard
                stripes = np.where((np.arange(w) // 2) % 2 == 0, 0, 255).astype(np.uint8)[None, :].repeat(h, 0)
                check(stripes, aperture, border, "stripes-x")
                check(np.ascontiguousarray(stripes.T), aperture, border, "stripes-y")
                check(((np.indices((h, w)).sum(0) % 2) * 255).astype(np.uint8), aperture, border, "checker")
                check(rng.integers(0, 256, (h, w), dtype=np.uint8), aperture, border, "noise")
                f = rng.normal(0, 100, (h, w)).astype(np.float32)
                check(f, aperture, border, "f32")
                check(f.astype(np.float64), aperture, border, "f64")
    # float32 beyond 2^100 anywhere (last lanes, border column; a row of a 4-row pass or of the single-row
    # tail): float64 sums
    for h in (3, 11):
        for pos in ((0, 0), (h - 1, w - 1), (h // 2, w // 2), (h - 2, max(w - 2, 0)), (1, min(1, w - 1))):
            # 2e38 between two -2e38: its x-smoothed sum overflows in float32, not in float64
            f = rng.normal(0, 1, (h, w)).astype(np.float32)
            f[pos] = np.float32(2e38)
            for dc in (-1, 1):
                if 0 <= pos[1] + dc < w:
                    f[pos[0], pos[1] + dc] = np.float32(-2e38)
            for aperture in (3, 5, 7):
                check(f, aperture, "reflect101", "f32-wide")
            # and NaN / inf there: refused
            for value in (np.nan, -np.inf):
                f[pos] = value
                for aperture in (3, 7):
                    for n in (1, 3):
                        medfuse.set_num_threads(n)
                        cases += 1
                        try:
                            medfuse.sobel(f, aperture_size=aperture)
                            bad.append(("not refused", f.shape, pos, aperture, n))
                        except ValueError:
                            pass
x = images.make("extremes", (23, 70), np.uint8, seed=3)
for aperture in (3, 5, 7):
    check(x, aperture, "reflect101", "extremes")
    check(x[::2, 1::3], aperture, "replicate", "view")
print(json.dumps({{"active": medfuse.build_info()["simd_active"], "cases": cases, "bad": bad[:10], "n_bad": len(bad)}}))
"""


@pytest.mark.parametrize("path", simd_paths())
def test_every_simd_path_matches_twin_at_vector_edges(path):
    out = run_on_path(_PATHS_SCRIPT.format(tests=TESTS), path)
    assert out["cases"] > 5000
    assert out["n_bad"] == 0, out["bad"]


_ZERO_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
import medfuse, medfuse.reference as ref
g = np.random.default_rng(5)
bad, cases, neg_zeros = [], 0, 0
for dtype, bits in ((np.float32, np.uint32), (np.float64, np.uint64)):
    for shape in [(1, 1), (3, 40), (21, 37), (9, 70), (4, 5, 33), (6, 18, 19)]:
        x = g.choice(np.array([0.0, -0.0, -0.0, 1.0, -1.0, 0.5], dtype), shape)
        for aperture in (3, 5, 7):
            for border in ("reflect101", "replicate"):
                for n in (1, 3):
                    medfuse.set_num_threads(n)
                    got = medfuse.sobel(x, aperture_size=aperture, border=border)
                    want = ref.sobel(x, aperture_size=aperture, border=border)
                    for a, (gg, w) in enumerate(zip(got, want)):
                        cases += 1
                        neg_zeros += int(np.count_nonzero((gg == 0) & np.signbit(gg)))
                        if not np.array_equal(gg.view(bits), w.view(bits)):
                            bad.append((str(np.dtype(dtype)), shape, aperture, border, n, a))
print(json.dumps({{"active": medfuse.build_info()["simd_active"], "cases": cases, "neg_zeros": neg_zeros,
                  "bad": bad[:10], "n_bad": len(bad)}}))
"""


@pytest.mark.parametrize("path", simd_paths())
def test_signed_zero_sums_bit_identical_to_twin(path):
    # The Sobel sums start from the first tap's product, not from zero (one
    # addition fewer per sum); the twin does the same, so even the sign of a
    # zero result agrees bit for bit on every SIMD path, 2D and 3D.
    out = run_on_path(_ZERO_SCRIPT.format(tests=TESTS), path)
    assert out["neg_zeros"] > 20  # the inputs do produce negative zeros
    assert out["n_bad"] == 0, out["bad"]


def test_signed_zero_inputs_tell_the_two_summation_orders_apart():
    # So the test above would fail if the kernel or the twin summed from zero.
    from medfuse.reference.edges import _gradients

    x = np.random.default_rng(5).choice(np.array([0.0, -0.0, -0.0, 1.0, -1.0, 0.5], np.float32), (21, 37))
    first = _gradients(x, 3, "reflect101", from_first=True)
    zero = _gradients(x, 3, "reflect101", from_first=False)
    assert all(np.array_equal(a, b) for a, b in zip(first, zero))  # equal as numbers
    assert any(not np.array_equal(a.view(np.uint32), b.view(np.uint32)) for a, b in zip(first, zero))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["first", "last", "border-column", "middle"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_refused_wherever_it_is(dtype, where, value):
    """The finiteness check rides along the first pass: a NaN/inf anywhere (the last lanes of a row, a
    column only a border reads as a neighbour, another thread's band) is still refused, 1 and 2 threads."""
    x = np.random.default_rng(0).normal(0, 1, (300, 257)).astype(dtype)
    pos = {"first": (0, 0), "last": (299, 256), "border-column": (150, 256), "middle": (151, 128)}[where]
    x[pos] = value
    before = medfuse.get_num_threads()
    try:
        for n in (1, 2):
            medfuse.set_num_threads(n)
            for aperture in (3, 7):
                with pytest.raises(ValueError, match="image"):
                    medfuse.sobel(x, aperture_size=aperture)
                with pytest.raises(ValueError, match="image"):
                    medfuse.sobel(x.reshape(3, 100, 257), aperture_size=aperture)
    finally:
        medfuse.set_num_threads(before)


# ---------------------------------------------------------------------------
# 2D float outputs are placed away from the input modulo 4 KiB (4 KiB aliasing; sobel_out_phase)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [512, 1024, 1000, 333, 7])
@pytest.mark.parametrize("offset", [0, 1, 4, 16, 509])
def test_float_outputs_placed_apart_from_input(dtype, width, offset):
    """The outputs are writeable, C-contiguous and aligned, overlap neither each other nor the input (both are
    views of one fresh array), and equal the twin, wherever the input sits; their rows keep away from the input's within 8 rows modulo 4 KiB (widths whose rows are a
    multiple of 2 KiB, where NumPy's same-size allocations otherwise land on the input's offset, by at least
    512 bytes), and the first column of the vector loops (column aperture // 2) is 64-byte aligned."""
    item = np.dtype(dtype).itemsize
    h = 40
    buf = np.random.default_rng(offset).normal(0, 100, h * width + 600).astype(dtype)
    x = buf[offset:offset + h * width].reshape(h, width)
    rb = width * item
    for aperture in (3, 5, 7):
        got = medfuse.sobel(x, aperture_size=aperture)
        assert_same_gradients(got, ref_sobel(x, aperture_size=aperture))
        for g in got:
            assert g.flags.c_contiguous and g.flags.writeable and g.flags.aligned
            assert not np.shares_memory(g, x) and not np.shares_memory(g, buf)
            step = (g.ctypes.data - x.ctypes.data) % 4096
            near = min(min((step - d * rb) % 4096, (d * rb - step) % 4096) for d in range(-8, 9))
            assert near >= (512 if rb % 2048 == 0 else 64), (g.ctypes.data % 4096, x.ctypes.data % 4096, near)
            assert (g.ctypes.data + aperture // 2 * item) % 64 == 0
        assert not np.shares_memory(got[0], got[1])
        got[0][...] = 0  # each output its own memory
        assert_same_gradients((got[1],), ref_sobel(x, aperture_size=aperture)[1:])
