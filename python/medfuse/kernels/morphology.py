"""Connected components and per-region measurements of 2D/3D label images.

``label`` runs in C++ (run-based union-find, linear time); ``regionprops_basic``
is NumPy (``np.bincount`` / ``np.minimum.at`` over the foreground voxels).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from . import _validate as v
from ._ext import core as _core
from ._morphology_plan import AXIS_NAMES
from ._threads import get_num_threads

__all__ = ["binary_close", "binary_dilate", "binary_erode", "binary_open", "fill_holes", "label", "regionprops_basic"]





def label(binary: npt.ArrayLike, *, connectivity: int | None = None) -> tuple[npt.NDArray[np.int32], int]:
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
    intensity: npt.ArrayLike | None = None,
    spacing: Sequence[float] | None = None,
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
    values = None
    if ids.size and int(ids.max()) > 4 * ids.size + 65536:
        # Sparse large label values (up to 2**63 - 1): the per-label arrays
        # below would need max(label) slots (OverflowError / a huge
        # allocation); number the labels present 1..k instead.
        uniq, inverse = np.unique(ids, return_inverse=True)
        values = np.concatenate([np.zeros(1, np.int64), uniq.astype(np.int64)])
        ids = inverse.reshape(-1).astype(np.int64) + 1
    n = int(ids.max()) + 1 if ids.size else 1
    counts = np.bincount(ids, minlength=n)
    present = np.flatnonzero(counts)
    present = present[present > 0]
    out: dict[str, npt.NDArray] = {
        "label": present.astype(np.int64) if values is None else values[present],
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


# ---- binary morphology ----------------------------------------------------------


def _offsets(struct: npt.NDArray[np.bool_], dilate: bool) -> npt.NDArray[np.int64]:
    """(n, 3) offsets (dz, dy, dx): erosion reads p + (s - c), dilation p + (c - s)."""
    centre = np.array(struct.shape) // 2
    rel = np.argwhere(struct) - centre
    if dilate:
        rel = -rel
    if struct.ndim == 2:
        rel = np.concatenate([np.zeros((len(rel), 1), dtype=rel.dtype), rel], axis=1)
    return v.contiguous(rel, dtype=np.int64)


@lru_cache(maxsize=32)
def _connectivity_offsets(rank: int, ndim: int, dilate: bool) -> npt.NDArray[np.int64]:
    """The offsets of ``connectivity``'s structure, built once (internal: never handed out)."""
    return _offsets(v.connectivity_structure(rank, ndim), dilate)


def _morph(image, structure, connectivity, iterations, border_value, dilate: bool) -> npt.NDArray[np.bool_]:
    mask = v.binary_image(image, "image")
    if structure is None:  # a connectivity structure: contains its centre, offsets cached
        offsets = _connectivity_offsets(v.connectivity_rank(connectivity, mask.ndim), mask.ndim, dilate)
        it = v.iteration_count(iterations)
    else:
        struct = v.structure_element(structure, connectivity, mask.ndim)
        it = v.iteration_count(iterations, struct)
        offsets = _offsets(struct, dilate)
    border = v.border_bit(border_value)
    out = _core().binary_morph_u8(mask, offsets, dilate, border, it, get_num_threads())
    return out.view(np.bool_)


_MORPH_DOC = """

    Parameters
    ----------
    image : 2D or 3D array of bool or any integer dtype (nonzero = foreground)
    structure : bool/integer array with the image's ndim and odd sizes, optional
        Centred structuring element (origin 0). Not together with ``connectivity``.
    connectivity : None, 4/8 (2D) or 6/18/26 (3D)
        The 3x3(x3) element of that connectivity; None (and no structure)
        means 4/6, scipy's default ``generate_binary_structure(ndim, 1)``.
    iterations : int
        Repeat the operation; < 1 repeats until the result stops changing.
    border_value : 0 or 1
        Value of the voxels outside the image (scipy's default 0).

    Returns a bool array of the image's shape, identical to scipy.ndimage.{name}
    with the same structure, iterations and border_value.
    """


def binary_erode(
    image: npt.ArrayLike,
    structure: npt.ArrayLike | None = None,
    *,
    connectivity: int | None = None,
    iterations: int = 1,
    border_value: int = 0,
) -> npt.NDArray[np.bool_]:
    return _morph(image, structure, connectivity, iterations, border_value, dilate=False)


def binary_dilate(
    image: npt.ArrayLike,
    structure: npt.ArrayLike | None = None,
    *,
    connectivity: int | None = None,
    iterations: int = 1,
    border_value: int = 0,
) -> npt.NDArray[np.bool_]:
    return _morph(image, structure, connectivity, iterations, border_value, dilate=True)


def binary_open(
    image: npt.ArrayLike,
    structure: npt.ArrayLike | None = None,
    *,
    connectivity: int | None = None,
    iterations: int = 1,
    border_value: int = 0,
) -> npt.NDArray[np.bool_]:
    eroded = binary_erode(image, structure, connectivity=connectivity, iterations=iterations, border_value=border_value)
    return binary_dilate(eroded, structure, connectivity=connectivity, iterations=iterations, border_value=border_value)


def binary_close(
    image: npt.ArrayLike,
    structure: npt.ArrayLike | None = None,
    *,
    connectivity: int | None = None,
    iterations: int = 1,
    border_value: int = 0,
) -> npt.NDArray[np.bool_]:
    dilated = binary_dilate(image, structure, connectivity=connectivity, iterations=iterations, border_value=border_value)
    return binary_erode(dilated, structure, connectivity=connectivity, iterations=iterations, border_value=border_value)


binary_erode.__doc__ = "Binary erosion: a voxel stays on if every voxel under the structure is on." + _MORPH_DOC.format(name="binary_erosion")
binary_dilate.__doc__ = "Binary dilation: a voxel turns on if any voxel under the reflected structure is on." + _MORPH_DOC.format(name="binary_dilation")
binary_open.__doc__ = "Erosion then dilation, each ``iterations`` times." + _MORPH_DOC.format(name="binary_opening")
binary_close.__doc__ = (
    "Dilation then erosion, each ``iterations`` times (with scipy's border rule:"
    " the erosion also sees ``border_value`` outside, so 0 erodes from the image edge)."
    + _MORPH_DOC.format(name="binary_closing")
)


def fill_holes(image: npt.ArrayLike, *, connectivity: int | None = None) -> npt.NDArray[np.bool_]:
    """Fill the background regions that do not reach the image border.

    ``connectivity`` (None = 4/6, or 8 / 18 / 26) is the connectivity of the
    *background*, as scipy.ndimage.binary_fill_holes(image, structure) with
    ``structure = generate_binary_structure(ndim, rank)``; the result (bool)
    is identical to it. Implemented (in C++, threaded) as :func:`label` of
    the background: a component is a hole unless it touches the first or
    last index of an axis.
    """
    mask = v.binary_image(image, "image")
    rank = v.connectivity_rank(connectivity, mask.ndim)
    return _core().fill_holes_u8(mask, rank, get_num_threads()).view(np.bool_)
