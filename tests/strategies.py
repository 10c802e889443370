"""Hypothesis strategies for medfuse's image kernels.

Images are drawn as (family, shape, dtype, seed) and generated with NumPy
(fast at 64x64), except the smallest ones, which hypothesis also draws
element by element so it can shrink them. Layouts then turn an image into a
non-contiguous view, a transpose, a negative-stride view, a big-endian copy,
a Fortran-ordered copy or a read-only array.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import images
from medfuse.kernels._edges_plan import SOBEL_GAIN

MAX_SIDE_2D = 64
MAX_SIDE_3D = 24

dtypes = st.sampled_from([np.dtype(d) for d in images.DTYPES])
apertures = st.sampled_from([3, 5, 7])
borders = st.sampled_from(["reflect101", "replicate"])


def shapes(ndim: int, *, min_side: int = 1, max_side: int | None = None) -> st.SearchStrategy[tuple[int, ...]]:
    if max_side is None:
        max_side = MAX_SIDE_2D if ndim == 2 else MAX_SIDE_3D
    return st.tuples(*[st.integers(min_side, max_side)] * ndim)


def elements(dtype: np.dtype) -> st.SearchStrategy:
    """Any finite value of the dtype, with its extremes drawn often."""
    dtype = np.dtype(dtype)
    extremes = st.sampled_from(images.extreme_values(dtype))
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return st.one_of(extremes, st.integers(int(info.min), int(info.max)))
    width = 8 * dtype.itemsize
    return st.one_of(extremes, st.floats(allow_nan=False, allow_infinity=False, width=width))


@st.composite
def images_of(
    draw: st.DrawFn,
    dtype: npt.DTypeLike | None = None,
    ndim: int | None = None,
    *,
    families: tuple[str, ...] = tuple(images.FAMILIES),
    max_side: int | None = None,
) -> npt.NDArray:
    """A C-contiguous image of one of the families (or drawn element-wise)."""
    dt = draw(dtypes) if dtype is None else np.dtype(dtype)
    nd = draw(st.sampled_from([2, 3])) if ndim is None else ndim
    shape = draw(shapes(nd, max_side=max_side))
    family = draw(st.sampled_from(families + ("elements",)))
    if family == "elements" and math.prod(shape) <= 144:
        el = elements(dt) if "extremes" in families else _tame_elements(dt)
        return draw(hnp.arrays(dt, shape, elements=el))
    if family == "elements":
        family = "noise"
    seed = draw(st.integers(0, 2**32 - 1))
    return images.make(family, shape, dt, seed)


def _tame_elements(dtype: np.dtype) -> st.SearchStrategy:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return st.integers(int(info.min), int(info.max))
    return st.floats(-1e6, 1e6, width=8 * dtype.itemsize)


LAYOUTS = ("contiguous", "strided", "reversed", "transposed", "big_endian", "fortran", "read_only")


def apply_layout(arr: npt.NDArray, layout: str, draw: st.DrawFn) -> npt.NDArray:
    if layout == "strided":  # e.g. x[::2, 1::3]
        idx = []
        for n in arr.shape:
            step = draw(st.integers(1, 3))
            start = draw(st.integers(0, min(step - 1, n - 1)))
            idx.append(slice(start, None, step))
        return arr[tuple(idx)]
    if layout == "reversed":  # negative strides on some axes
        flips = draw(st.lists(st.booleans(), min_size=arr.ndim, max_size=arr.ndim))
        if not any(flips):
            flips[0] = True
        return arr[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    if layout == "transposed":
        perm = draw(st.permutations(range(arr.ndim)))
        return arr.transpose(perm)
    if layout == "big_endian":
        return arr.astype(arr.dtype.newbyteorder(">"))
    if layout == "fortran":
        return np.asfortranarray(arr)
    if layout == "read_only":
        ro = arr.view()
        ro.flags.writeable = False
        return ro
    return arr


@st.composite
def layouts_of(draw: st.DrawFn, arr: npt.NDArray, *, max_ops: int = 2) -> npt.NDArray:
    """``arr`` seen through up to ``max_ops`` layout changes (values may be subsampled)."""
    ops = draw(st.lists(st.sampled_from(LAYOUTS), min_size=1, max_size=max_ops))
    for op in ops:
        arr = apply_layout(arr, op, draw)
    return arr


@st.composite
def image_views(draw: st.DrawFn, dtype=None, ndim=None, **kw) -> npt.NDArray:
    """An image of the families above in an arbitrary memory layout."""
    return draw(layouts_of(draw(images_of(dtype, ndim, **kw))))


# medfuse border name -> numpy.pad mode
NP_PAD = {"reflect101": "reflect", "reflect": "symmetric", "replicate": "edge", "constant": "constant", "wrap": "wrap"}


def correlate_padded(x: npt.ArrayLike, k: npt.ArrayLike, border: str, value: float = 0.0) -> npt.NDArray[np.float64]:
    """n-D correlation in float64 by np.pad + a sliding window (kernel centre
    at size // 2 per axis, as scipy.ndimage.correlate with origin 0), right for
    any kernel and image size. Used where scipy.ndimage.correlate is not:
    scipy 1.17.1's n-D correlate (and median_filter) in mode="reflect" reads
    out of bounds and returns garbage once a kernel axis is >= 8x the image
    axis (tests/test_convolve.py::test_scipy_reflect_limit)."""
    xa = np.asarray(x, dtype=np.float64)
    ka = np.asarray(k, dtype=np.float64)
    if xa.size == 0:
        return xa.copy()
    pads = [(n // 2, n - 1 - n // 2) for n in ka.shape]
    extra = {"constant_values": value} if border == "constant" else {}
    xp = np.pad(xa, pads, mode=NP_PAD[border], **extra)  # type: ignore[call-overload]
    windows = np.lib.stride_tricks.sliding_window_view(xp, ka.shape)
    nd = ka.ndim
    return np.tensordot(windows, ka, axes=(list(range(nd, 2 * nd)), list(range(nd))))


def magnitude_quantiles(
    image: npt.NDArray, aperture: int, *, l2: bool = False, sigma: float | None = None
) -> tuple[float, float]:
    """(median, max) of the L1 (or L2) Sobel magnitude, in the units of canny's thresholds.

    Computed with scipy.ndimage (replicated border, as Canny) in float64, and
    divided by the Sobel gain of the extra axis for volumes, so thresholds
    drawn in [0, max] separate edge pixels from the rest.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # float64 extremes overflow to inf
        return _magnitude_quantiles(np.asarray(image, dtype=np.float64), aperture, l2, sigma)


def _magnitude_quantiles(x, aperture, l2, sigma):
    from scipy import ndimage

    from medfuse.kernels._edges_plan import SOBEL_DERIV, SOBEL_SMOOTH

    if sigma:
        x = ndimage.gaussian_filter(x, sigma, mode="mirror", truncate=4.0)
    mag = np.zeros(x.shape)
    for axis in range(x.ndim):
        g = x
        for ax in range(x.ndim):
            taps = SOBEL_DERIV[aperture] if ax == axis else SOBEL_SMOOTH[aperture]
            g = ndimage.correlate1d(g, np.asarray(taps, dtype=np.float64), axis=ax, mode="nearest")
        mag = mag + (g * g if l2 else np.abs(g))
    if l2:
        mag = np.sqrt(mag)
    if x.ndim == 3:
        mag = mag / SOBEL_GAIN[aperture]
    finite = mag[np.isfinite(mag)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(np.median(finite)), float(finite.max())


@st.composite
def thresholds_for(draw: st.DrawFn, image: npt.NDArray, aperture: int) -> tuple[float, float]:
    """(low, high) with 0 <= low <= high, scaled to the image's gradients.

    Mostly quantile-like values between 0 and the largest magnitude, and the
    special cases: low == high, low == 0, both 0, above every magnitude.
    """
    med, top = magnitude_quantiles(image, aperture)
    # Capped so that squared (L2) and 3D-gain-scaled thresholds stay finite:
    # see test_canny.py::test_huge_finite_thresholds.
    top = min(max(top, 1.0), 1e150)
    med = min(med, top)
    kind = draw(st.sampled_from(["range", "range", "range", "equal", "zero_low", "zero", "above", "median"]))
    if kind == "zero":
        return 0.0, 0.0
    if kind == "above":
        t = top * 1.5
        return t, t
    if kind == "median":
        lo = min(med, top)
        return lo, max(lo, 0.5 * top)
    a = draw(st.floats(0.0, 1.0))
    b = draw(st.floats(0.0, 1.0))
    lo, hi = sorted((a * top, b * top))
    if kind == "equal":
        return hi, hi
    if kind == "zero_low":
        return 0.0, hi
    return lo, hi


# Sigmas from 0.05 up (tiny positive sigmas: test_canny.py::test_tiny_sigma).
sigmas_2d = st.one_of(
    st.none(),
    st.just(0.0),
    st.floats(0.05, 2.5),
    st.tuples(st.sampled_from([0.0, 0.5, 1.0, 1.7]), st.floats(0.3, 2.0)),
)
sigmas_3d = st.one_of(
    st.none(),
    st.just(0.0),
    st.floats(0.05, 2.0),
    st.tuples(st.sampled_from([0.0, 0.8]), st.floats(0.3, 1.5), st.one_of(st.just(0.0), st.floats(0.05, 1.5))),
)
spacing_value = st.sampled_from([0.3, 0.7, 1.0, 1.25, 2.5, 3.0])


def spacings(ndim: int) -> st.SearchStrategy:
    return st.one_of(st.none(), st.tuples(*[spacing_value] * ndim))


# ---------------------------------------------------------------- attention --
# Cases for tests/test_attention.py and tests/test_attention_backward.py: a
# dict of numpy arrays (q, k, v, mask) and keyword arguments, drawn so that
# every broadcast form of the batch dimensions and of the mask occurs, with
# Lq != Lk, L = 1, d and dv off the vector widths, block edges (63/64/65 keys)
# and magnitudes from tiny to large.

_ATTN_MAGNITUDES = [1e-30, 1e-3, 0.3, 1.0, 4.0]


def _attn_broadcast_form(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with some axes set to 1 and some leading axes dropped."""
    out = tuple(1 if draw(st.booleans()) else n for n in shape)
    drop = draw(st.integers(0, len(out)))
    return out[drop:]


@st.composite
def attention_cases(draw, *, dtypes=(np.float32, np.float64), masks=True, max_len=80):
    dtype = draw(st.sampled_from(dtypes))
    nbatch = draw(st.integers(0, 2))
    batch = tuple(draw(st.integers(1, 3)) for _ in range(nbatch))
    lq = draw(st.one_of(st.integers(1, max_len), st.sampled_from([1, 63, 64, 65])))
    lk = draw(st.one_of(st.integers(1, max_len), st.sampled_from([1, 63, 64, 65])))
    d = draw(st.integers(1, 40))
    dv = draw(st.integers(1, 40))
    mag = draw(st.sampled_from(_ATTN_MAGNITUDES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    def arr(shape):
        return (rng.standard_normal(shape) * mag).astype(dtype)

    q = arr(_attn_broadcast_form(draw, batch) + (lq, d))
    k = arr(_attn_broadcast_form(draw, batch) + (lk, d))
    v = rng.standard_normal(_attn_broadcast_form(draw, batch) + (lk, dv)).astype(dtype)
    # make sure the batch shape is reached by at least one operand
    q = np.broadcast_to(q, batch + (lq, d)) if draw(st.booleans()) else q
    mask_kind = draw(st.sampled_from(["none", "bool", "float"] if masks else ["none"]))
    mask = None
    if mask_kind != "none":
        full = _attn_broadcast_form(draw, np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]) + (lq, lk))
        if mask_kind == "bool":
            mask = rng.random(full) < draw(st.sampled_from([0.3, 0.8, 1.0]))
        else:
            mask = rng.standard_normal(full).astype(dtype)
            if draw(st.booleans()):
                mask[rng.random(full) < 0.3] = -np.inf
    causal = draw(st.booleans())
    scale = draw(st.one_of(st.none(), st.sampled_from([0.0, -0.5, 0.05, 2.0])))
    return dict(q=q, k=k, v=v, mask=mask, causal=causal, scale=scale)


def attention_score_bound(case: dict) -> float:
    """max(1, largest |score|): error bounds scale with it (a relative rounding
    error eps·|s| in a score is an absolute error in the softmax's exponent)."""
    q = np.asarray(case["q"], np.float64)
    k = np.asarray(case["k"], np.float64)
    scale = case["scale"] if case["scale"] is not None else 1.0 / np.sqrt(q.shape[-1])
    s = np.abs(q) @ np.swapaxes(np.abs(k), -1, -2) * abs(scale)
    bound = float(s.max())
    m = case["mask"]
    if m is not None and m.dtype.kind == "f" and np.isfinite(m).any():
        bound += float(np.abs(m[np.isfinite(m)]).max())
    return max(1.0, bound)


def attention_live_rows(case: dict) -> np.ndarray:
    """Which query rows have at least one key allowed, from the mask and causal
    structure alone (bool mask: True = allowed; float mask: finite = allowed;
    causal: key j <= query i). Shape: the broadcast batch + (lq,). A row that is
    not live is fully masked: zeros in medfuse. The reference's NaN is not used
    to decide this: torch gives NaN for rows that are not fully masked (see
    TORCH_CAUSAL_ZERO_SCALE_NAN)."""
    q, k, v, mask = case["q"], case["k"], case["v"], case["mask"]
    lq, lk = q.shape[-2], k.shape[-2]
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    allowed = np.ones(batch + (lq, lk), bool)
    if mask is not None:
        m = mask if mask.dtype == np.bool_ else np.isfinite(mask)  # the strategies draw no NaN masks
        allowed = allowed & m
    if case["causal"]:
        allowed = allowed & np.tri(lq, lk, dtype=bool)
    return allowed.any(axis=-1)


# torch 2.13's CPU SDPA, on 4-D inputs with d == dv (its fused "flash" CPU
# kernel), is_causal=True and a scale <= 0, returns NaN for every row that has
# a causally excluded key: it multiplies the -inf it fills in by the scale
# (0 * -inf, or -inf * negative = +inf). An explicit mask gives the right
# answer (tests/test_attention.py::test_torch_causal_zero_scale_limit
# documents it). torch_attention therefore passes causal as an explicit mask
# when the scale is not positive.
TORCH_CAUSAL_ZERO_SCALE_NAN = "torch SDPA: 4-D, d == dv, is_causal=True, scale <= 0 -> NaN rows"


def torch_attention(case: dict, dtype=None, grad_out=None):
    """torch SDPA on the case (inputs broadcast explicitly; causal and mask
    combined into one mask since torch refuses both). Returns out (and
    (dq, dk, dv) summed to the input shapes when ``grad_out`` is given), as
    float64 numpy unless ``dtype`` says otherwise."""
    import torch

    q, k, v, mask = case["q"], case["k"], case["v"], case["mask"]
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if mask is not None:
        batch = np.broadcast_shapes(batch, mask.shape[:-2])
    lq, lk = q.shape[-2], k.shape[-2]
    tdtype = {None: torch.float64, np.float32: torch.float32, np.float64: torch.float64}[dtype]

    def t(x, shape):
        return torch.tensor(np.ascontiguousarray(np.broadcast_to(x, shape)), dtype=tdtype,
                            requires_grad=grad_out is not None)

    tq, tk, tv = t(q, batch + q.shape[-2:]), t(k, batch + k.shape[-2:]), t(v, batch + v.shape[-2:])
    tm = None
    if mask is not None:
        full = np.broadcast_shapes(batch + (lq, lk), mask.shape)  # torch wants >= 2D masks
        tm = torch.tensor(np.ascontiguousarray(np.broadcast_to(mask, full)), dtype=torch.bool if mask.dtype == np.bool_ else tdtype)
    causal = case["causal"]
    if causal and tm is None and case["scale"] is not None and case["scale"] <= 0.0:  # TORCH_CAUSAL_ZERO_SCALE_NAN
        tm = torch.ones(lq, lk, dtype=torch.bool).tril()
        causal = False
    if causal and tm is not None:
        tril = torch.ones(lq, lk, dtype=torch.bool).tril()
        tm = (tm & tril) if tm.dtype == torch.bool else tm.masked_fill(~tril, float("-inf"))
        causal = False
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, is_causal=causal,
                                                           scale=case["scale"])
    if grad_out is None:
        return out.detach().numpy()
    out.backward(torch.tensor(np.ascontiguousarray(grad_out), dtype=tdtype))
    grads = []
    for x, tx in ((q, tq), (k, tk), (v, tv)):
        g = tx.grad.numpy()
        lead = g.ndim - x.ndim
        g = g.sum(axis=tuple(range(lead))) if lead else g
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1 and g.shape[i] != 1)
        grads.append(g.sum(axis=axes, keepdims=True) if axes else g)
    return out.detach().numpy(), tuple(grads)


# ---- audio ---------------------------------------------------------------------


@st.composite
def audio_cases(draw: st.DrawFn) -> tuple[npt.NDArray[np.floating], dict[str, object]]:
    """A signal (1D, or a small batch, any layout) and STFT parameters, incl. odd and non-power-of-two n_fft."""
    dtype = draw(st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)]))
    n_fft = draw(st.one_of(st.sampled_from([1, 2, 4, 16, 64, 128, 256]), st.integers(1, 300)))
    win_length = draw(st.one_of(st.none(), st.integers(1, n_fft)))
    center = draw(st.booleans())
    length = draw(st.integers(n_fft if not center else 1, 1500))
    batch = draw(st.sampled_from([(), (2,), (1, 3)]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["noise", "tone", "zeros", "big"]))
    t = np.arange(length)
    if kind == "noise":
        y = rng.standard_normal(batch + (length,))
    elif kind == "tone":
        y = np.broadcast_to(np.sin(2 * np.pi * 0.05 * t) + 0.1 * rng.standard_normal(length), batch + (length,)).copy()
    elif kind == "zeros":
        y = np.zeros(batch + (length,))
    else:
        y = 1e4 * rng.standard_normal(batch + (length,))
    y = y.astype(dtype)
    layout = draw(st.sampled_from(["c", "strided", "bigendian", "readonly"]))
    if layout == "strided":
        y = np.repeat(y, 2, axis=-1)[..., ::2]
    elif layout == "bigendian":
        y = y.astype(y.dtype.newbyteorder(">"))
    elif layout == "readonly":
        y.flags.writeable = False
    params: dict[str, object] = dict(
        n_fft=n_fft,
        hop_length=draw(st.one_of(st.none(), st.integers(1, max(1, n_fft)))),
        win_length=win_length,
        window=draw(st.sampled_from(["hann", "hamming", "blackman", "boxcar"])),
        center=center,
        pad_mode=draw(st.sampled_from(["constant", "reflect", "edge", "symmetric", "wrap"])),
    )
    return y, params
