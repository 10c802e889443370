"""Planning shared by medfuse.histogram and its NumPy twin.

numpy.histogram's arithmetic is reproduced exactly: the outer edges, the
dtype of the edges (``np.result_type(first, last, x)``, float64 for integer
data) and the dtypes of each step of the bin-index computation
``((x - first) / (last - first)) * bins`` are taken from NumPy itself on
one-element probes, so the C++ kernel performs the very same IEEE operations.
For 8/16-bit integer data (and int32 data over a narrow range) the bin of
every possible value is computed once with that arithmetic; when bins are
aligned to powers of two of the value range the kernel counts
``(x - lo) >> shift`` directly and the counts are folded into bins.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from . import _validate as v

HIST_DTYPES = (np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64)
_HIST_DTYPES = frozenset(np.dtype(t) for t in HIST_DTYPES)
MAX_LUT = 1 << 20  # integer values whose bins are tabulated (int32 over a narrow range)


def suffix(dtype: np.dtype) -> str:
    return v.core_suffix(dtype)


def _dtype_names() -> str:
    return ", ".join(np.dtype(d).name for d in HIST_DTYPES)


def as_data(x: object, name: str = "x") -> npt.NDArray:
    """Any-ndim array of a supported dtype, C-contiguous, native byte order."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind not in "iuf" or np.dtype(arr.dtype.newbyteorder("=")) not in _HIST_DTYPES:
        raise TypeError(f"{name} must have dtype {_dtype_names()}; got {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return v.contiguous(arr, dtype=arr.dtype.newbyteorder("="))


def as_mask(mask: object, shape: tuple[int, ...], name: str = "mask") -> npt.NDArray[np.bool_] | None:
    if mask is None:
        return None
    m = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array; got dtype {m.dtype}")
    if m.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of the data {tuple(shape)}; got {m.shape}")
    if not m.any():
        raise ValueError(f"{name} selects no voxels (all False)")
    return v.contiguous(m)


def as_weights(weights: object, shape: tuple[int, ...]) -> npt.NDArray[np.float64] | None:
    if weights is None:
        return None
    w = weights if isinstance(weights, np.ndarray) else np.asarray(weights)
    if w.dtype.kind not in "iuf":
        raise TypeError(f"weights must be a real (integer or float) array; got dtype {w.dtype}")
    if w.shape != tuple(shape):
        raise ValueError(f"weights must have the shape of x {tuple(shape)}; got {w.shape}")
    return v.contiguous(w, dtype=np.float64)


def check_bins(bins: object) -> int | npt.NDArray:
    """An int >= 1, or a 1D array of >= 2 non-decreasing, non-NaN real edges."""
    if isinstance(bins, (bool, np.bool_)):
        raise TypeError(f"bins must be a positive integer or a 1D array of edges; got {bins!r}")
    if isinstance(bins, str):
        raise TypeError(f"bins must be a positive integer or a 1D array of edges; got {bins!r}")
    if isinstance(bins, numbers.Integral):
        n = int(bins)
        if n < 1:
            raise ValueError(f"bins must be positive, when an integer; got {n}")
        return n
    if isinstance(bins, numbers.Real):
        raise TypeError(f"bins must be a positive integer or a 1D array of edges; got {bins!r}")
    try:
        e = np.asarray(bins)
    except Exception:
        raise TypeError(f"bins must be a positive integer or a 1D array of edges; got {bins!r}") from None
    if e.ndim == 0 and e.dtype.kind in "iu":
        return check_bins(int(e))
    if e.dtype.kind not in "iuf":
        raise TypeError(f"bins edges must be real numbers; got dtype {e.dtype}")
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"bins must be 1D with at least 2 edges, when an array; got shape {e.shape}")
    if e.dtype.kind == "f" and np.isnan(e).any():
        raise ValueError("bins edges must not contain NaN")
    if np.any(e[:-1] > e[1:]):
        raise ValueError("bins must increase monotonically, when an array")
    return e


def check_range(range_: object) -> tuple[Any, Any] | None:
    if range_ is None:
        return None
    lo: Any
    hi: Any
    try:
        lo, hi = range_  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"range must be None or a pair (min, max); got {range_!r}") from None
    for bound in (lo, hi):
        if isinstance(bound, (bool, np.bool_)) or not isinstance(bound, (numbers.Real, np.number)) or isinstance(
            bound, (complex, np.complexfloating)
        ):
            raise TypeError(f"range values must be real numbers; got {bound!r}")
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        raise ValueError(f"range must be finite; got [{lo}, {hi}]")
    if not lo < hi:
        raise ValueError(f"range must have min < max; got [{lo}, {hi}]")
    return lo, hi


def outer_edges(first: Any, last: Any) -> tuple[Any, Any]:
    """numpy's adjustment of an empty span (``_get_outer_edges``)."""
    if first == last:
        first = first - 0.5
        last = last + 0.5
    return first, last


def unsigned_subtract(a: Any, b: Any) -> Any:
    """numpy.lib._histograms_impl._unsigned_subtract (a >= b)."""
    dt = np.result_type(a, b)
    if dt.kind == "i":
        udt = np.dtype(dt.str.replace("i", "u"))
        return np.subtract(np.asarray(a, dtype=dt), np.asarray(b, dtype=dt), casting="unsafe", dtype=udt)
    return np.subtract(a, b, dtype=dt)


@dataclass(frozen=True)
class UniformPlan:
    edges: npt.NDArray  # bin edges, dtype B (read-only; copy before returning)
    b: np.dtype  # edges dtype / subtraction dtype
    d: np.dtype  # division and multiplication dtype
    lo_b: float  # first edge as B
    denom: float  # last - first as D
    lo_thr: float  # smallest kept value of the data dtype
    hi_thr: float  # largest kept value
    empty: bool  # no value of the data dtype is kept
    keys: tuple[int, int, int, npt.NDArray[np.int64]] | None  # (lo, hi, shift, bin of each key)


def uniform_indices(vals: npt.NDArray, first: Any, last: Any, nbins: int, edges: npt.NDArray) -> npt.NDArray[np.intp]:
    """Bin index of each value (all within [first, last]), numpy's arithmetic."""
    tmp = vals.astype(edges.dtype, copy=False)
    norm_denom = unsigned_subtract(last, first)
    f = (unsigned_subtract(tmp, first) / norm_denom) * nbins
    idx = f.astype(np.intp)
    idx[idx == nbins] -= 1
    idx[tmp < edges[idx]] -= 1
    inc = (tmp >= edges[idx + 1]) & (idx != nbins - 1)
    idx[inc] += 1
    return idx


def _thresholds(dtype: np.dtype, first: Any, last: Any) -> tuple[float, float, bool]:
    """Smallest / largest value v of ``dtype`` with numpy's ``v >= first`` / ``v <= last``."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo = max(int(info.min), math.ceil(first))
        hi = min(int(info.max), math.floor(last))
        return float(lo), float(hi), lo > hi
    finfo = np.finfo(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        c0 = np.asarray(first).astype(dtype)
        cands = np.array([np.nextafter(c0, -np.inf), c0, np.nextafter(c0, np.inf)], dtype=dtype)
        ok = cands >= first
        lo = cands[ok].min() if ok.any() else np.inf
        c1 = np.asarray(last).astype(dtype)
        cands = np.array([np.nextafter(c1, -np.inf), c1, np.nextafter(c1, np.inf)], dtype=dtype)
        ok = cands <= last
        hi = cands[ok].max() if ok.any() else -np.inf
    lo = max(float(lo), float(-finfo.max))
    hi = min(float(hi), float(finfo.max))
    return lo, hi, not lo <= hi


@functools.lru_cache(maxsize=256)
def _uniform_plan_cached(dtype_str: str, nbins: int, first: Any, last: Any, _tf: type, _tl: type) -> UniformPlan:
    dtype = np.dtype(dtype_str)
    probe = np.zeros(1, dtype=dtype)
    b = np.result_type(first, last, probe)
    if np.issubdtype(b, np.integer):
        b = np.result_type(b, float)
    b = np.dtype(b)
    with np.errstate(over="ignore", invalid="ignore"):
        norm_denom = unsigned_subtract(last, first)
        step = unsigned_subtract(np.zeros(1, dtype=b), first) / norm_denom
        d = np.dtype(step.dtype)
        denom = d.type(norm_denom)
        lo_b = b.type(first)
        span_b = b.type(last) - lo_b
    if not (np.isfinite(denom) and np.isfinite(span_b)):
        raise ValueError(
            f"range [{first}, {last}] is too wide for {b.name} arithmetic (last - first overflows)"
        )
    edges = np.linspace(first, last, nbins + 1, endpoint=True, dtype=b)
    if np.any(edges[:-1] >= edges[1:]):
        raise ValueError(f"bins: too many bins for data range. Cannot create {nbins} finite-sized bins.")
    lo_thr, hi_thr, empty = _thresholds(dtype, first, last)
    keys = None
    if dtype.kind in "iu" and not empty and hi_thr - lo_thr < MAX_LUT:
        lo_i, hi_i = int(lo_thr), int(hi_thr)
        vals = np.arange(lo_i, hi_i + 1, dtype=np.int64).astype(dtype)
        lut = uniform_indices(vals, first, last, nbins, edges)
        keys = _key_plan(lo_i, hi_i, lut)
    edges.setflags(write=False)
    return UniformPlan(edges, b, d, float(lo_b), float(denom), lo_thr, hi_thr, empty, keys)


def _key_plan(lo: int, hi: int, lut: npt.NDArray) -> tuple[int, int, int, npt.NDArray[np.int64]]:
    """Largest shift s such that the bin is constant on each group of 2**s values from lo."""
    n = hi - lo + 1
    shift = 0
    for s in range(1, 17):
        g = 1 << s
        if g > n:
            break
        m = (n // g) * g
        head = lut[:m].reshape(-1, g)
        if not (head == head[:, :1]).all():
            break
        tail = lut[m:]
        if tail.size and not (tail == tail[0]).all():
            break
        shift = s
    fold = v.contiguous(lut[:: 1 << shift], dtype=np.int64)
    return lo, hi, shift, fold


def uniform_plan(dtype: np.dtype, nbins: int, first: Any, last: Any) -> UniformPlan:
    return _uniform_plan_cached(np.dtype(dtype).str, nbins, first, last, cast(Hashable, type(first)), cast(Hashable, type(last)))


def edges_key_plan(dtype: np.dtype, edges: npt.NDArray) -> tuple[int, int, int, npt.NDArray[np.int64]] | None:
    """Key plan for integer data over explicit edges, or None (use the edges kernel)."""
    if dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    e = edges.astype(np.float64)
    lo = max(int(info.min), math.ceil(e[0]))
    hi = min(int(info.max), math.floor(e[-1]))
    if lo > hi or hi - lo >= MAX_LUT:
        return None
    vals = np.arange(lo, hi + 1, dtype=np.int64)
    lut = edges_indices(vals, edges)
    return _key_plan(lo, hi, lut)


def edges_indices(vals: npt.NDArray, edges: npt.NDArray) -> npt.NDArray[np.intp]:
    """Bin of each value within [edges[0], edges[-1]] (numpy's searchsorted rule)."""
    n = edges.size - 1
    idx = np.searchsorted(edges, vals, side="right") - 1
    return np.minimum(idx, n - 1)


# ---- PyRadiomics binning and first-order helpers (shared with the twin) -----------
FIRST_ORDER_NAMES = (
    "Energy",
    "TotalEnergy",
    "Entropy",
    "Minimum",
    "10Percentile",
    "90Percentile",
    "Maximum",
    "Mean",
    "Median",
    "InterquartileRange",
    "Range",
    "MeanAbsoluteDeviation",
    "RobustMeanAbsoluteDeviation",
    "RootMeanSquared",
    "StandardDeviation",
    "Skewness",
    "Kurtosis",
    "Variance",
    "Uniformity",
)
MAX_LEVELS = 1 << 24


def positive_real(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    v = float(value)  # type: ignore[arg-type]
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0; got {v}")
    return v


def check_binning(levels: object, bin_width: object) -> tuple[int | None, float | None]:
    if levels is not None and bin_width is not None:
        raise ValueError("give levels (fixed bin count) or bin_width (fixed bin width), not both")
    if levels is not None:
        if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, numbers.Integral):
            raise TypeError(f"levels must be an integer >= 1; got {levels!r}")
        n = int(levels)
        if n < 1 or n > MAX_LEVELS:
            raise ValueError(f"levels must be between 1 and {MAX_LEVELS}; got {n}")
        return n, None
    return None, positive_real(25.0 if bin_width is None else bin_width, "bin_width")


def width_edges(minimum: Any, maximum: Any, bin_width: float) -> npt.NDArray:
    """PyRadiomics ``getBinEdges`` for a fixed bin width (numpy scalars in, same dtypes)."""
    with np.errstate(over="ignore", invalid="ignore"):
        low = minimum - (minimum % bin_width)
        high = maximum + 2 * bin_width
        span = float(high) - float(low)
    if not (math.isfinite(span) and math.isfinite(float(low))):
        raise ValueError("bin_width: the data range overflows the binning arithmetic")
    if span / bin_width > MAX_LEVELS:
        raise ValueError(
            f"bin_width {bin_width:g} is too small for the data range [{minimum}, {maximum}] "
            f"(more than {MAX_LEVELS} levels)"
        )
    edges = np.arange(low, high, bin_width)
    if len(edges) == 1:  # flat region: one bin
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return np.asarray(edges)


def count_edges(minimum: Any, maximum: Any, levels: int, dtype: np.dtype) -> npt.NDArray:
    """PyRadiomics ``getBinEdges`` for a fixed bin count: numpy.histogram's edges, last + 1."""
    first, last = outer_edges(minimum, maximum)
    edges = np.array(uniform_plan(dtype, levels, first, last).edges)
    edges[-1] += 1
    return edges


def roi_range(lo: Any, hi: Any, range_: tuple[Any, Any] | None, dtype: np.dtype) -> tuple[Any, Any]:
    """The (min, max) binning starts from: the ROI's, or the given range as data-dtype scalars."""
    if range_ is None:
        return lo, hi
    t = np.dtype(dtype).type
    return t(range_[0]), t(range_[1])


def percentile_sorted(value_at: Any, n: int, q: float) -> float:
    """numpy.percentile(..., method='linear') given the k-th smallest value as value_at(k)."""
    quantile = np.true_divide(q, 100)
    vi = (n - 1) * quantile
    if vi >= n - 1:
        return float(value_at(n - 1))
    prev = int(np.floor(vi))
    a = np.float64(value_at(prev))
    b = np.float64(value_at(prev + 1))
    t = vi - prev
    diff = b - a
    if t >= 0.5:
        return float(b - diff * (1 - t))
    return float(a + diff * t)


def level_stats(level_counts: npt.NDArray[np.int64]) -> tuple[float, float]:
    """PyRadiomics Entropy and Uniformity from the counts of each discretized level."""
    c = level_counts[level_counts > 0]
    p = c.astype(float) / float(c.sum())
    eps = np.spacing(1)
    entropy = -1.0 * np.sum(p * np.log2(p + eps))
    uniformity = np.nansum(p**2)
    return float(entropy), float(uniformity)


_WINDOW_TOP = {np.dtype(np.uint8): (255.0, "u8"), np.dtype(np.uint16): (65535.0, "u16"),
               np.dtype(np.float32): (1.0, "f32"), np.dtype(np.float64): (1.0, "f64")}


def check_window(center: object, width: object, out_dtype: object) -> tuple[float, float, float, str, np.dtype]:
    c = v.real_number(center, "center")
    w = positive_real(width, "width")
    try:
        od = np.dtype(out_dtype)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"out_dtype must be uint8, uint16, float32 or float64; got {out_dtype!r}") from None
    if od not in _WINDOW_TOP:
        raise TypeError(f"out_dtype must be uint8, uint16, float32 or float64; got {od}")
    top, code = _WINDOW_TOP[od]
    lo = c - w / 2.0
    return lo, top / w, top, code, od


def first_order_values(vals: npt.NDArray, bin_width: float, voxel_volume: float) -> dict[str, float]:
    """PyRadiomics firstorder formulas on the region's values (any real dtype)."""
    if vals.dtype.kind == "f" and not np.isfinite(vals).all():
        raise ValueError("image contains NaN or infinite values inside the region")
    x = vals.astype(np.float64)
    n = x.size
    energy = np.nansum(x**2)
    mean = np.nanmean(x)
    p10 = np.nanpercentile(x, 10)
    p90 = np.nanpercentile(x, 90)
    iqr = np.nanpercentile(x, 75) - np.nanpercentile(x, 25)
    mad = np.nanmean(np.absolute(x - mean))
    r = x[(x >= p10) & (x <= p90)]
    rmad = np.nanmean(np.absolute(r - np.nanmean(r))) if r.size else np.nan
    m2 = np.nanmean((x - mean) ** 2)
    m3 = np.nanmean((x - mean) ** 3)
    m4 = np.nanmean((x - mean) ** 4)
    m2s = m2 if m2 != 0 else 1.0
    std = np.nanstd(x)
    edges = width_edges(min(vals), max(vals), bin_width)
    levels = np.digitize(vals, edges)
    _, counts = np.unique(levels, return_counts=True)
    entropy, uniformity = level_stats(counts)
    values = [
        energy, energy * voxel_volume, entropy, np.nanmin(x), p10, p90, np.nanmax(x), mean, np.nanmedian(x), iqr,
        np.nanmax(x) - np.nanmin(x), mad, rmad, np.sqrt(energy / n), std, m3 / m2s**1.5, m4 / m2s**2.0, std**2,
        uniformity,
    ]
    return dict(zip(FIRST_ORDER_NAMES, (float(v) for v in values)))
