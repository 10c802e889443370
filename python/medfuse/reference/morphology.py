"""NumPy twins of ``medfuse.label`` and ``medfuse.regionprops_basic``.

Same signatures, same refusals (shared ``_validate``), same results. ``label``
is a breadth-first flood fill started from each unvisited foreground voxel in
raster order — deliberately not scipy, so that the tests compare three
independent implementations.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..kernels import _validate as v
from ..kernels._morphology_plan import AXIS_NAMES

__all__ = ["binary_close", "binary_dilate", "binary_erode", "binary_open", "fill_holes", "label", "regionprops_basic"]


def _offsets(ndim: int, rank: int) -> list[tuple[int, ...]]:
    """Neighbour offsets with |d| <= 1 on each axis and at most ``rank`` nonzero."""
    return [
        d
        for d in itertools.product((-1, 0, 1), repeat=ndim)
        if 0 < sum(1 for k in d if k != 0) <= rank
    ]


def label(binary: npt.ArrayLike, *, connectivity: int | None = None) -> tuple[npt.NDArray[np.int32], int]:
    """Twin of :func:`medfuse.label` (BFS flood fill)."""
    mask = v.binary_image(binary, "binary").astype(bool)
    rank = v.connectivity_rank(connectivity, mask.ndim)
    offsets = _offsets(mask.ndim, rank)
    shape = mask.shape
    out = np.zeros(shape, dtype=np.int32)
    count = 0
    for seed in zip(*np.nonzero(mask)):  # raster order
        if out[seed]:
            continue
        count += 1
        out[seed] = count
        queue = deque([seed])
        while queue:
            p = queue.popleft()
            for d in offsets:
                q = tuple(a + b for a, b in zip(p, d))
                if all(0 <= q[i] < shape[i] for i in range(len(q))) and mask[q] and not out[q]:
                    out[q] = count
                    queue.append(q)
    return out, count


def regionprops_basic(
    labels: npt.ArrayLike,
    intensity: npt.ArrayLike | None = None,
    spacing: Sequence[float] | None = None,
) -> dict[str, npt.NDArray]:
    """Twin of :func:`medfuse.regionprops_basic` (one boolean mask per label)."""
    lab = v.label_image(labels, "labels")
    ndim = lab.ndim
    sp = (1.0,) * ndim if spacing is None else v.per_axis(spacing, "spacing", ndim, allow_zero=False)
    inten = None if intensity is None else v.intensity_image(intensity, lab.shape, "intensity")
    present = np.unique(lab[lab > 0])
    rows: dict[str, list] = {"label": [], "voxel_count": [], "volume_mm3": []}
    names = AXIS_NAMES[ndim]
    for key in [f"bbox_min_{a}" for a in names] + [f"bbox_max_{a}" for a in names] + [f"centroid_{a}" for a in names]:
        rows[key] = []
    if inten is not None:
        rows["mean_intensity"] = []
    for lv in present:
        where = np.nonzero(lab == lv)
        rows["label"].append(int(lv))
        rows["voxel_count"].append(len(where[0]))
        rows["volume_mm3"].append(len(where[0]) * float(np.prod(sp)))
        for a, idx in zip(names, where):
            rows[f"bbox_min_{a}"].append(int(idx.min()))
            rows[f"bbox_max_{a}"].append(int(idx.max()) + 1)
            rows[f"centroid_{a}"].append(float(idx.mean()))
        if inten is not None:
            rows["mean_intensity"].append(float(inten[where].mean()))
    out: dict[str, npt.NDArray] = {}
    for key, vals in rows.items():
        dtype = np.float64 if key.startswith("centroid") or key in ("volume_mm3", "mean_intensity") else np.int64
        out[key] = np.asarray(vals, dtype=dtype)
    return out


# ---- binary morphology ----------------------------------------------------------


def _morph(image, structure, connectivity, iterations, border_value, dilate: bool) -> npt.NDArray[np.bool_]:
    x = v.binary_image(image, "image").astype(bool)
    struct = v.structure_element(structure, connectivity, x.ndim)
    it = v.iteration_count(iterations, struct)
    border = bool(v.border_bit(border_value))
    centre = np.array(struct.shape) // 2
    offsets = [tuple(int(k) for k in (c - centre if not dilate else centre - c)) for c in np.argwhere(struct)]
    r = [max(abs(o[a]) for o in offsets) for a in range(x.ndim)]
    n = 0
    while True:
        padded = np.pad(x, [(k, k) for k in r], constant_values=border)
        out = np.zeros_like(x) if dilate else np.ones_like(x)
        for o in offsets:
            window = padded[tuple(slice(r[a] + o[a], r[a] + o[a] + x.shape[a]) for a in range(x.ndim))]
            out = (out | window) if dilate else (out & window)
        n += 1
        if (it >= 1 and n >= it) or (it < 1 and np.array_equal(out, x)):
            return out
        x = out


def binary_erode(image, structure=None, *, connectivity=None, iterations=1, border_value=0):
    """Twin of :func:`medfuse.binary_erode` (AND of shifted padded copies)."""
    return _morph(image, structure, connectivity, iterations, border_value, dilate=False)


def binary_dilate(image, structure=None, *, connectivity=None, iterations=1, border_value=0):
    """Twin of :func:`medfuse.binary_dilate` (OR of shifted padded copies)."""
    return _morph(image, structure, connectivity, iterations, border_value, dilate=True)


def binary_open(image, structure=None, *, connectivity=None, iterations=1, border_value=0):
    """Twin of :func:`medfuse.binary_open`."""
    kw = dict(connectivity=connectivity, iterations=iterations, border_value=border_value)
    return binary_dilate(binary_erode(image, structure, **kw), structure, **kw)


def binary_close(image, structure=None, *, connectivity=None, iterations=1, border_value=0):
    """Twin of :func:`medfuse.binary_close`."""
    kw = dict(connectivity=connectivity, iterations=iterations, border_value=border_value)
    return binary_erode(binary_dilate(image, structure, **kw), structure, **kw)


def fill_holes(image, *, connectivity=None):
    """Twin of :func:`medfuse.fill_holes`: flood the background from the border."""
    x = v.binary_image(image, "image").astype(bool)
    rank = v.connectivity_rank(connectivity, x.ndim)
    offsets = _offsets(x.ndim, rank)
    outside = np.zeros_like(x)
    border = np.zeros_like(x)
    for axis in range(x.ndim):
        for idx in (0, x.shape[axis] - 1):
            sl = [slice(None)] * x.ndim
            sl[axis] = idx
            border[tuple(sl)] = True
    queue = deque()
    for p in zip(*np.nonzero(border & ~x)):
        outside[p] = True
        queue.append(p)
    while queue:
        p = queue.popleft()
        for d in offsets:
            q = tuple(a + b for a, b in zip(p, d))
            if all(0 <= q[i] < x.shape[i] for i in range(len(q))) and not x[q] and not outside[q]:
                outside[q] = True
                queue.append(q)
    return ~outside
