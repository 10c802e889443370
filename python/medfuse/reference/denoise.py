"""NumPy twin of ``medfuse.nl_means``.

Same signature, same refusals, same weight table (built by the shared plan)
and the same float32 operations in the same order, so the results are
identical to the kernel's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..kernels import _validate as v
from ..kernels._denoise_plan import NLM_DTYPES, nl_means_params

__all__ = ["nl_means"]


def nl_means(
    image: npt.ArrayLike,
    h: float,
    *,
    patch_size: int = 7,
    search_size: int = 21,
    sigma: float = 0.0,
) -> npt.NDArray:
    """Twin of :func:`medfuse.nl_means`."""
    img = v.as_image(image, dtypes=NLM_DTYPES, ndims=(2,))
    pr, sr, lut, scale = nl_means_params(h, patch_size, search_size, sigma)
    v.check_finite_image(img)
    rows, cols = img.shape
    big = pr + sr
    yi = _reflect101(np.arange(-big, rows + big), rows)
    xi = _reflect101(np.arange(-big, cols + big), cols)
    work = np.int32 if img.dtype == np.uint8 else np.float32
    pad = img[np.ix_(yi, xi)].astype(work)
    bins = np.float32(len(lut) - 1)
    # d = 0 first (distance 0: weight lut[0]), then the half offsets (see _accumulate).
    acc_w = np.full((rows, cols), lut[0], np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # huge floats: inf distances weigh 0, as in the kernel
        acc_v = lut[0] * pad[big : big + rows, big : big + cols].astype(np.float32)
        _accumulate(pad, lut, scale, bins, pr, sr, acc_w, acc_v)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        res = acc_v / acc_w
    if img.dtype == np.uint8:
        return np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return res


def _accumulate(
    pad: npt.NDArray, lut: npt.NDArray[np.float32], scale: np.float32, bins: np.float32,
    pr: int, sr: int, acc_w: npt.NDArray[np.float32], acc_v: npt.NDArray[np.float32],
) -> None:
    """Symmetric offsets, in the kernel's order (csrc/denoise/nlm.hpp).

    For d = (dy, dx) with dy > 0, or dy == 0 and dx > 0 (row-major), the
    weight map W_d(p) of the pair (p, p+d) is computed once; every pixel p
    adds first W_d(p-d) I(p-d) (the offset -d), then W_d(p) I(p+d).
    """
    rows, cols = acc_w.shape
    big = pr + sr
    k = 2 * pr + 1
    for dy in range(0, sr + 1):
        for dx in range(1 if dy == 0 else -sr, sr + 1):
            cx0 = min(0, -dx)  # weight map: rows -dy .. rows-1, columns cx0 .. cx0+nc-1
            nr, nc = rows + dy, cols + abs(dx)
            y_a, x_a = big - dy - pr, big + cx0 - pr  # padded coordinates of the first patch corner
            a = pad[y_a : y_a + nr + 2 * pr, x_a : x_a + nc + 2 * pr]
            b = pad[y_a + dy : y_a + dy + nr + 2 * pr, x_a + dx : x_a + dx + nc + 2 * pr]
            diff = a - b
            d2 = diff * diff
            vs = d2[0:nr].copy()
            for j in range(1, k):  # vertical sums, top to bottom
                vs = vs + d2[j : j + nr]
            ssd = vs[:, 0:nc].copy()
            for j in range(1, k):  # then horizontal, left to right
                ssd = ssd + vs[:, j : j + nc]
            t = np.minimum(ssd.astype(np.float32) * scale, bins)
            wt = lut[t.astype(np.int32)]
            minus = wt[0:rows, -dx - cx0 : -dx - cx0 + cols]  # W_d(p - d)
            plus = wt[dy : dy + rows, -cx0 : -cx0 + cols]  # W_d(p)
            q_minus = pad[big - dy : big - dy + rows, big - dx : big - dx + cols].astype(np.float32)
            q_plus = pad[big + dy : big + dy + rows, big + dx : big + dx + cols].astype(np.float32)
            acc_w += minus
            acc_v += minus * q_minus
            acc_w += plus
            acc_v += plus * q_plus


def _reflect101(i: npt.NDArray, n: int) -> npt.NDArray:
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    r = np.mod(i, period)
    return np.where(r >= n, period - r, r)
