"""Argument checks shared by medfuse.clahe and its NumPy twin."""

from __future__ import annotations

import numbers

import numpy as np

from . import _validate as v


def check_clahe(clip_limit: object, tile_grid: object) -> tuple[float, int, int]:
    """(clip_limit, tiles_x, tiles_y); shared with the twin."""
    clip = v.real_number(clip_limit, "clip_limit")
    tx: object
    ty: object
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
