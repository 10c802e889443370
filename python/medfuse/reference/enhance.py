"""NumPy twins of ``medfuse.median`` and ``medfuse.bilateral``.

Same signatures, same refusals. The median is exact (a partition of the
gathered window values); the bilateral filter follows cv2.bilateralFilter's
algorithm (circular window, float32 weights and sums; colour weights from
medfuse's float32 exp polynomial where cv2 has tables) with the
kernel's float32 operations in the kernel's order, so it agrees with the
kernel bit for bit.
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
    v.median_window(k, img.dtype)
    b = v.median_border(border)
    v.no_nan(img)
    padded = _pad(img, [s // 2 for s in k], b)
    windows = np.lib.stride_tricks.sliding_window_view(padded, k)
    flat = windows.reshape((*img.shape, -1))
    count = flat.shape[-1]
    return np.partition(flat, count // 2, axis=-1)[..., count // 2].copy()


# 2^g on [-0.5, 0.5], degree 5: the kernels' kExp2C1..5 (c0 = 1)
_C1, _C2, _C3, _C4, _C5 = (np.float32(c) for c in ("0.693146944", "0.240221202", "0.0555071309", "0.00967554096",
                                                    "0.00132764713"))


def _color_weight_f32(v: npt.NDArray, v0: npt.NDArray, coeff: np.float32) -> npt.NDArray:
    """exp(-d^2 / (2 sigma^2)) as the kernels compute it: 2^-y, y = ((v - v0) * coeff)^2 clamped to 125,
    y = n - g with n = rint(y), 2^g = (1 + c1 g) + g^2 ((c2 + c3 g) + g^2 (c4 + c5 g)), times 2^-n (exact)."""
    with np.errstate(over="ignore"):
        t = (v - v0) * coeff
        y = np.minimum(t * t, np.float32(125.0))
    n = np.rint(y)
    g = n - y
    g2 = g * g
    p = (_C1 * g + np.float32(1.0)) + g2 * ((_C3 * g + _C2) + g2 * (_C5 * g + _C4))
    return p * np.ldexp(np.float32(1.0), -n.astype(np.int32)).astype(np.float32)


def bilateral(image: npt.ArrayLike, d: int, sigma_color: float, sigma_space: float) -> npt.NDArray:
    """Twin of :func:`medfuse.bilateral` (same float32 operations in the same order)."""
    img = v.as_image(image, dtypes=v.BILATERAL_DTYPES, ndims=(2,))
    _, sc, ss, radius = v.bilateral_params(d, sigma_color, sigma_space)
    v.finite_image(img)
    v.bilateral_range(img)
    f32 = np.float32
    if img.dtype == np.float32:
        if float(img.min()) == float(img.max()):
            return img.copy()
    with np.errstate(divide="ignore", over="ignore"):
        coeff = np.float64(0.8493218002880191) / np.float64(sc)  # sqrt(log2(e) / 2) / sigma_color, as the kernel
    coeff = f32(min(float(coeff), float(np.finfo(f32).max)))
    h, w = img.shape
    pad = _pad(img, (radius, radius), "reflect101")
    center = img.astype(f32)
    total = np.zeros((h, w), f32)
    wsum = np.zeros((h, w), f32)
    for i in range(-radius, radius + 1):
        for j in range(-radius, radius + 1):
            r = np.sqrt(float(i * i + j * j))
            if r > radius:
                continue
            sw = f32(np.exp(r * r * (-0.5 / (ss * ss))))
            nb = pad[radius + i: radius + i + h, radius + j: radius + j + w]
            val = nb.astype(f32)
            wt = sw * _color_weight_f32(val, center, coeff)
            total = total + val * wt
            wsum = wsum + wt
    res = total / wsum
    if img.dtype == np.uint8:
        return np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return res
