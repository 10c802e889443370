"""Histograms and first-order statistics (C++ kernels).

``histogram`` is ``numpy.histogram`` exactly (closed last bin, numpy's float
arithmetic on and next to edges) for any ndim, with a mask; ``quantize`` is
PyRadiomics' gray-level discretisation; ``first_order`` the PyRadiomics
first-order features; ``window`` CT windowing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _histogram_plan as hp
from ._ext import core as _core
from ._threads import get_num_threads
from ._validate import contiguous

__all__ = ["first_order", "histogram", "quantize", "window"]




def _fold_exact(keys: npt.NDArray[np.int64], fold: npt.NDArray[np.int64], nbins: int) -> npt.NDArray[np.int64]:
    out = np.zeros(nbins, dtype=np.int64)
    np.add.at(out, fold, keys)
    return out


def _data_range(core: Any, x: npt.NDArray, mask: npt.NDArray[np.bool_] | None) -> tuple[Any, Any]:
    """numpy's autodetected range: (min, max) of the selected values, as numpy scalars."""
    mn, mx, _sel, nan = getattr(core, "min_max_" + hp.suffix(x.dtype))(x, mask, get_num_threads())
    if nan or not (math.isfinite(float(mn)) and math.isfinite(float(mx))):
        shown = (np.nan, np.nan) if nan else (mn, mx)
        raise ValueError(f"x: autodetected range of [{shown[0]}, {shown[1]}] is not finite; pass range=")
    t = x.dtype.type
    return t(mn), t(mx)


def histogram(
    x: npt.ArrayLike,
    bins: int | npt.ArrayLike = 10,
    range: tuple[float, float] | None = None,
    *,
    mask: npt.ArrayLike | None = None,
    weights: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray, npt.NDArray]:
    """Histogram of ``x`` with ``numpy.histogram``'s semantics, exactly.

    Parameters
    ----------
    x : ndarray of uint8, uint16, int16, int32, float32 or float64, any ndim
        Any strides and byte order; flattened in C order.
    bins : int or 1D array of edges
        An int gives that many equal-width bins over ``range``; an array gives
        the edges (non-decreasing, no NaN; ``range`` is then ignored, as in
        numpy). Every bin is half-open ``[a, b)`` except the last, ``[a, b]``.
    range : (min, max), optional
        Finite, ``min < max``. Default: the min and max of the selected
        values (a constant selection gets ``[v - 0.5, v + 0.5]``, as numpy).
        Values outside the range are ignored.
    mask : bool ndarray of x's shape, optional
        Only voxels where it is True are counted (must select at least one):
        the result equals ``numpy.histogram(x[mask], ...)``.
    weights : real ndarray of x's shape, optional
        Converted to float64; counts become float64 sums of weights.

    Returns
    -------
    counts : int64 (float64 with weights), edges : the bin edges (dtype as numpy's)

    Semantics and NaN
    -----------------
    Equal-width bins reproduce numpy's arithmetic step by step (edge dtype
    ``result_type(min, max, x)``, float64 for integer data; index
    ``((x - min) / (max - min)) * bins`` in numpy's dtypes, corrected by one
    against the edges), so values on or one ulp from an edge land where
    numpy puts them. Weighted sums use numpy's order (blocks of 65536
    elements), so they are bit-identical to numpy for equal-width bins; with
    explicit edges numpy sums weights in sorted order, and the results agree
    to rounding. NaN values are never counted; with the default range, NaN
    or infinite data is a ValueError (as numpy). A range so wide that
    ``max - min`` overflows is a ValueError (numpy fails there too).
    """
    arr = hp.as_data(x)
    b = hp.check_bins(bins)
    if isinstance(b, int):  # counts (int64 or float64) and edges (float64)
        from ._validate import check_alloc

        check_alloc(16 * (b + 1), f"histogram with bins={b}")
    rng = hp.check_range(range)
    m = hp.as_mask(mask, arr.shape)
    w = hp.as_weights(weights, arr.shape)
    core = _core()
    threads = get_num_threads()
    sfx = hp.suffix(arr.dtype)
    if w is not None and m is not None:  # numpy's blocks run over x[mask]
        arr, w, m = contiguous(arr[m]), contiguous(w[m]), None
    if isinstance(b, int):
        if rng is None:
            first, last = _data_range(core, arr, m)
        else:
            first, last = rng
        first, last = hp.outer_edges(first, last)
        plan = hp.uniform_plan(arr.dtype, b, first, last)
        edges = plan.edges.copy()
        if plan.empty:
            return np.zeros(b, dtype=np.float64 if w is not None else np.int64), edges
        if plan.keys is not None and w is None:
            lo, hi, shift, fold = plan.keys
            keys = getattr(core, "hist_keys_" + sfx)(arr, m, lo, hi, shift, threads)
            return _fold_exact(keys, fold, b) if not _is_identity(fold, b) else keys, edges
        if arr.dtype.kind in "iu" and plan.b == np.float32:
            # e.g. uint8 data with a float32 range: numpy works in float32, and
            # 8/16-bit integers are exact in float32.
            arr = arr.astype(np.float32)
        if arr.dtype == np.float32:
            name = f"hist_uniform_f32_{hp.suffix(plan.b)}_{hp.suffix(plan.d)}"
        else:
            name = "hist_uniform_" + sfx
        fn = getattr(core, name)
        return fn(arr, m, w, plan.lo_thr, plan.hi_thr, plan.lo_b, plan.denom, plan.edges, threads), edges
    e = b
    if w is None:
        kp = hp.edges_key_plan(arr.dtype, e)
        if kp is not None:
            lo, hi, shift, fold = kp
            keys = getattr(core, "hist_keys_" + sfx)(arr, m, lo, hi, shift, threads)
            return _fold_exact(keys, fold, e.size - 1), e.copy()
    e64 = contiguous(e, dtype=np.float64)
    counts = getattr(core, "hist_edges_" + sfx)(arr, m, w, e64, threads)
    return counts, e.copy()


def _is_identity(fold: npt.NDArray[np.int64], nbins: int) -> bool:
    return fold.size == nbins and bool(fold[0] == 0) and bool(fold[-1] == nbins - 1)


def _roi_min_max(core: Any, arr: npt.NDArray, m: npt.NDArray[np.bool_] | None, name: str) -> tuple[Any, Any]:
    mn, mx, _sel, nan = getattr(core, "min_max_" + hp.suffix(arr.dtype))(arr, m, get_num_threads())
    if nan:
        raise ValueError(f"{name} contains NaN inside the region ({nan} values)")
    if arr.dtype.kind == "f" and not (math.isfinite(float(mn)) and math.isfinite(float(mx))):
        raise ValueError(f"{name} contains infinite values inside the region")
    t = arr.dtype.type
    return t(mn), t(mx)


def quantize(
    image: npt.ArrayLike,
    *,
    levels: int | None = None,
    bin_width: float | None = None,
    range: tuple[float, float] | None = None,
    mask: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int32]:
    """Gray-level discretisation as PyRadiomics (``imageoperations.binImage``).

    Fixed bin width (``bin_width``, default 25 when ``levels`` is not given):
    edges ``arange(min - min % w, max + 2w, w)`` (a flat region gets one bin),
    so level = floor(x / w) - floor(min / w) + 1. Fixed bin count
    (``levels``): numpy.histogram's edges over [min, max] with the last edge
    raised by 1, so the maximum gets level ``levels``. Levels are
    ``numpy.digitize(x, edges)``: int32, starting at 1 in the region, 0
    outside the mask. ``range=(lo, hi)`` replaces the region's min and max;
    values outside it are clipped to the first and last level. Any ndim;
    uint8, uint16, int16, int32, float32, float64; NaN/inf in the region are
    refused. Edges are computed in the data's dtype (float32 stays float32),
    as PyRadiomics does on the image array.
    """
    arr = hp.as_data(image, "image")
    n_levels, width = hp.check_binning(levels, bin_width)
    rng = hp.check_range(range)
    m = hp.as_mask(mask, arr.shape)
    core = _core()
    mn, mx = _roi_min_max(core, arr, m, "image")
    lo, hi = hp.roi_range(mn, mx, rng, arr.dtype)
    if n_levels is not None:
        edges = hp.count_edges(lo, hi, n_levels, arr.dtype)
    else:
        assert width is not None
        edges = hp.width_edges(lo, hi, width)
    out = getattr(core, "digitize_" + hp.suffix(arr.dtype))(arr, m, contiguous(edges, dtype=np.float64), get_num_threads())
    if rng is not None:  # values outside the range go to the first / last level
        top = max(len(edges) - 1 if n_levels is None else n_levels, 1)
        clipped = np.clip(out, 1, top).astype(np.int32)
        out = clipped if m is None else np.where(m, clipped, np.int32(0)).astype(np.int32)
    return out.reshape(np.shape(image))  # a 0-d image stays 0-d


def _first_order_from_counts(
    vals: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], dtype: np.dtype, bin_width: float, voxel_volume: float
) -> dict[str, float]:
    """Features from the count of each distinct value (integer data, one pass over the image)."""
    c = counts
    n = int(c.sum())
    cum = np.cumsum(c)

    def value_at(k: int) -> float:
        return float(vals[int(np.searchsorted(cum, k, side="right"))])

    v = vals.astype(np.float64)
    cf = c.astype(np.float64)
    total = np.float64(int(np.dot(c, vals)))
    mean = total / np.float64(n)
    energy = float(np.dot(cf, v * v)) if n * float(max(abs(v[0]), abs(v[-1]))) ** 2 >= 2.0**62 else float(
        int(np.dot(c, vals * vals))
    )
    d = v - mean
    m2 = float(np.dot(cf, d * d)) / n
    m3 = float(np.dot(cf, d * d * d)) / n
    m4 = float(np.dot(cf, (d * d) * (d * d))) / n
    std = math.sqrt(m2)
    mad = float(np.dot(cf, np.abs(d))) / n
    p10 = hp.percentile_sorted(value_at, n, 10)
    p90 = hp.percentile_sorted(value_at, n, 90)
    p25 = hp.percentile_sorted(value_at, n, 25)
    p75 = hp.percentile_sorted(value_at, n, 75)
    if n % 2:
        median = value_at(n // 2)
    else:
        median = float((np.float64(value_at(n // 2 - 1)) + np.float64(value_at(n // 2))) / 2.0)
    keep = (v >= p10) & (v <= p90)
    ck, vk = c[keep], vals[keep]
    nk = int(ck.sum())
    if nk == 0:  # no voxel within [P10, P90] (two distinct values): NaN, as PyRadiomics
        rmad = math.nan
    else:
        mean_k = np.float64(int(np.dot(ck, vk))) / np.float64(nk)
        rmad = float(np.dot(ck.astype(np.float64), np.abs(vk.astype(np.float64) - mean_k))) / nk
    t = dtype.type
    edges = hp.width_edges(t(vals[0]), t(vals[-1]), bin_width)
    lv = np.digitize(vals, edges)
    level_counts = np.zeros(len(edges) + 1, dtype=np.int64)
    np.add.at(level_counts, lv, c)
    entropy, uniformity = hp.level_stats(level_counts)
    m2s = m2 if m2 != 0 else 1.0
    return _assemble(
        energy, voxel_volume, entropy, float(v[0]), p10, p90, float(v[-1]), float(mean), median, p75 - p25,
        float(v[-1]) - float(v[0]), mad, rmad, math.sqrt(energy / n), std, m3 / m2s**1.5, m4 / m2s**2.0, std**2,
        uniformity,
    )


def _assemble(*values: float) -> dict[str, float]:
    energy, voxel_volume, *rest = values
    out = [float(energy), float(energy) * float(voxel_volume), *[float(r) for r in rest]]
    return dict(zip(hp.FIRST_ORDER_NAMES, out))


def first_order(
    image: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    bin_width: float = 25.0,
    voxel_volume: float = 1.0,
) -> dict[str, float]:
    """PyRadiomics first-order features of the voxels in ``mask`` (all voxels without one).

    Returns a dict with Energy, TotalEnergy (= Energy * ``voxel_volume``, the
    voxel volume in mm³), Entropy, Minimum, 10Percentile, 90Percentile,
    Maximum, Mean, Median, InterquartileRange, Range, MeanAbsoluteDeviation,
    RobustMeanAbsoluteDeviation, RootMeanSquared, StandardDeviation,
    Skewness, Kurtosis, Variance, Uniformity — PyRadiomics' definitions
    (voxelArrayShift 0): percentiles with numpy's linear interpolation,
    population moments, Entropy and Uniformity over the gray levels
    discretized with ``bin_width`` (see :func:`quantize`), flat regions give
    Skewness = Kurtosis = 0; RobustMeanAbsoluteDeviation is NaN when no
    voxel lies within [P10, P90] (PyRadiomics' nanmean of nothing).

    uint8, uint16 and int16 images take one pass: a masked count of every
    value (C++), from which all features follow exactly (sums of integers
    are exact; percentiles, median and the entropy equal PyRadiomics bit for
    bit, moments to rounding). int32 and float images are gathered and
    reduced with NumPy. NaN/inf in the region are refused.
    """
    arr = hp.as_data(image, "image")
    m = hp.as_mask(mask, arr.shape)
    width = hp.positive_real(bin_width, "bin_width")
    vv = hp.positive_real(voxel_volume, "voxel_volume")
    if arr.dtype.itemsize <= 2 and arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        core = _core()
        counts = getattr(core, "hist_keys_" + hp.suffix(arr.dtype))(arr, m, int(info.min), int(info.max), 0, get_num_threads())
        nz = np.flatnonzero(counts)
        return _first_order_from_counts(nz.astype(np.int64) + int(info.min), counts[nz], arr.dtype, width, vv)
    vals = arr[m] if m is not None else arr.ravel()
    return hp.first_order_values(vals, width, vv)


def window(
    hu: npt.ArrayLike, center: float, width: float, *, out_dtype: npt.DTypeLike = np.uint8
) -> npt.NDArray:
    """CT windowing: [center - width/2, center + width/2] onto the output range.

    ``y = (hu - (center - width / 2)) * (top / width)`` in float64, clipped
    to [0, top]; top is 255 for uint8, 65535 for uint16 (rounded half to
    even), 1.0 for float32/float64. E.g. lung ``window(ct, -600, 1500)``,
    mediastinum ``window(ct, 40, 400)``, bone ``window(ct, 400, 1800)``.
    Any ndim; input dtypes as :func:`histogram`; NaN input is refused.
    """
    arr = hp.as_data(hu, "hu")
    lo, scale, top, code, _od = hp.check_window(center, width, out_dtype)
    fn = getattr(_core(), "window_" + hp.suffix(arr.dtype))
    # as_data makes a 0-d input 1-d (np.ascontiguousarray); give back its shape
    return fn(arr, lo, scale, top, code, get_num_threads()).reshape(np.shape(hu))
