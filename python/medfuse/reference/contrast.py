"""NumPy twins of ``medfuse.equalize_hist`` and ``medfuse.clahe``: OpenCV's
algorithms written out with NumPy, float32 where OpenCV uses float."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..kernels import _validate as v
from ..kernels._contrast_plan import check_clahe, check_clip_range

__all__ = ["clahe", "equalize_hist"]


def _saturate(x: npt.NDArray[np.float32], dtype: np.dtype) -> npt.NDArray:
    top = np.iinfo(dtype).max
    return np.clip(np.rint(x), 0, top).astype(dtype)


def equalize_hist(image: npt.ArrayLike) -> npt.NDArray:
    img = v.as_image(image, dtypes=(np.uint8, np.uint16))
    if img.size >= 2**31 - 1:
        raise ValueError(f"image has {img.size} pixels; at most 2**31 - 2 are supported")
    levels = 256 if img.dtype == np.uint8 else 65536
    hist = np.bincount(img.ravel(), minlength=levels)
    first = int(np.flatnonzero(hist)[0])
    if hist[first] == img.size:
        return np.full_like(img, first)
    scale = np.float32(levels - 1.0) / np.float32(img.size - hist[first])
    cum = np.cumsum(hist).astype(np.int64) - hist[first]
    lut = _saturate(cum.astype(np.float32) * scale, img.dtype)
    lut[first] = 0
    return lut[img]


def _reflect101(i: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    r = np.abs(i) % period
    return np.where(r >= n, period - r, r)


def clahe(image: npt.ArrayLike, clip_limit: float = 40.0, tile_grid: tuple[int, int] = (8, 8)) -> npt.NDArray:
    img = v.as_image(image, dtypes=(np.uint8, np.uint16), ndims=(2,))
    clip_limit, tx, ty = check_clahe(clip_limit, tile_grid)
    levels = 256 if img.dtype == np.uint8 else 65536
    check_clip_range(img.shape, clip_limit, tx, ty, levels)
    h, w = img.shape
    if h % ty == 0 and w % tx == 0:
        ext = img
    else:
        ys = _reflect101(np.arange(h + ty - h % ty), h)
        xs = _reflect101(np.arange(w + tx - w % tx), w)
        ext = img[np.ix_(ys, xs)]
    th, tw = ext.shape[0] // ty, ext.shape[1] // tx
    area = th * tw
    lut_scale = np.float32(levels - 1) / np.float32(area)
    clip = 0
    if clip_limit > 0:
        clip = max(int(clip_limit * area / levels), 1)
    luts = np.empty((ty, tx, levels), dtype=img.dtype)
    for j in range(ty):
        for i in range(tx):
            hist = np.bincount(ext[j * th:(j + 1) * th, i * tw:(i + 1) * tw].ravel(), minlength=levels).astype(np.int64)
            if clip > 0:
                clipped = int(np.maximum(hist - clip, 0).sum())
                hist = np.minimum(hist, clip)
                batch, residual = divmod(clipped, levels)
                hist += batch
                if residual:
                    step = max(levels // residual, 1)
                    hist[np.arange(0, levels, step)[:residual]] += 1
            luts[j, i] = _saturate(np.cumsum(hist).astype(np.float32) * lut_scale, img.dtype)
    # Interpolation weights, float32 as OpenCV.
    txf = np.arange(w, dtype=np.float32) * (np.float32(1.0) / np.float32(tw)) - np.float32(0.5)
    tx1 = np.floor(txf).astype(np.int64)
    xa = txf - tx1.astype(np.float32)
    xa1 = np.float32(1.0) - xa
    ix1, ix2 = np.maximum(tx1, 0), np.minimum(tx1 + 1, tx - 1)
    tyf = np.arange(h, dtype=np.float32) * (np.float32(1.0) / np.float32(th)) - np.float32(0.5)
    ty1 = np.floor(tyf).astype(np.int64)
    ya = (tyf - ty1.astype(np.float32))[:, None]
    ya1 = np.float32(1.0) - ya
    iy1, iy2 = np.maximum(ty1, 0)[:, None], np.minimum(ty1 + 1, ty - 1)[:, None]
    f = np.float32
    a = luts[iy1, ix1[None, :], img].astype(f)
    b = luts[iy1, ix2[None, :], img].astype(f)
    c = luts[iy2, ix1[None, :], img].astype(f)
    d = luts[iy2, ix2[None, :], img].astype(f)
    res = (a * xa1 + b * xa) * ya1 + (c * xa1 + d * xa) * ya
    return _saturate(res, img.dtype)
