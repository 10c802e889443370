"""Contrast enhancement: histogram equalization and CLAHE (C++ kernels, OpenCV semantics)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _validate as v
from ._contrast_plan import check_clahe, check_clip_range
from ._ext import core as _core
from ._threads import get_num_threads

__all__ = ["clahe", "equalize_hist"]





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
