"""NumPy twins of ``medfuse.median`` and ``medfuse.bilateral``.

Same signatures, same refusals. The median is exact (a partition of the
gathered window values); the bilateral filter follows cv2.bilateralFilter's
algorithm (circular window, float32 weights from lookup tables) in float64
accumulation, so it agrees with the kernel to within rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..kernels import _validate as v
from .convolve import _index  # source index for every border mode, shared by the twins

__all__ = ["bilateral", "median"]


def _pad(x: npt.NDArray, radius: Sequence[int], border: str) -> npt.NDArray:
    for axis, r in enumerate(radius):
        n = x.shape[axis]
        idx = _index(np.arange(-r, n + r, dtype=np.int64), n, border)
        x = np.take(x, idx, axis=axis)
    return x


def median(
    image: npt.ArrayLike, size: int | Sequence[int], *, border: str = "reflect101"
) -> npt.NDArray:
    """Twin of :func:`medfuse.median`."""
    img = v.as_image(image, dtypes=v.MEDIAN_DTYPES)
    k = v.median_size(size, img.ndim)
    b = v.median_border(border)
    v.no_nan(img)
    padded = _pad(img, [s // 2 for s in k], b)
    windows = np.lib.stride_tricks.sliding_window_view(padded, k)
    flat = windows.reshape((*img.shape, -1))
    count = flat.shape[-1]
    return np.partition(flat, count // 2, axis=-1)[..., count // 2].copy()


def bilateral(image: npt.ArrayLike, d: int, sigma_color: float, sigma_space: float) -> npt.NDArray:
    """Twin of :func:`medfuse.bilateral` (same float32 operations in the same order)."""
    img = v.as_image(image, dtypes=v.BILATERAL_DTYPES, ndims=(2,))
    _, sc, ss, radius = v.bilateral_params(d, sigma_color, sigma_space)
    v.finite_image(img)
    v.bilateral_range(img)
    f32 = np.float32
    if img.dtype == np.float32:
        lo, hi = float(img.min()), float(img.max())
        if lo == hi:
            return img.copy()
        bins = 1 << 12
        scale = f32(bins) / f32(hi - lo)
        vals = np.arange(bins + 2) / float(scale)
        lut = np.exp(vals * vals * (-0.5 / (sc * sc))).astype(f32)
        zero = np.nonzero(lut == 0)[0]
        if zero.size:  # cv2 stops at the first zero weight
            lut[zero[0]:] = 0
    else:
        lut = np.exp(np.arange(256.0) ** 2 * (-0.5 / (sc * sc))).astype(f32)
    h, w = img.shape
    pad = _pad(img, (radius, radius), "reflect101")
    center = img.astype(f32) if img.dtype == np.float32 else img.astype(np.int32)
    total = np.zeros((h, w), f32)
    wsum = np.zeros((h, w), f32)
    for i in range(-radius, radius + 1):
        for j in range(-radius, radius + 1):
            r = np.sqrt(float(i * i + j * j))
            if r > radius:
                continue
            sw = f32(np.exp(r * r * (-0.5 / (ss * ss))))
            nb = pad[radius + i: radius + i + h, radius + j: radius + j + w]
            if img.dtype == np.float32:
                alpha = np.abs(nb - center) * scale
                idx = np.floor(alpha).astype(np.int64)
                alpha = alpha - idx.astype(f32)
                cw = lut[idx] + alpha * (lut[idx + 1] - lut[idx])
                val = nb
            else:
                cw = lut[np.abs(nb.astype(np.int32) - center)]
                val = nb.astype(f32)
            wt = sw * cw
            total = total + val * wt
            wsum = wsum + wt
    res = total / wsum
    if img.dtype == np.uint8:
        return np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return res
