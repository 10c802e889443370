"""Histograms and first-order statistics (C++ kernels).

``histogram`` is ``numpy.histogram`` exactly (closed last bin, numpy's float
arithmetic on and next to edges) for any ndim, with a mask; ``quantize`` is
PyRadiomics' gray-level discretisation; ``first_order`` the PyRadiomics
first-order features; ``window`` CT windowing.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

from . import _histogram_plan as hp
from ._threads import get_num_threads

__all__ = ["first_order", "histogram", "quantize", "window"]


def _core():  # imported lazily so that the twins work without the extension
    from . import _core as core

    return core


def _fold_exact(keys: npt.NDArray[np.int64], fold: npt.NDArray[np.int64], nbins: int) -> npt.NDArray[np.int64]:
    out = np.zeros(nbins, dtype=np.int64)
    np.add.at(out, fold, keys)
    return out


def _data_range(core: Any, x: npt.NDArray, mask: Optional[npt.NDArray[np.bool_]]) -> tuple[Any, Any]:
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
    range: Optional[tuple[float, float]] = None,
    *,
    mask: Optional[npt.ArrayLike] = None,
    weights: Optional[npt.ArrayLike] = None,
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
    rng = hp.check_range(range)
    m = hp.as_mask(mask, arr.shape)
    w = hp.as_weights(weights, arr.shape)
    core = _core()
    threads = get_num_threads()
    sfx = hp.suffix(arr.dtype)
    if w is not None and m is not None:  # numpy's blocks run over x[mask]
        arr, w, m = np.ascontiguousarray(arr[m]), np.ascontiguousarray(w[m]), None
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
    e64 = np.ascontiguousarray(e, dtype=np.float64)
    counts = getattr(core, "hist_edges_" + sfx)(arr, m, w, e64, threads)
    return counts, e.copy()


def _is_identity(fold: npt.NDArray[np.int64], nbins: int) -> bool:
    return fold.size == nbins and bool(fold[0] == 0) and bool(fold[-1] == nbins - 1)
