"""NumPy twins of ``medfuse.histogram``, ``quantize``, ``first_order`` and ``window``.

Same signatures and refusals (shared checks in ``medfuse.kernels._histogram_plan``).
``histogram`` is ``numpy.histogram`` on the selected values; ``quantize`` and
``first_order`` are PyRadiomics' formulas written out with NumPy on the
region's values; ``window`` is the float64 formula.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..kernels import _histogram_plan as hp

__all__ = ["first_order", "histogram", "quantize", "window"]


def histogram(
    x: npt.ArrayLike,
    bins: int | npt.ArrayLike = 10,
    range: tuple[float, float] | None = None,
    *,
    mask: npt.ArrayLike | None = None,
    weights: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray, npt.NDArray]:
    """numpy.histogram of ``x[mask]`` (weights as float64)."""
    arr = hp.as_data(x)
    b = hp.check_bins(bins)
    rng = hp.check_range(range)
    m = hp.as_mask(mask, arr.shape)
    w = hp.as_weights(weights, arr.shape)
    vals = arr[m] if m is not None else arr.ravel()
    wv = None if w is None else (w[m] if m is not None else w.ravel())
    if isinstance(b, int) and rng is None and vals.dtype.kind == "f" and not np.isfinite(vals).all():
        raise ValueError("x: autodetected range is not finite; pass range=")
    if isinstance(b, int):
        first, last = (vals.min(), vals.max()) if rng is None else rng
        first, last = hp.outer_edges(first, last)
        hp.uniform_plan(vals.dtype, b, first, last)  # same refusals (too many bins, overflow)
        return np.histogram(vals, b, (first, last), weights=wv)
    return np.histogram(vals, b, weights=wv)


def _roi(arr: npt.NDArray, m: npt.NDArray[np.bool_] | None, name: str) -> npt.NDArray:
    vals = arr[m] if m is not None else arr.ravel()
    if vals.dtype.kind == "f":
        if np.isnan(vals).any():
            raise ValueError(f"{name} contains NaN inside the region")
        if not np.isfinite(vals).all():
            raise ValueError(f"{name} contains infinite values inside the region")
    return vals


def quantize(
    image: npt.ArrayLike,
    *,
    levels: int | None = None,
    bin_width: float | None = None,
    range: tuple[float, float] | None = None,
    mask: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int32]:
    """PyRadiomics getBinEdges + numpy.digitize on the region's values."""
    arr = hp.as_data(image, "image")
    n_levels, width = hp.check_binning(levels, bin_width)
    rng = hp.check_range(range)
    m = hp.as_mask(mask, arr.shape)
    vals = _roi(arr, m, "image")
    lo, hi = hp.roi_range(min(vals), max(vals), rng, arr.dtype)
    if n_levels is not None:
        edges = np.histogram(vals, n_levels, None if rng is None else (lo, hi))[1].copy()
        edges[-1] += 1
    else:
        assert width is not None
        edges = hp.width_edges(lo, hi, width)
    q = np.digitize(vals, edges).astype(np.int32)
    if rng is not None:
        top = len(edges) - 1 if n_levels is None else n_levels
        q = np.clip(q, 1, max(top, 1)).astype(np.int32)
    out = np.zeros(arr.shape, dtype=np.int32)
    if m is not None:
        out[m] = q
    else:
        out[...] = q.reshape(arr.shape)
    return out


def first_order(
    image: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    *,
    bin_width: float = 25.0,
    voxel_volume: float = 1.0,
) -> dict[str, float]:
    """PyRadiomics first-order features, NumPy on the region's values."""
    arr = hp.as_data(image, "image")
    m = hp.as_mask(mask, arr.shape)
    width = hp.positive_real(bin_width, "bin_width")
    vv = hp.positive_real(voxel_volume, "voxel_volume")
    return hp.first_order_values(_roi(arr, m, "image"), width, vv)


def window(
    hu: npt.ArrayLike, center: float, width: float, *, out_dtype: npt.DTypeLike = np.uint8
) -> npt.NDArray:
    """(hu - (center - width/2)) * (top / width), clipped to [0, top], rounded for integer output."""

    arr = hp.as_data(hu, "hu")
    lo, scale, top, _code, od = hp.check_window(center, width, out_dtype)
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("hu contains NaN")
    y = np.clip((arr.astype(np.float64) - lo) * scale, 0.0, top)
    if od.kind == "u":
        y = np.rint(y)
    return y.astype(od)
