"""NumPy twins of ``medfuse.canny`` and ``medfuse.sobel``.

Same signatures, same refusals, same results. Written for clarity: whole-array
NumPy operations in the order the C++ kernel performs them, so float results
are bit-identical (IEEE arithmetic, no fused multiply-add on either side).
Hysteresis uses ``scipy.ndimage.label`` (SciPy ships with scikit-learn, a
medfuse dependency) — a trusted, independent connected-components routine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..kernels import _validate as v
from ..kernels._edges_plan import SOBEL_DERIV, SOBEL_SMOOTH, CannyPlan, plan_canny
from .convolve import _index  # source index for every border mode, shared by the twins

__all__ = ["canny", "sobel"]

_BORDERS = ("reflect101", "replicate")


def _correlate1d(
    x: npt.NDArray, taps: Sequence[float] | npt.NDArray, axis: int, border: str, *, from_first: bool = False
) -> npt.NDArray:
    """sum_k taps[k] * x[i + k - r] along ``axis``; taps in ascending k order.

    Accumulates left to right, skipping zero taps, from zero (Canny's kernels)
    or, with ``from_first``, from the first tap's product (the Sobel kernels:
    one addition fewer; the two differ only in the sign of a zero sum) — the
    order the C++ kernels use, so float results agree bit for bit.
    """
    taps = list(taps)
    r = len(taps) // 2
    n = x.shape[axis]
    base = np.arange(n, dtype=np.int64)
    acc = None if from_first else np.zeros(x.shape, dtype=x.dtype)
    for k, t in enumerate(taps):
        if t == 0:
            continue
        src = np.take(x, _index(base + (k - r), n, border), axis=axis)
        term = src * x.dtype.type(t) if x.dtype.kind == "f" else src * t
        acc = term if acc is None else acc + term
    assert acc is not None
    return acc


def _gradients(x: npt.NDArray, aperture: int, border: str, *, from_first: bool = False) -> list[npt.NDArray]:
    """Sobel derivative along every axis, axes filtered last (x) to first."""
    d, s = SOBEL_DERIV[aperture], SOBEL_SMOOTH[aperture]
    out = []
    for axis in range(x.ndim):
        g = x
        for ax in reversed(range(x.ndim)):  # x first, then y, then z
            g = _correlate1d(g, d if ax == axis else s, ax, border, from_first=from_first)
        out.append(g)
    return out


def sobel(
    image: npt.ArrayLike, *, aperture_size: int = 3, border: str = "reflect101"
) -> tuple[npt.NDArray, ...]:
    """Twin of :func:`medfuse.sobel`."""
    img = v.as_image(image)
    v.check_finite_image(img)
    a = v.aperture(aperture_size)
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {', '.join(_BORDERS)}; got {border!r}")
    if img.dtype.kind == "f":
        # float32 sums in float32 unless some |x| > 2^100 (they could overflow there), as Canny's; float64
        # in float64.
        narrow = img.dtype == np.float32 and img.size > 0 and float(np.abs(img).max()) <= 2.0**100
        work = np.float32 if narrow else np.float64
        with np.errstate(over="ignore", invalid="ignore"):
            grads = _gradients(img.astype(work), a, border, from_first=True)
            return tuple(g.astype(img.dtype) for g in grads)
    grads = _gradients(img.astype(np.int64), a, border, from_first=True)
    out_dtype = np.int64 if (img.ndim == 3 and a == 7 and img.dtype != np.uint8) else np.int32
    return tuple(g.astype(out_dtype) for g in grads)


def _smooth(x: npt.NDArray[np.floating], taps: tuple[npt.NDArray[np.float64], ...]) -> npt.NDArray[np.floating]:
    for ax in reversed(range(x.ndim)):
        if len(taps[ax]) > 1:
            x = _correlate1d(x, taps[ax], ax, "reflect101")
    return x


def _significant(g: list[npt.NDArray]) -> list[npt.NDArray[np.bool_]]:
    """Which gradient components set the non-maximum-suppression direction.

    For axes i < j: i counts iff |g_i|*2^15 >= 13573*|g_j| (tan 22.5 deg in
    cv2's fixed point), j counts iff |g_i|*2^15 <= 79109*|g_j| (tan 67.5 deg).
    A component counts iff it passes against every other one. In 2D this is
    exactly cv2.Canny's horizontal / vertical / diagonal choice.
    """
    mags = [np.abs(c) for c in g]
    sig = [np.ones(c.shape, dtype=bool) for c in g]
    for i in range(len(g)):
        for j in range(i + 1, len(g)):
            ai, aj = mags[i], mags[j]
            if ai.dtype.kind == "f":
                sig[i] &= ai * 32768.0 >= aj * 13573.0
                sig[j] &= ai * 32768.0 <= aj * 79109.0
            else:
                sig[i] &= (ai << 15) >= aj * 13573
                sig[j] &= (ai << 15) <= aj * 79109
    return sig


def _shift(m: npt.NDArray, offset: Sequence[int]) -> npt.NDArray:
    """m[p + offset] with zeros outside the image."""
    padded = np.pad(m, 1)
    sl = tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, m.shape))
    return padded[sl]


def _nms(g: list[npt.NDArray], mag: npt.NDArray) -> npt.NDArray[np.bool_]:
    """Local maxima of ``mag`` along the quantized gradient direction.

    Along one axis: m > m[p - e] and m >= m[p + e]. Along a diagonal with
    offset o (signs of the counted components): m > m[p - o] and m > m[p + o].
    """
    ndim = mag.ndim
    sig = _significant(g)
    neg = [c < 0 for c in g]
    keep = np.zeros(mag.shape, dtype=bool)
    # Enumerate every direction: a non-empty subset of axes and their signs.
    for mask in range(1, 1 << ndim):
        axes = [i for i in range(ndim) if mask >> i & 1]
        chosen = np.ones(mag.shape, dtype=bool)
        for i in range(ndim):
            chosen &= sig[i] if i in axes else ~sig[i]
        if not chosen.any():
            continue
        if len(axes) == 1:
            off = [0] * ndim
            off[axes[0]] = 1
            ok = (mag > _shift(mag, [-o for o in off])) & (mag >= _shift(mag, off))
            keep |= chosen & ok
            continue
        # Diagonals: the offset's signs follow the gradient's signs; the first
        # counted axis is taken positive (o and -o name the same pair).
        for signs in range(1 << (len(axes) - 1)):
            off = [0] * ndim
            pattern = np.ones(mag.shape, dtype=bool)
            off[axes[0]] = 1
            for t, ax in enumerate(axes[1:]):
                flip = bool(signs >> t & 1)
                off[ax] = -1 if flip else 1
                pattern &= (neg[ax] != neg[axes[0]]) == flip
            sel = chosen & pattern
            if not sel.any():
                continue
            ok = (mag > _shift(mag, [-o for o in off])) & (mag > _shift(mag, off))
            keep |= sel & ok
    return keep


def _hysteresis(candidate: npt.NDArray[np.bool_], strong: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    from scipy import ndimage

    structure = np.ones((3,) * candidate.ndim, dtype=bool)  # 8- / 26-connectivity
    labels, n = ndimage.label(candidate, structure=structure)
    good = np.zeros(n + 1, dtype=bool)
    good[np.unique(labels[strong])] = True
    good[0] = False
    return np.where(good[labels], np.uint8(255), np.uint8(0))


def _canny_planned(img: npt.NDArray, plan: CannyPlan) -> npt.NDArray[np.uint8]:
    if plan.exact_int:
        g = _gradients(img.astype(np.int64), plan.aperture, "replicate")
        if plan.round16:
            g = [np.rint(c / 16.0).astype(np.int64) for c in g]  # rint: half to even
    else:
        # 2D float32 data is smoothed and differentiated in float32; all else
        # in float64. Magnitudes and suppression are float64 either way.
        # (float32 data beyond 2^100 in magnitude is widened: its sums could overflow.)
        narrow = img.dtype == np.float32 and img.ndim == 2 and np.abs(img).max() <= 2.0**100
        work = np.float32 if narrow else np.float64
        x = img.astype(work)
        if plan.smooth is not None:
            x = _smooth(x, plan.smooth)
        g = _gradients(x, plan.aperture, "replicate")
        g = [(c * work(w)).astype(np.float64) for c, w in zip(g, plan.weights)]
    # Magnitude: components summed x first, then y, then z.
    comps = list(reversed(g))
    if plan.l2:
        mag = comps[0] * comps[0]
        for c in comps[1:]:
            mag = mag + c * c
    else:
        mag = np.abs(comps[0])
        for c in comps[1:]:
            mag = mag + np.abs(c)
    keep = _nms(g, mag)
    candidate = keep & (mag > plan.low_cmp)
    strong = candidate & (mag > plan.high_cmp)
    return _hysteresis(candidate, strong)


def canny(
    image: npt.ArrayLike,
    low: float,
    high: float,
    *,
    aperture_size: int = 3,
    l2_gradient: bool = False,
    sigma: float | Sequence[float] | None = None,
    spacing: Sequence[float] | None = None,
) -> npt.NDArray[np.uint8]:
    """Twin of :func:`medfuse.canny` (see its docstring for the semantics)."""
    img = v.as_image(image)
    plan = plan_canny(img, low, high, aperture_size, l2_gradient, sigma, spacing)
    v.check_finite_image(img)
    with np.errstate(over="ignore", invalid="ignore"):  # extreme float64 data: inf/NaN gradients
        return _canny_planned(img, plan)
