"""Contrast enhancement: histogram equalization and CLAHE (C++ kernels, OpenCV semantics)."""

from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt

from . import _validate as v
from ._threads import get_num_threads

__all__ = ["clahe", "equalize_hist"]



def _core():  # imported lazily so that the twins work without the extension
    from . import _core as core

    return core


def check_clahe(clip_limit: object, tile_grid: object) -> tuple[float, int, int]:
    """(clip_limit, tiles_x, tiles_y); shared with the twin."""
    clip = v.real_number(clip_limit, "clip_limit")
    try:
        tx, ty = tile_grid  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"tile_grid must be a pair (tiles_x, tiles_y); got {tile_grid!r}") from None
    out = []
    for t in (tx, ty):
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral):
            raise TypeError(f"tile_grid values must be integers; got {t!r}")
        if not 1 <= int(t) <= 4096:
            raise ValueError(f"tile_grid values must be between 1 and 4096; got {int(t)}")
        out.append(int(t))
    return clip, out[0], out[1]


def check_clip_range(shape: tuple[int, ...], clip: float, tx: int, ty: int, levels: int) -> None:
    h, w = shape
    if h % ty == 0 and w % tx == 0:
        th, tw = h // ty, w // tx
    else:
        th, tw = (h + ty - h % ty) // ty, (w + tx - w % tx) // tx
    if clip * th * tw / levels >= 2**31 - 1:
        raise ValueError(f"clip_limit {clip:g} is too large for tiles of {th}x{tw} pixels")


def equalize_hist(image: npt.ArrayLike) -> npt.NDArray:
    """Global histogram equalization, ``cv2.equalizeHist`` exactly for uint8.

    ``lut[v] = round(cumhist(v) * (L - 1) / (N - hist(vmin)))`` in float32,
    lut[vmin] = 0, a constant image is returned unchanged; L = 256 (uint8) or
    65536 (uint16, same rule). 2D images or 3D volumes (one global histogram).
    """
    img = v.as_image(image, dtypes=(np.uint8, np.uint16))
    if img.size >= 2**31 - 1:
        raise ValueError(f"image has {img.size} pixels; at most 2**31 - 2 are supported")
    return getattr(_core(), "equalize_hist_" + v.core_suffix(img.dtype))(img, get_num_threads())


def clahe(image: npt.ArrayLike, clip_limit: float = 40.0, tile_grid: tuple[int, int] = (8, 8)) -> npt.NDArray:
    """Contrast-limited adaptive histogram equalization, as OpenCV.

    Identical to ``cv2.createCLAHE(clip_limit, tile_grid).apply(image)`` on
    every pixel for 2D uint8 and uint16 images. ``tile_grid`` is OpenCV's
    ``(tiles_x, tiles_y)`` (columns, rows). Each tile's histogram is clipped
    at ``max(1, int(clip_limit * tile_area / L))`` (no clipping when
    ``clip_limit <= 0``), the excess spread evenly and the remainder every
    ``L // remainder`` levels; pixels interpolate bilinearly between the four
    nearest tile LUTs in float32. Images whose size is not a multiple of the
    grid get tiles from a reflect-101 extension, as OpenCV.
    """
    img = v.as_image(image, dtypes=(np.uint8, np.uint16), ndims=(2,))
    clip, tx, ty = check_clahe(clip_limit, tile_grid)
    check_clip_range(img.shape, clip, tx, ty, 256 if img.dtype == np.uint8 else 65536)
    return getattr(_core(), "clahe_" + v.core_suffix(img.dtype))(img, clip, ty, tx, get_num_threads())
