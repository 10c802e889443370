"""NumPy twins of medfuse.convolve: same signatures, same refusals, float64 sums.

Readable first: the image is padded with numpy.pad (the border rules map to
pad modes; kernels larger than the image pad in several rounds) and the
correlation is a sum of shifted slices, one per non-zero tap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..kernels import _convolve_plan as plan
from ..kernels import _validate as v

__all__ = ["convolve", "filter_bank", "gaussian", "sep_filter", "unsharp_mask"]

_PAD_MODE = {"reflect101": "reflect", "reflect": "symmetric", "replicate": "edge", "constant": "constant",
             "wrap": "wrap"}


def _index(i: npt.NDArray[np.int64], n: int, border: str) -> npt.NDArray[np.int64]:
    """Source index of (possibly out-of-range) positions i on an axis of length n; -1 = constant."""
    inside = (i >= 0) & (i < n)
    if border == "constant":
        return np.where(inside, i, -1)
    if border == "replicate":
        return np.clip(i, 0, n - 1)
    if border == "wrap":
        return np.mod(i, n)
    if border == "reflect":
        r = np.mod(i, 2 * n)
        return np.where(r >= n, 2 * n - 1 - r, r)
    if n == 1:
        return np.zeros_like(i)
    r = np.mod(i, 2 * n - 2)
    return np.where(r >= n, 2 * n - 2 - r, r)


def _pad(x: npt.NDArray[np.float64], kshape: Sequence[int], border: str, value: float) -> npt.NDArray[np.float64]:
    """x padded by (k // 2, k - 1 - k // 2) on every axis, by index tables."""
    out = x
    for axis, k in enumerate(kshape):
        n = x.shape[axis]
        idx = _index(np.arange(-(k // 2), n + k - 1 - k // 2), n, border)
        taken = np.take(out, np.maximum(idx, 0), axis=axis)
        if border == "constant":
            shape = [1] * x.ndim
            shape[axis] = idx.size
            taken = np.where((idx < 0).reshape(shape), value, taken)
        out = taken
    return out


def _correlate64(x: npt.NDArray[np.float64], k: npt.NDArray[np.float64], border: str, value: float) -> npt.NDArray[np.float64]:
    p = _pad(x, k.shape, border, value)
    out = np.zeros(x.shape, dtype=np.float64)
    for off in zip(*np.nonzero(k)):
        sl = tuple(slice(o, o + n) for o, n in zip(off, x.shape))
        out += k[off] * p[sl]
    return out


def _finish(r: npt.NDArray[np.float64], out: np.dtype) -> npt.NDArray[Any]:
    if out.kind in "ui":
        info = np.iinfo(out)
        r = np.nan_to_num(np.clip(np.rint(r), info.min, info.max), nan=0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        return r.astype(out)


def convolve(
    image: npt.ArrayLike,
    kernel: npt.ArrayLike,
    *,
    border: str = "reflect101",
    value: float = 0.0,
    out_dtype: npt.DTypeLike | None = None,
) -> npt.NDArray[Any]:
    """Twin of medfuse.convolve (float64 sums)."""
    img = v.as_image(image)
    b = plan.border(border)
    val = plan.fill_value(value)
    out = plan.out_dtype(out_dtype, img)
    k = plan.kernel_nd(kernel, img.ndim)
    with np.errstate(invalid="ignore", over="ignore"):
        return _finish(_correlate64(img.astype(np.float64), k, b, val), out)


def _sep64(x: npt.NDArray[np.float64], kernels: Sequence[npt.NDArray[np.float64]], border: str,
           value: float) -> npt.NDArray[np.float64]:
    # Pad every axis first (constant padding before any pass), then 1D passes.
    p = _pad(x, [k.size for k in kernels], border, value)
    for axis, k in enumerate(kernels):
        n = x.shape[axis]
        acc = np.zeros(p.shape[:axis] + (n,) + p.shape[axis + 1:], dtype=np.float64)
        for j in np.nonzero(k)[0]:
            acc += k[j] * np.take(p, np.arange(j, j + n), axis=axis)
        p = acc
    return p


def sep_filter(
    image: npt.ArrayLike,
    kernels: Sequence[npt.ArrayLike],
    *,
    border: str = "reflect101",
    value: float = 0.0,
    out_dtype: npt.DTypeLike | None = None,
) -> npt.NDArray[Any]:
    """Twin of medfuse.sep_filter (float64 sums)."""
    img = v.as_image(image)
    b = plan.border(border)
    val = plan.fill_value(value)
    out = plan.out_dtype(out_dtype, img)
    ks = plan.kernels_1d(kernels, img.ndim)
    with np.errstate(invalid="ignore", over="ignore"):
        return _finish(_sep64(img.astype(np.float64), ks, b, val), out)


def gaussian(
    image: npt.ArrayLike,
    sigma: float | Sequence[float],
    *,
    truncate: float = 4.0,
    border: str = "reflect101",
    spacing: Sequence[float] | None = None,
    value: float = 0.0,
    out_dtype: npt.DTypeLike | None = None,
) -> npt.NDArray[Any]:
    """Twin of medfuse.gaussian (float64 sums)."""
    img = v.as_image(image)
    sig = plan.sigmas(sigma, img.ndim, spacing)
    t = plan.truncate_value(truncate)
    b = plan.border(border)
    val = plan.fill_value(value)
    out = plan.out_dtype(out_dtype, img)
    ks = plan.gaussian_kernels(sig, t)
    with np.errstate(invalid="ignore", over="ignore"):
        return _finish(_sep64(img.astype(np.float64), ks, b, val), out)


def unsharp_mask(
    image: npt.ArrayLike,
    sigma: float | Sequence[float],
    amount: float,
    *,
    threshold: float = 0.0,
    truncate: float = 4.0,
    border: str = "reflect101",
) -> npt.NDArray[Any]:
    """Twin of medfuse.unsharp_mask."""
    img = v.as_image(image)
    a = v.real_number(amount, "amount")
    thr = v.real_number(threshold, "threshold", minimum=0.0)
    blurred = gaussian(img, sigma, truncate=truncate, border=border, out_dtype=np.float64)
    return plan.unsharp_combine(img, blurred, a, thr)


def filter_bank(
    image: npt.ArrayLike,
    *,
    kind: str = "log",
    sigmas: float | Sequence[float] = (1.0, 2.0, 4.0),
    normalize: bool = True,
    frequencies: float | Sequence[float] = (0.1, 0.2, 0.4),
    orientations: int = 4,
    bandwidth: float = 1.0,
    laws_vectors: Sequence[str] | None = None,
    laws_window: int | Sequence[int] = 15,
    truncate: float = 4.0,
    border: str = "reflect101",
) -> tuple[npt.NDArray[np.float32], list[str]]:
    """Twin of medfuse.filter_bank (float64 sums, float32 stack)."""
    img = v.as_image(image)
    k = plan.bank_kind(kind, img.ndim)
    b = plan.border(border)
    t = plan.truncate_value(truncate)
    specs = plan.bank_specs(k, img.ndim, sigmas, normalize, frequencies, orientations, bandwidth,
                            laws_vectors, laws_window, t)
    x = img.astype(np.float64)
    stack = np.empty((len(specs),) + img.shape, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for i, spec in enumerate(specs):
            if spec.kind == "sep_sum":
                stack[i] = sum(_sep64(x, ks, b, 0.0) for ks in spec.terms) * spec.scale
            elif spec.kind == "gabor":
                assert spec.kernel is not None
                re = _correlate64(x, np.ascontiguousarray(spec.kernel.real), b, 0.0)
                im = _correlate64(x, np.ascontiguousarray(spec.kernel.imag), b, 0.0)
                stack[i] = np.hypot(re, im)
            else:
                r = np.abs(_sep64(x, spec.terms[0], b, 0.0))
                stack[i] = _sep64(r, spec.terms[1], b, 0.0)
    return stack, [s.name for s in specs]
