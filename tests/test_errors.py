"""Every refusal, for the kernels and their twins: the exception type and the
parameter named in its message are part of the contract. Direct calls into
the binding (medfuse._core) defend themselves too: TypeError or ValueError,
never a crash or a silent conversion.
"""

from __future__ import annotations

import numpy as np
import pytest

import medfuse
import medfuse.reference as ref

CANNY = pytest.mark.parametrize("canny", [medfuse.canny, ref.canny], ids=["kernel", "reference"])
SOBEL = pytest.mark.parametrize("sobel", [medfuse.sobel, ref.sobel], ids=["kernel", "reference"])


@pytest.fixture
def img():
    return np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)


# ---------------------------------------------------------------------------
# image


@CANNY
@pytest.mark.parametrize(
    "dtype", [np.int32, np.int64, np.int8, np.uint32, np.uint64, np.float16, np.bool_, np.complex64, np.complex128, object],
    ids=lambda d: np.dtype(d).name,
)
def test_canny_unsupported_dtype(canny, dtype):
    x = np.zeros((8, 8), dtype=dtype)
    with pytest.raises(TypeError, match="image") as info:
        canny(x, 10, 20)
    assert "uint8" in str(info.value)  # names the accepted dtypes


@CANNY
def test_canny_unsupported_dtype_strings(canny):
    with pytest.raises(TypeError, match="image"):
        canny(np.array([["a", "b"], ["c", "d"]]), 10, 20)


@CANNY
@pytest.mark.parametrize("shape", [(), (8,), (2, 3, 4, 5), (1, 1, 1, 1)], ids=["0d", "1d", "4d", "4d_ones"])
def test_canny_bad_ndim(canny, shape):
    with pytest.raises(ValueError, match="image"):
        canny(np.zeros(shape, np.uint8), 10, 20)


@CANNY
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (0, 3, 3), (3, 0, 3), (3, 3, 0)])
def test_canny_empty(canny, shape):
    with pytest.raises(ValueError, match="image") as info:
        canny(np.zeros(shape, np.float32), 10, 20)
    assert str(shape) in str(info.value) or "empty" in str(info.value)


@CANNY
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_canny_non_finite_image(canny, dtype, bad, ndim):
    x = np.zeros((5, 6) if ndim == 2 else (3, 5, 6), dtype=dtype)
    x[(1,) * ndim] = bad
    with pytest.raises(ValueError, match="image"):
        canny(x, 10, 20)
    # also when the bad value is in a strided, big-endian view
    view = x.astype(x.dtype.newbyteorder(">"))[..., ::-1]
    with pytest.raises(ValueError, match="image"):
        canny(view, 10, 20)


@CANNY
def test_canny_non_finite_with_sigma(canny):
    """Smoothing must not hide (or spread) a NaN: the input is refused."""
    x = np.zeros((9, 9))
    x[4, 4] = np.nan
    with pytest.raises(ValueError, match="image"):
        canny(x, 10, 20, sigma=1.0)


# ---------------------------------------------------------------------------
# thresholds


@CANNY
@pytest.mark.parametrize(
    "low,high,name",
    [
        (30, 20, "low"),
        (-1, 20, "low"),
        (0, -1, "high"),
        (-5, -1, "low"),
        (np.nan, 20, "low"),
        (10, np.nan, "high"),
        (np.inf, np.inf, "low"),
        (10, np.inf, "high"),
        (-np.inf, 10, "low"),
        (np.float32(np.nan), 10, "low"),
    ],
)
def test_canny_bad_threshold_values(canny, img, low, high, name):
    with pytest.raises(ValueError, match=name):
        canny(img, low, high)


@CANNY
@pytest.mark.parametrize(
    "low,high,name",
    [
        ("10", 20, "low"),
        (10, "20", "high"),
        (None, 20, "low"),
        (10, None, "high"),
        ([10], 20, "low"),
        (10, np.array([20.0]), "high"),
        (1 + 0j, 20, "low"),
        (True, 20, "low"),
        (10, np.bool_(True), "high"),
    ],
)
def test_canny_non_number_thresholds(canny, img, low, high, name):
    with pytest.raises(TypeError, match=name):
        canny(img, low, high)


# ---------------------------------------------------------------------------
# aperture, l2_gradient


@CANNY
@pytest.mark.parametrize("aperture", [4, 9, 1, 0, -3, 2, 6, 31])
def test_canny_bad_aperture_value(canny, img, aperture):
    with pytest.raises(ValueError, match="aperture_size"):
        canny(img, 10, 20, aperture_size=aperture)


@CANNY
@pytest.mark.parametrize("aperture", [3.0, True, "3", None, np.float64(5.0), [3]], ids=repr)
def test_canny_bad_aperture_type(canny, img, aperture):
    with pytest.raises(TypeError, match="aperture_size"):
        canny(img, 10, 20, aperture_size=aperture)


@CANNY
@pytest.mark.parametrize("flag", [1, 0, "yes", None, 1.0, np.int64(1)], ids=repr)
def test_canny_l2_gradient_not_bool(canny, img, flag):
    with pytest.raises(TypeError, match="l2_gradient"):
        canny(img, 10, 20, l2_gradient=flag)


# ---------------------------------------------------------------------------
# sigma, spacing


@CANNY
@pytest.mark.parametrize(
    "sigma",
    [-1.0, -1e-9, np.nan, np.inf, (1.0, -0.5), (np.nan, 1.0), (1.0, np.inf)],
    ids=repr,
)
def test_canny_sigma_bad_value(canny, img, sigma):
    with pytest.raises(ValueError, match="sigma"):
        canny(img, 10, 20, sigma=sigma)


@CANNY
@pytest.mark.parametrize("sigma,ndim", [((1.0,), 2), ((1.0, 1.0, 1.0), 2), ((1.0, 1.0), 3), ((), 2), ([1, 1, 1, 1], 3)], ids=repr)
def test_canny_sigma_wrong_length(canny, sigma, ndim):
    x = np.zeros((6,) * ndim, np.uint8)
    with pytest.raises(ValueError, match="sigma"):
        canny(x, 10, 20, sigma=sigma)


@CANNY
@pytest.mark.parametrize("sigma", [object(), True, (1.0, None), (1.0, "2"), ("a", "b"), 1 + 1j], ids=repr)
def test_canny_sigma_non_number(canny, img, sigma):
    with pytest.raises(TypeError, match="sigma"):
        canny(img, 10, 20, sigma=sigma)


@CANNY
@pytest.mark.parametrize(
    "spacing",
    [0, 0.0, -1.0, (1.0, 0.0), (1.0, -2.0), (np.nan, 1.0), (1.0, np.inf), np.nan],
    ids=repr,
)
def test_canny_spacing_bad_value(canny, img, spacing):
    with pytest.raises(ValueError, match="spacing"):
        canny(img, 10, 20, spacing=spacing)


@CANNY
@pytest.mark.parametrize("spacing,ndim", [((1.0,), 2), ((1.0, 1.0, 1.0), 2), ((1.0, 1.0), 3), ((), 3)], ids=repr)
def test_canny_spacing_wrong_length(canny, spacing, ndim):
    x = np.zeros((6,) * ndim, np.uint8)
    with pytest.raises(ValueError, match="spacing"):
        canny(x, 10, 20, spacing=spacing)


@CANNY
@pytest.mark.parametrize("spacing", [object(), True, (1.0, None), (1.0, "2"), "ab"], ids=repr)
def test_canny_spacing_non_number(canny, img, spacing):
    with pytest.raises(TypeError, match="spacing"):
        canny(img, 10, 20, spacing=spacing)


@CANNY
def test_canny_keyword_only(canny, img):
    with pytest.raises(TypeError):
        canny(img, 10, 20, 3)


# ---------------------------------------------------------------------------
# sobel


@SOBEL
@pytest.mark.parametrize("border", ["reflect", "constant", "REFLECT101", "", None, 0, 1, ["replicate"]], ids=repr)
def test_sobel_bad_border(sobel, img, border):
    with pytest.raises(ValueError, match="border"):
        sobel(img, border=border)


@SOBEL
@pytest.mark.parametrize("aperture", [4, 1, 9, 0, -3])
def test_sobel_bad_aperture_value(sobel, img, aperture):
    with pytest.raises(ValueError, match="aperture_size"):
        sobel(img, aperture_size=aperture)


@SOBEL
@pytest.mark.parametrize("aperture", [3.0, True, "3", None], ids=repr)
def test_sobel_bad_aperture_type(sobel, img, aperture):
    with pytest.raises(TypeError, match="aperture_size"):
        sobel(img, aperture_size=aperture)


@SOBEL
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.complex128, object, np.float16], ids=lambda d: np.dtype(d).name)
def test_sobel_unsupported_dtype(sobel, dtype):
    with pytest.raises(TypeError, match="image"):
        sobel(np.zeros((4, 4), dtype=dtype))


@SOBEL
@pytest.mark.parametrize("shape", [(), (8,), (2, 2, 2, 2), (0, 4), (3, 0, 2)])
def test_sobel_bad_shape(sobel, shape):
    with pytest.raises(ValueError, match="image"):
        sobel(np.zeros(shape, np.float64))


@SOBEL
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_sobel_non_finite(sobel, bad):
    x = np.ones((4, 5), np.float32)
    x[2, 3] = bad
    with pytest.raises(ValueError, match="image"):
        sobel(x)


# ---------------------------------------------------------------------------
# the binding, called directly


def _core():
    from medfuse import _core

    return _core


_SUFFIXES = {"u8": np.uint8, "u16": np.uint16, "i16": np.int16, "f32": np.float32, "f64": np.float64}


def _canny_args(x, **over):
    args = dict(
        image=x, aperture=3, l2=False, exact_int=False, round16=False, low_cmp=10.0, high_cmp=20.0,
        weights=[1.0] * x.ndim if isinstance(x, np.ndarray) and x.ndim in (2, 3) else [1.0, 1.0],
        smooth=[], threads=1,
    )
    args.update(over)
    return args


@pytest.mark.parametrize("suffix", list(_SUFFIXES))
def test_binding_accepts_its_own_dtype(suffix):
    """The control for the refusals below: a well-formed direct call works."""
    core = _core()
    x = np.zeros((6, 7), dtype=_SUFFIXES[suffix])
    out = getattr(core, "canny_" + suffix)(**_canny_args(x))
    assert out.shape == x.shape and out.dtype == np.uint8
    ro = x.copy()
    ro.flags.writeable = False  # read-only arrays are accepted
    getattr(core, "canny_" + suffix)(**_canny_args(ro))
    grads = getattr(core, "sobel_" + suffix)(x, 3, 1, 1)
    assert len(grads) == 2


@pytest.mark.parametrize("suffix", list(_SUFFIXES))
def test_binding_wrong_dtype_is_type_error(suffix):
    core = _core()
    for dtype in _SUFFIXES.values():
        if dtype is _SUFFIXES[suffix]:
            continue
        x = np.zeros((6, 7), dtype=dtype)
        with pytest.raises(TypeError):
            getattr(core, "canny_" + suffix)(**_canny_args(x))
        with pytest.raises(TypeError):
            getattr(core, "sobel_" + suffix)(x, 3, 1, 1)


@pytest.mark.parametrize("suffix", list(_SUFFIXES))
def test_binding_non_contiguous_is_type_error(suffix):
    core = _core()
    x = np.zeros((12, 14), dtype=_SUFFIXES[suffix])
    for view in (x[::2, 1::3], x.T, x[::-1], np.asfortranarray(x)):
        with pytest.raises(TypeError):
            getattr(core, "canny_" + suffix)(**_canny_args(view))
        with pytest.raises(TypeError):
            getattr(core, "sobel_" + suffix)(view, 3, 1, 1)


@pytest.mark.parametrize("suffix", ["u16", "i16", "f32", "f64"])
def test_binding_byte_swapped_is_type_error(suffix):
    core = _core()
    x = np.zeros((6, 7), dtype=np.dtype(_SUFFIXES[suffix]).newbyteorder(">"))
    with pytest.raises(TypeError):
        getattr(core, "canny_" + suffix)(**_canny_args(x))
    with pytest.raises(TypeError):
        getattr(core, "sobel_" + suffix)(x, 3, 1, 1)


@pytest.mark.parametrize("suffix", list(_SUFFIXES))
@pytest.mark.parametrize("obj", [[[0, 1], [2, 3]], None, 3.0, "image"], ids=["list", "None", "float", "str"])
def test_binding_non_array_is_type_error(suffix, obj):
    core = _core()
    with pytest.raises(TypeError):
        getattr(core, "canny_" + suffix)(**_canny_args(obj))
    with pytest.raises(TypeError):
        getattr(core, "sobel_" + suffix)(obj, 3, 1, 1)


@pytest.mark.parametrize(
    "shape,over",
    [
        ((8,), dict(weights=[1.0])),
        ((2, 2, 2, 2), dict(weights=[1.0] * 4)),
        ((0, 5), {}),
        ((4, 0, 5), dict(weights=[1.0] * 3)),
        ((6, 6), dict(aperture=4)),
        ((6, 6), dict(aperture=-1)),
        ((6, 6), dict(threads=0)),
        ((6, 6), dict(threads=-5)),
        ((6, 6), dict(weights=[1.0])),
        ((6, 6), dict(weights=[1.0, 0.0])),
        ((6, 6), dict(weights=[1.0, float("nan")])),
        ((6, 6), dict(low_cmp=30.0, high_cmp=20.0)),
        ((6, 6), dict(low_cmp=float("nan"))),
        ((6, 6), dict(low_cmp=-1.0)),
        ((6, 6), dict(high_cmp=float("inf"))),
        ((6, 6), dict(smooth=[np.ones(1)])),
        ((6, 6), dict(smooth=[np.ones(2), np.ones(3)])),
        ((6, 6), dict(smooth=[np.ones(3), np.array([0.5, float("nan"), 0.5])])),
        ((6, 6), dict(smooth=[np.ones((3, 1)), np.ones(3)])),
        ((4, 5, 6), dict(exact_int=True, weights=[1.0] * 3)),
        ((6, 6), dict(round16=True)),
        ((6, 6), dict(exact_int=True, round16=True, aperture=3)),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_binding_bad_arguments_are_value_errors(shape, over):
    core = _core()
    x = np.zeros(shape, dtype=np.uint8)
    with pytest.raises(ValueError):
        core.canny_u8(**_canny_args(x, **over))


@pytest.mark.parametrize("shape,aperture,border,threads", [((8,), 3, 1, 1), ((0, 4), 3, 1, 1), ((5, 5), 4, 1, 1), ((5, 5), 3, 2, 1), ((5, 5), 3, -1, 1), ((5, 5), 3, 0, 0)])
def test_binding_sobel_bad_arguments_are_value_errors(shape, aperture, border, threads):
    core = _core()
    with pytest.raises(ValueError):
        core.sobel_f32(np.zeros(shape, np.float32), aperture, border, threads)


def test_binding_nan_is_value_error():
    core = _core()
    x = np.zeros((6, 6))
    x[3, 3] = np.nan
    with pytest.raises(ValueError, match="image"):
        core.canny_f64(**_canny_args(x))
    with pytest.raises(ValueError, match="image"):
        core.sobel_f64(x, 3, 1, 1)


def test_binding_huge_thread_count_is_safe():
    """More threads than rows or cores: no crash, same result."""
    core = _core()
    x = np.random.default_rng(1).integers(0, 255, (5, 40), dtype=np.uint8)
    want = core.canny_u8(**_canny_args(x, exact_int=True))
    got = core.canny_u8(**_canny_args(x, exact_int=True, threads=4096))
    assert np.array_equal(got, want)
