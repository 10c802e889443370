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
    acc_w = np.zeros((rows, cols), np.float32)
    acc_v = np.zeros((rows, cols), np.float32)
    # Patch centres p cover rows/cols [big, big + n) of the padded image.
    centre = pad[sr : sr + rows + 2 * pr, sr : sr + cols + 2 * pr]
    with np.errstate(over="ignore", invalid="ignore"):  # huge floats: inf distances weigh 0, as in the kernel
        _accumulate(pad, centre, lut, scale, bins, pr, sr, acc_w, acc_v)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        res = acc_v / acc_w
    if img.dtype == np.uint8:
        return np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return res


def _accumulate(
    pad: npt.NDArray, centre: npt.NDArray, lut: npt.NDArray[np.float32], scale: np.float32, bins: np.float32,
    pr: int, sr: int, acc_w: npt.NDArray[np.float32], acc_v: npt.NDArray[np.float32],
) -> None:
    rows, cols = acc_w.shape
    big = pr + sr
    for dy in range(-sr, sr + 1):
        for dx in range(-sr, sr + 1):
            other = pad[sr + dy : sr + dy + rows + 2 * pr, sr + dx : sr + dx + cols + 2 * pr]
            diff = centre - other
            d2 = diff * diff
            vs = d2[0:rows].copy()
            for k in range(1, 2 * pr + 1):  # vertical sums, top to bottom
                vs = vs + d2[k : k + rows]
            ssd = vs[:, 0:cols].copy()
            for k in range(1, 2 * pr + 1):  # then horizontal, left to right
                ssd = ssd + vs[:, k : k + cols]
            t = np.minimum(ssd.astype(np.float32) * scale, bins)
            wt = lut[t.astype(np.int32)]
            q = pad[big + dy : big + dy + rows, big + dx : big + dx + cols].astype(np.float32)
            acc_w += wt
            acc_v += wt * q


def _reflect101(i: npt.NDArray, n: int) -> npt.NDArray:
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    r = np.mod(i, period)
    return np.where(r >= n, period - r, r)
