"""Connected components and per-region measurements of 2D/3D label images.

``label`` runs in C++ (run-based union-find, linear time); ``regionprops_basic``
is NumPy (``np.bincount`` / ``np.minimum.at`` over the foreground voxels).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

from . import _validate as v
from ._threads import get_num_threads

__all__ = ["label", "regionprops_basic"]

AXIS_NAMES = {2: ("y", "x"), 3: ("z", "y", "x")}


def _core():  # imported lazily so that the twins work without the extension
    from . import _core as core

    return core


def label(binary: npt.ArrayLike, *, connectivity: Optional[int] = None) -> tuple[npt.NDArray[np.int32], int]:
    """Connected components of a 2D (y, x) or 3D (z, y, x) binary image.

    Parameters
    ----------
    binary : ndarray of bool or any integer dtype
        Nonzero voxels are foreground. Any strides and byte order. Float
        input is refused (TypeError): threshold it first.
    connectivity : None, 4 or 8 (2D), 6, 18 or 26 (3D)
        Which neighbours touch: 4/6 share a face, 8/18 also an edge, 26 also
        a corner. None means 4 in 2D and 6 in 3D — scipy.ndimage.label's
        default structure, ``generate_binary_structure(ndim, 1)``.

    Returns
    -------
    (labels, count): int32 array of the input's shape, 0 for background and
    1..count for the components, numbered in raster (C) order of each
    component's first voxel; ``count`` an int. Identical to
    ``scipy.ndimage.label(binary, structure=generate_binary_structure(ndim, rank))``
    with rank 1/2/3 for connectivity 4,6 / 8,18 / 26.
    """
    mask = v.binary_image(binary, "binary")
    rank = v.connectivity_rank(connectivity, mask.ndim)
    labels, count = _core().label_u8(mask, rank, get_num_threads())
    return labels, int(count)


def regionprops_basic(
    labels: npt.ArrayLike,
    intensity: Optional[npt.ArrayLike] = None,
    spacing: Optional[Sequence[float]] = None,
) -> dict[str, npt.NDArray]:
    """Per-label size, extent, centre and mean intensity.

    Parameters
    ----------
    labels : 2D or 3D integer array, values >= 0 (0 = background)
        E.g. the first output of :func:`label`.
    intensity : array of the same shape (bool, integer or float, finite), optional
    spacing : one positive float per axis (mm), optional; default 1.

    Returns
    -------
    dict of 1D NumPy arrays, one row per label present (ascending), ready for
    ``pandas.DataFrame(props)``. Axis names are ``z, y, x`` in 3D and ``y, x``
    in 2D:

    * ``label`` (int64), ``voxel_count`` (int64), ``volume_mm3`` (float64:
      voxel_count times the product of ``spacing``),
    * ``bbox_min_<axis>``, ``bbox_max_<axis>`` (int64, voxel indices; max is
      exclusive, so ``labels[zmin:zmax, ymin:ymax, xmin:xmax]`` is the box),
    * ``centroid_<axis>`` (float64, mean voxel index; multiply by the spacing
      for mm),
    * ``mean_intensity`` (float64), only when ``intensity`` is given.
    """
    lab = v.label_image(labels, "labels")
    ndim = lab.ndim
    sp = (1.0,) * ndim if spacing is None else v.per_axis(spacing, "spacing", ndim, allow_zero=False)
    inten = None if intensity is None else v.intensity_image(intensity, lab.shape, "intensity")
    flat = lab.ravel()
    fg = np.flatnonzero(flat)
    ids = flat[fg]
    n = int(ids.max()) + 1 if ids.size else 1
    counts = np.bincount(ids, minlength=n)
    present = np.flatnonzero(counts)
    present = present[present > 0]
    out: dict[str, npt.NDArray] = {
        "label": present.astype(np.int64),
        "voxel_count": counts[present].astype(np.int64),
        "volume_mm3": counts[present].astype(np.float64) * float(np.prod(sp)),
    }
    coords = np.unravel_index(fg, lab.shape)
    big = np.iinfo(np.int64).max
    for name, c in zip(AXIS_NAMES[ndim], coords):
        lo = np.full(n, big, dtype=np.int64)
        hi = np.full(n, -1, dtype=np.int64)
        np.minimum.at(lo, ids, c)
        np.maximum.at(hi, ids, c)
        out[f"bbox_min_{name}"] = lo[present]
        out[f"bbox_max_{name}"] = hi[present] + 1
    for name, c in zip(AXIS_NAMES[ndim], coords):
        out[f"centroid_{name}"] = np.bincount(ids, weights=c, minlength=n)[present] / counts[present]
    if inten is not None:
        out["mean_intensity"] = np.bincount(ids, weights=inten.ravel()[fg], minlength=n)[present] / counts[present]
    return out
