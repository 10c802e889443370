"""Lung fields and lung nodules in chest CT: masks, candidates, nodule masks.

Three classic pipelines built on medfuse's kernels (``label``,
``binary_close``, ``fill_holes``, ``gaussian``); NumPy only glues them:

* :func:`lung_mask` — threshold, drop the air outside the body, keep the two
  largest lungs (split along the midline if they touch), close vessels and
  small holes; a labelled mask, 1 = right lung, 2 = left lung.
* :func:`nodule_candidates` — multi-scale, scale-normalised Laplacian of
  Gaussian inside the lungs, non-maximum suppression over space and scale;
  a list of :class:`NoduleCandidate`, best first.
* :func:`nodule_mask` — region growing from a candidate with a threshold
  half-way between the nodule's and the surrounding parenchyma's HU (so
  solid, part-solid, ground-glass and calcified nodules all work).

Conventions. Volumes are (z, y, x) with ``spacing`` = (dz, dy, dx) in mm.
"Right" and "left" are the patient's: with the usual radiological
orientation (x index increasing towards the patient's left, as DICOM's LPS
and :mod:`medfuse.data.phantoms`), the right lung is the one at small x (shown
on the left of the screen). Only 3D volumes are accepted: a 2D slice is
refused with a ValueError (lung and nodule geometry needs the third axis).
HU may be any integer dtype or float32/float64; NaN/inf are refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ZONES", "CavityCandidate", "NoduleCandidate", "cavity_candidates", "fibrosis_extent", "fibrosis_mask", "lung_mask",
    "nodule_candidates", "nodule_mask", "zone_fractions",
]

RIGHT_LUNG = 1
LEFT_LUNG = 2
_MIN_SIGMA_VOXELS = 0.8
_BONE_HU = 500.0


# ---------------------------------------------------------------- validation


#: Largest structuring element lung_mask's closing may have, in voxels (10 mm at 0.7 mm voxels is ~2.6e4).
MAX_CLOSE_OFFSETS = 4_000_000


def _ct(ct_hu: Any) -> npt.NDArray[np.float32]:
    arr = np.asarray(ct_hu)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(f"ct_hu must be an integer or float array of HU values; got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(
            f"ct_hu must be a 3D volume (z, y, x); got shape {arr.shape} "
            "(2D slices are not supported: lung and nodule segmentation need the third axis)"
        )
    if min(arr.shape) < 3:
        raise ValueError(f"ct_hu must be at least 3 voxels along every axis; got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("ct_hu contains NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _spacing(spacing: Any) -> tuple[float, float, float]:
    msg = "spacing must be three positive finite numbers (dz, dy, dx) in mm"
    if spacing is None or isinstance(spacing, (str, bytes)):
        raise ValueError(f"{msg}; got {spacing!r}")
    try:
        vals = np.asarray(spacing, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{msg}; got {spacing!r}") from None
    if vals.size != 3 or not np.all(np.isfinite(vals)) or not np.all(vals > 0):
        raise ValueError(f"{msg}; got {spacing!r}")
    return (float(vals[0]), float(vals[1]), float(vals[2]))


def _lung(lung_mask: Any, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    m = np.asarray(lung_mask)
    if m.dtype != np.bool_ and m.dtype.kind not in "iu":
        raise TypeError(f"lung_mask must be a bool or integer (labelled) mask; got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"lung_mask has shape {m.shape}; ct_hu has shape {shape}")
    if m.dtype.kind == "i" and (m < 0).any():
        raise ValueError("lung_mask must be >= 0 (0 = background, > 0 = lung)")
    out = m != 0
    if not out.any():
        raise ValueError("lung_mask is empty: it selects no voxel")
    return out


def _diameters(diameters_mm: Any) -> tuple[float, float]:
    try:
        vals = [float(d) for d in diameters_mm]
    except (TypeError, ValueError):
        raise ValueError(f"diameters_mm must be (smallest, largest) in mm; got {diameters_mm!r}") from None
    if len(vals) != 2 or not all(math.isfinite(d) and d > 0 for d in vals) or not vals[0] < vals[1]:
        raise ValueError(
            f"diameters_mm must be two positive finite numbers, increasing (smallest, largest); got {diameters_mm!r}"
        )
    return vals[0], vals[1]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _number(value: Any, name: str, *, positive: bool = False) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(f) or (positive and not f > 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number; got {value!r}")
    return f


# ---------------------------------------------------------------- helpers


def _ellipsoid_structure(radius_mm: float, spacing: tuple[float, float, float]) -> npt.NDArray[np.bool_]:
    """A centred ellipsoidal structuring element of ``radius_mm`` (at least 3 voxels wide per axis)."""
    half = [max(1, int(radius_mm / s)) for s in spacing]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((g * s / max(radius_mm, h * s)) ** 2 for g, s, h in zip(grids, spacing, half))
    return np.asarray(d2 <= 1.0 + 1e-9)


def _bbox(mask: npt.NDArray[np.bool_], margin: Sequence[int]) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(0, int(idx[0]) - margin[axis]), min(mask.shape[axis], int(idx[-1]) + 1 + margin[axis])))
    return tuple(box)


def _max3(a: npt.NDArray[np.float32], axis: int) -> npt.NDArray[np.float32]:
    """Running maximum over a window of 3 along ``axis`` (edges see 2)."""
    out = a.copy()
    n = a.shape[axis]
    if n > 1:
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        np.maximum(out[tuple(lo)], a[tuple(hi)], out=out[tuple(lo)])
        np.maximum(out[tuple(hi)], a[tuple(lo)], out=out[tuple(hi)])
    return out


def _laplacian(g: npt.NDArray[np.float32], spacing: tuple[float, float, float]) -> npt.NDArray[np.float32]:
    """Second differences summed over axes, in 1/mm² (edge voxels replicate their neighbour)."""
    lap = np.zeros_like(g)
    for axis, h in enumerate(spacing):
        n = g.shape[axis]
        if n < 3:
            continue
        c = [slice(None)] * 3
        p = [slice(None)] * 3
        m = [slice(None)] * 3
        c[axis], p[axis], m[axis] = slice(1, n - 1), slice(2, n), slice(0, n - 2)
        d2 = (g[tuple(p)] - 2.0 * g[tuple(c)] + g[tuple(m)]) * np.float32(1.0 / (h * h))
        lap[tuple(c)] += d2
        first = [slice(None)] * 3
        last = [slice(None)] * 3
        first[axis], last[axis] = slice(0, 1), slice(n - 1, n)
        lap[tuple(first)] += d2[tuple(first)]
        lap[tuple(last)] += d2[tuple([slice(None)] * axis + [slice(n - 3, n - 2)])]
    return lap


# ---------------------------------------------------------------- lung mask


def lung_mask(
    ct_hu: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    threshold_hu: float = -400.0,
    close_mm: float = 10.0,
) -> npt.NDArray[np.uint8]:
    """Labelled lung mask of a chest CT: 0 background, 1 right lung, 2 left lung.

    Parameters
    ----------
    ct_hu : 3D array (z, y, x) of HU, any integer dtype or float32/float64 (finite)
    spacing : (dz, dy, dx) voxel size in mm, positive and finite
    threshold_hu : air/lung below this HU (default -400)
    close_mm : radius of the ellipsoidal closing (in mm, its element at most MAX_CLOSE_OFFSETS voxels; per-axis voxels from
        ``spacing``) that closes vessels and the lung border's notches; the
        default 10 mm also takes back nodules up to about 20 mm that touch
        the mediastinum or the chest wall (juxtapleural), which thresholding
        alone leaves outside the lung

    Steps: ``ct_hu < threshold_hu`` → :func:`medfuse.label` (6-connected) →
    drop components that touch the y or x faces of the volume (air outside
    the body; the lungs may run through the first and last slices) → keep
    the two largest components; if the second is under 10 % of the largest
    the lungs touch, and the largest is cut at the thinnest x column of its
    middle 40 % (the anterior/posterior junction line) → per lung,
    :func:`medfuse.binary_close` with the ellipsoid (the volume padded by
    edge slices in z so that the closing does not erode the first and last
    slices), then :func:`medfuse.fill_holes` per axial slice (vessels,
    nodules); voxels the closing added that are bone (≥ 500 HU: ribs, spine)
    are dropped again. The lung with the smaller mean x index is the right lung
    (label 1): radiological orientation, x towards the patient's left.

    Returns uint8 of ``ct_hu``'s shape. Raises ValueError when no air
    region inside the body is found.
    """
    from .kernels.morphology import binary_close, fill_holes, label

    ct = _ct(ct_hu)
    sp = _spacing(spacing)
    thr = _number(threshold_hu, "threshold_hu")
    close = _number(close_mm, "close_mm", positive=True)
    offsets = math.prod(2 * int(close / s) + 1 for s in sp)
    if offsets > MAX_CLOSE_OFFSETS:
        # The closing's cost grows with its structuring element (the cube of the
        # radius in voxels): a 255 mm closing ran for minutes in the hostile suite.
        raise ValueError(
            f"close_mm={close_mm!r} at spacing {sp} makes a structuring element of {offsets} voxels; "
            f"at most {MAX_CLOSE_OFFSETS} (a lung-mask closing is ~10 mm)"
        )

    lab, count = label(ct < np.float32(thr), connectivity=6)
    if count == 0:
        raise ValueError(f"ct_hu has no voxel below threshold_hu={thr:g}: no lung to segment")
    outside = np.zeros(count + 1, dtype=bool)
    for face in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        outside[face] = True
    sizes = np.bincount(lab.ravel(), minlength=count + 1)
    sizes[outside] = 0
    sizes[0] = 0
    order = np.argsort(sizes, kind="stable")[::-1]
    if sizes[order[0]] == 0:
        raise ValueError("ct_hu has no air region enclosed by the body (no lung found)")
    lungs: list[npt.NDArray[np.bool_]] = []
    first = lab == order[0]
    second_size = sizes[order[1]] if count > 1 else 0
    if second_size >= 0.1 * sizes[order[0]]:
        lungs = [first, lab == order[1]]
    else:
        lungs = _split_midline(first)
    del lab

    out = np.zeros(ct.shape, dtype=np.uint8)
    # Mean x index of each lung's voxels.
    centres = [float((np.arange(m.shape[2]) * m.sum(axis=(0, 1))).sum() / max(1, m.sum())) for m in lungs]
    struct = _ellipsoid_structure(close, sp)
    hz, hy, hx = (s // 2 for s in struct.shape)
    for rank, i in enumerate(np.argsort(centres, kind="stable")):
        m = lungs[int(i)]
        if not m.any():
            continue
        box = _bbox(m, (0, hy + 1, hx + 1))
        sub = m[box]
        padded = np.pad(sub, ((hz, hz), (0, 0), (0, 0)), mode="edge")
        closed = binary_close(padded, struct)[hz : hz + sub.shape[0]]
        before_fill = closed.copy()
        for z in range(closed.shape[0]):
            if closed[z].any():
                closed[z] = fill_holes(closed[z])
        closed &= ~_continuing_downwards(closed & ~before_fill, closed)
        # Bone the closing reached into (ribs and spine bulging into the lung
        # outline) is not lung: drop it, keep soft tissue (nodules, vessels).
        closed &= sub | (ct[box] < np.float32(_BONE_HU))
        region = out[box]
        region[closed & (region == 0)] = RIGHT_LUNG if rank == 0 else LEFT_LUNG
    return out


def _continuing_downwards(added: npt.NDArray[np.bool_], lung: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The parts of ``added`` (what per-slice hole filling added to ``lung``) that are not lung but tissue below it.

    In the slices through a diaphragm's dome, the liver or spleen is a disc enclosed by a crescent of
    lung: filling holes slice by slice takes it in. It continues downwards into the abdomen, where a
    nodule or a vessel ends in lung. So a 6-connected component of ``added`` is dropped when under its
    lowest slice less than half of its voxels have lung below them (the volume's last slice counts as
    no lung below).
    """
    from .kernels.morphology import label

    if not added.any():
        return added
    lab, n = label(added, connectivity=6)
    z = np.broadcast_to(np.arange(added.shape[0])[:, None, None], added.shape)
    lowest = np.zeros(n + 1, dtype=np.int64)
    np.maximum.at(lowest, lab[added], z[added])
    bottom = added & (z == lowest[lab])
    below = np.zeros_like(added)
    below[:-1] = lung[1:]
    supported = np.bincount(lab[bottom], weights=below[bottom], minlength=n + 1)
    size = np.bincount(lab[bottom], minlength=n + 1)
    drop = supported < 0.5 * size
    drop[0] = False
    out: npt.NDArray[np.bool_] = drop[lab]
    return out


def _split_midline(m: npt.NDArray[np.bool_]) -> list[npt.NDArray[np.bool_]]:
    """Cut one component holding both lungs at its thinnest x column (middle 40 % of its x extent)."""
    cols = m.sum(axis=(0, 1))
    xs = np.flatnonzero(cols)
    lo, hi = int(xs[0]), int(xs[-1])
    a, b = lo + int(0.3 * (hi - lo)), hi - int(0.3 * (hi - lo))
    if b <= a:
        return [m]
    cut = a + int(np.argmin(cols[a : b + 1]))
    left = m.copy()
    left[:, :, cut:] = False
    right = m.copy()
    right[:, :, : cut + 1] = False
    return [left, right]


# ---------------------------------------------------------------- candidates


@dataclass(frozen=True)
class NoduleCandidate:
    """One blob found by :func:`nodule_candidates`.

    ``z, y, x``: centre in voxel indices (fractional, refined around the
    peak); ``z_mm, y_mm, x_mm``: the same times the spacing; ``radius_mm``:
    the blob radius, sqrt(3) times the LoG scale of the peak; ``score``:
    the scale-normalised LoG response (HU above the local parenchyma for a
    sphere matched to the scale, so roughly a contrast); ``scale``: index
    of the scale. Mapping access works too (``c["radius_mm"]``) and
    ``pandas.DataFrame([c.as_dict() for c in cands])`` gives a table.
    """

    z: float
    y: float
    x: float
    z_mm: float
    y_mm: float
    x_mm: float
    radius_mm: float
    score: float
    scale: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @property
    def center_voxel(self) -> tuple[float, float, float]:
        return (self.z, self.y, self.x)

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return (self.z_mm, self.y_mm, self.x_mm)


def _radii(d0: float, d1: float, n_scales: int | None) -> npt.NDArray[np.float64]:
    r0, r1 = d0 / 2.0, d1 / 2.0
    n = n_scales if n_scales is not None else max(2, math.ceil(math.log(r1 / r0) / math.log(1.5)) + 1)
    return np.asarray(np.geomspace(r0, r1, n))


def nodule_candidates(
    ct_hu: npt.ArrayLike,
    lung_mask: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    diameters_mm: Sequence[float] = (4.0, 30.0),
    n_scales: int | None = None,
    max_candidates: int = 20,
    min_score: float = 40.0,
    clip_hu: tuple[float, float] = (-1000.0, -600.0),
) -> list[NoduleCandidate]:
    """Blob-like nodule candidates inside the lungs, best first.

    Parameters
    ----------
    ct_hu : 3D array (z, y, x) of HU (integer or float32/float64, finite)
    lung_mask : bool or integer mask of ``ct_hu``'s shape (e.g. :func:`lung_mask`); > 0 is lung
    spacing : (dz, dy, dx) in mm
    diameters_mm : (smallest, largest) nodule diameter searched, increasing, > 0
    n_scales : number of scales (radii geometric between the two ends);
        default: ratio ≤ 1.5 between neighbours (6 for (4, 30))
    max_candidates : keep at most this many (positive integer)
    min_score : drop blobs whose score is below this (HU-like contrast)
    clip_hu : HU are clipped to this range first. The default ceiling of
        -600 HU makes solid, part-solid, calcified and ground-glass nodules
        (about -600 HU) and vessels about equally bright, so that the score
        ranks by shape and size rather than by density: a thin bright vessel
        no longer outscores a ground-glass nodule

    Method: in the lung mask's bounding box, HU are clipped and the voxels
    outside the mask, and its outer voxel layer (partial volume of the
    wall), set to the lung's median HU (the chest wall and the mediastinum
    then give no response); contrast = that minus the median.
    Per radius r (σ = r/√3 mm, per axis through ``spacing`` and at least
    0.8 voxel, since a sampled image holds no finer detail than thin vessels
    and noise): ``medfuse.gaussian`` then a finite-difference Laplacian;
    LoG = -σ²·∇²G (scale-normalised with the geometric mean of the σ
    applied; positive for bright blobs). Peaks are maxima over the 3×3×3
    neighbourhood and the neighbouring scales, inside the lung mask; the
    score is the LoG times the Hessian's eigenvalue ratio
    |λ_smallest|/|λ_largest| at the peak (1 for a sphere, near 0 for a
    vessel or a plane). Peaks with score ≥ ``min_score`` go through greedy
    suppression in mm (a peak within the radius of a stronger one is
    dropped); centres are refined by the score-weighted centroid of the
    3×3×3 neighbourhood. Returns a list of :class:`NoduleCandidate` sorted by
    score (descending), possibly empty.
    """
    from .kernels.convolve import gaussian
    from .kernels.morphology import binary_erode

    ct = _ct(ct_hu)
    sp = _spacing(spacing)
    lung = _lung(lung_mask, ct.shape)
    d0, d1 = _diameters(diameters_mm)
    ns = None if n_scales is None else _positive_int(n_scales, "n_scales")
    cap = _positive_int(max_candidates, "max_candidates")
    floor = _number(min_score, "min_score")
    try:
        lo_hu, hi_hu = (float(c) for c in clip_hu)
    except (TypeError, ValueError):
        raise ValueError(f"clip_hu must be (low, high) HU; got {clip_hu!r}") from None
    if not lo_hu < hi_hu:
        raise ValueError(f"clip_hu must be (low, high) with low < high; got {clip_hu!r}")

    box = _bbox(lung, (1, 1, 1))
    sub = np.clip(ct[box], lo_hu, hi_hu)
    # The mask's outer voxel layer holds the partial-volume rim of the chest
    # wall and the mediastinum: it is treated as outside (border 1: the lungs
    # may run through the first and last slices).
    lm = binary_erode(lung[box], connectivity=6, border_value=1)
    if not lm.any():
        lm = lung[box]
    bg = np.float32(np.median(sub[lm]))
    sub -= bg
    sub[~lm] = 0.0
    radii = _radii(d0, d1, ns)
    scores = np.empty((len(radii),) + sub.shape, dtype=np.float32)
    smoothed = np.empty_like(scores)
    for k, r in enumerate(radii):
        # A sampled image holds no detail finer than about a voxel (thin
        # vessels and noise live there): σ per axis is at least
        # _MIN_SIGMA_VOXELS voxel, and the normalisation uses the σ applied.
        sig = [max(float(r) / math.sqrt(3.0), _MIN_SIGMA_VOXELS * h) for h in sp]
        smoothed[k] = gaussian(sub, [s / h for s, h in zip(sig, sp)])
        norm = float(np.prod(sig)) ** (2.0 / 3.0)
        scores[k] = _laplacian(smoothed[k], sp) * np.float32(-norm)
    # Non-maximum suppression over (scale, z, y, x), 3 wide on each axis.
    peak = scores
    for axis in (1, 2, 3, 0):
        peak = _max3(peak, axis)
    is_peak = (scores >= peak) & (scores >= np.float32(floor)) & lm[None]
    ks, zs, ys, xs = np.nonzero(is_peak)
    # Blobness: |λ_smallest| / |λ_largest| of the Hessian of G at the peak's
    # scale (1 for a sphere, ~0 for a vessel or a sheet); the score is the
    # LoG response times that ratio.
    vals = scores[ks, zs, ys, xs] * _blobness(smoothed, ks, zs, ys, xs, sp)
    keep = vals >= np.float32(floor)
    ks, zs, ys, xs, vals = ks[keep], zs[keep], ys[keep], xs[keep], vals[keep]
    order = np.argsort(-vals, kind="stable")
    offset = np.array([s.start for s in box], dtype=np.float64)
    spa = np.asarray(sp)
    kept: list[NoduleCandidate] = []
    for j in order:
        k, z, y, x = int(ks[j]), int(zs[j]), int(ys[j]), int(xs[j])
        c = _refine(scores[k], z, y, x) + offset
        r = float(radii[k])
        c_mm = c * spa
        if any(np.linalg.norm(c_mm - np.asarray(o.center_mm)) < max(r, o.radius_mm) for o in kept):
            continue
        kept.append(NoduleCandidate(
            float(c[0]), float(c[1]), float(c[2]), float(c_mm[0]), float(c_mm[1]), float(c_mm[2]),
            r, float(vals[j]), k,
        ))
        if len(kept) >= cap:
            break
    return kept


def _blobness(
    g: npt.NDArray[np.float32],
    ks: npt.NDArray[np.intp],
    zs: npt.NDArray[np.intp],
    ys: npt.NDArray[np.intp],
    xs: npt.NDArray[np.intp],
    spacing: tuple[float, float, float],
) -> npt.NDArray[np.float32]:
    """Eigenvalue ratio of the finite-difference Hessian (in 1/mm²) of g[k] at the given points."""
    if ks.size == 0:
        return np.zeros(0, dtype=np.float32)
    pts = (zs, ys, xs)
    shape = g.shape[1:]

    def at(dz: int, dy: int, dx: int) -> npt.NDArray[np.float64]:
        idx = [np.clip(p + d, 0, n - 1) for p, d, n in zip(pts, (dz, dy, dx), shape)]
        return g[ks, idx[0], idx[1], idx[2]].astype(np.float64)

    c = at(0, 0, 0)
    unit = np.eye(3, dtype=int)
    hess = np.empty((ks.size, 3, 3))
    for a in range(3):
        ea = tuple(int(v) for v in unit[a])
        hess[:, a, a] = (at(*ea) - 2 * c + at(*(-v for v in ea))) / spacing[a] ** 2
        for b in range(a + 1, 3):
            eb = tuple(int(v) for v in unit[b])
            pp = at(*(x + y for x, y in zip(ea, eb)))
            mm = at(*(-x - y for x, y in zip(ea, eb)))
            pm = at(*(x - y for x, y in zip(ea, eb)))
            mp = at(*(-x + y for x, y in zip(ea, eb)))
            hess[:, a, b] = hess[:, b, a] = (pp + mm - pm - mp) / (4 * spacing[a] * spacing[b])
    lam = np.linalg.eigvalsh(hess)  # ascending: most negative first
    ratio = np.where(lam[:, 0] < 0, np.clip(-lam[:, 2], 0, None) / np.maximum(-lam[:, 0], 1e-12), 0.0)
    return np.asarray(ratio, dtype=np.float32)


def _refine(s: npt.NDArray[np.float32], z: int, y: int, x: int) -> npt.NDArray[np.float64]:
    """Score-weighted centroid of the positive scores in the 3×3×3 neighbourhood of a peak."""
    sl = tuple(slice(max(0, c - 1), min(n, c + 2)) for c, n in zip((z, y, x), s.shape))
    w = np.maximum(s[sl].astype(np.float64), 0.0)
    total = w.sum()
    if not total > 0:
        return np.array([z, y, x], dtype=np.float64)
    grids = np.meshgrid(*[np.arange(q.start, q.stop) for q in sl], indexing="ij")
    return np.array([(g * w).sum() / total for g in grids])


# ---------------------------------------------------------------- nodule mask


def _candidate_fields(candidate: Any) -> tuple[tuple[float, float, float], float]:
    try:
        if isinstance(candidate, (Mapping, NoduleCandidate)) or hasattr(candidate, "__getitem__"):
            c = (float(candidate["z"]), float(candidate["y"]), float(candidate["x"]))
            r = float(candidate["radius_mm"])
        else:
            raise TypeError
    except (KeyError, TypeError, ValueError, IndexError):
        raise TypeError(
            "candidate must be a NoduleCandidate or a mapping / pandas row with 'z', 'y', 'x' "
            f"(voxel centre) and 'radius_mm'; got {type(candidate).__name__}"
        ) from None
    if not all(math.isfinite(v) for v in c) or not (math.isfinite(r) and r > 0):
        raise ValueError(f"candidate must have a finite centre and a positive radius_mm; got {c}, {r}")
    return c, r


def nodule_mask(
    ct_hu: npt.ArrayLike,
    candidate: Any,
    *,
    spacing: Sequence[float],
    reach: float = 2.0,
    lung_mask: npt.ArrayLike | None = None,
) -> npt.NDArray[np.bool_]:
    """Boolean mask of the nodule at ``candidate``, by region growing.

    Parameters
    ----------
    ct_hu : 3D array (z, y, x) of HU (integer or float32/float64, finite)
    candidate : a :class:`NoduleCandidate` (or a mapping / pandas row with
        ``z, y, x`` voxel centre and ``radius_mm``); the centre must lie in
        the volume
    spacing : (dz, dy, dx) in mm
    reach : the grown region is confined to a sphere of ``reach`` times the
        candidate radius (plus one voxel), so it cannot leak far along vessels
    lung_mask : optional lung mask (e.g. :func:`lung_mask`); when given, the
        parenchyma HU is estimated from lung voxels only and the region
        stays inside the mask (if the centre is in it), so a nodule that
        touches the mediastinum or the chest wall does not grow into them

    Method: nodule HU = 90th percentile of the voxels within 0.6 r of the
    centre (at least the nearest voxel and its face neighbours);
    parenchyma HU = median of the shell between 1.5 r + one voxel and the
    reach sphere; threshold = their mean (the 50 % partial-volume level, so
    ground-glass nodules at about -600 HU in -850 HU lung grow as well as
    solid ones). The mask is the 6-connected component of
    ``HU > threshold`` (inside the sphere) that holds the brightest core
    voxel, with holes filled. Empty if the core is not above the threshold
    (no contrast).
    """
    from .kernels.morphology import fill_holes, label

    ct = _ct(ct_hu)
    sp = _spacing(spacing)
    centre, radius = _candidate_fields(candidate)
    if not all(-0.5 <= c <= n - 0.5 for c, n in zip(centre, ct.shape)):
        raise ValueError(f"candidate centre {centre} lies outside ct_hu of shape {ct.shape}")
    k = _number(reach, "reach", positive=True)
    lung = None if lung_mask is None else _lung(lung_mask, ct.shape)

    out = np.zeros(ct.shape, dtype=bool)
    r_max = k * radius + max(sp)  # may be inf for a huge reach: the sphere then holds the whole volume
    box = tuple(
        slice(math.floor(max(0.0, c - r_max / s)), math.ceil(min(n - 1.0, c + r_max / s)) + 1)
        for c, s, n in zip(centre, sp, ct.shape)
    )
    sub = ct[box]
    grids = np.ogrid[tuple(slice(b.start, b.stop) for b in box)]
    d = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, sp)))
    seed = tuple(round(c) - b.start for c, b in zip(centre, box))
    core = d <= max(0.6 * radius, min(sp) * 1.01)
    core[seed] = True
    nodule_hu = float(np.percentile(sub[core], 90))
    shell = (d >= 1.5 * radius + max(sp)) & (d <= r_max)
    if lung is not None:
        shell &= lung[box]
    if shell.sum() < 8:
        shell = d >= 1.5 * radius
    if not shell.any():
        return out
    parenchyma = float(np.median(sub[shell]))
    thr = 0.5 * (nodule_hu + parenchyma)
    grown = (sub > thr) & (d <= r_max)
    if lung is not None and lung[box][seed]:
        grown &= lung[box]  # a nodule touching the heart or the chest wall stops at the lung border
    cand = np.where(core & grown, sub, -np.inf)
    if not np.isfinite(cand).any():
        return out
    start = np.unravel_index(int(np.argmax(cand)), sub.shape)
    lab, _n = label(grown, connectivity=6)
    region = lab == lab[start]
    out[box] = fill_holes(region)
    return out


# ---------------------------------------------------------------- disease findings

#: Fibrosis zones: R/L lung (x below/above the middle column) x upper/middle/lower third of the slices.
ZONES = ("RU", "RM", "RL", "LU", "LM", "LL")


@dataclass(frozen=True)
class CavityCandidate:
    """One air pocket with a soft-tissue wall found by :func:`cavity_candidates`.

    ``z, y, x``: centroid of the air in voxel indices; ``radius_mm``: radius
    of the sphere of the air's volume; ``wall_fraction``: fraction of the
    shell around the air (``wall_mm`` thick) that is soft tissue (above
    ``wall_hu``), 1 for a closed ring; ``wall_hu_mean``: the shell's mean
    HU; ``volume_mm3``: the air's volume; ``score``: the wall fraction
    (candidates are sorted by it, best first); ``fibrotic_context``: the
    fraction of the lung 12-20 mm beyond the air's radius that
    :func:`fibrosis_mask` calls fibrotic.
    """

    z: float
    y: float
    x: float
    radius_mm: float
    wall_fraction: float
    wall_hu_mean: float
    volume_mm3: float
    score: float
    fibrotic_context: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @property
    def center_voxel(self) -> tuple[float, float, float]:
        return (self.z, self.y, self.x)


def cavity_candidates(
    ct_hu: npt.ArrayLike,
    lung_mask: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    air_hu: float = -920.0,
    wall_hu: float = -760.0,
    wall_mm: float = 6.0,
    min_radius_mm: float = 2.5,
    max_radius_mm: float = 30.0,
    min_wall_fraction: float = 0.75,
    max_fibrotic_context: float | None = 0.4,
    max_candidates: int = 20,
) -> list[CavityCandidate]:
    """Cavities in chest CT: air-filled blobs inside the lung ringed by a thick wall.

    Steps: air = HU below ``air_hu`` (10 noise SDs under normal lung)
    inside ``lung_mask`` (which must
    include the walls: :func:`lung_mask` fills them in) →
    :func:`medfuse.label` (6-connected) → per component whose
    equivalent-sphere radius is in [``min_radius_mm``, ``max_radius_mm``]:
    the shell :func:`medfuse.binary_dilate` adds around it within
    ``wall_mm`` (an ellipsoid in mm), inside the lung mask (the diaphragm or
    the chest wall next to an air space is not its wall); keep it when at least
    ``min_wall_fraction`` of the shell's voxels are above ``wall_hu``
    (a thick, closed wall). Thin-walled air spaces (bullae, emphysema) and
    normal parenchyma fail that test. Honeycomb cysts can pass it at 3 mm
    voxels, but they lie in fibrotic lung: with ``max_fibrotic_context``
    (None: no such test) a candidate is dropped when more than that
    fraction of the lung 12-20 mm beyond its air is fibrotic
    (:func:`fibrosis_mask` with its defaults). A cavity inside extensive
    fibrosis is then missed too: the price of not calling every honeycomb
    cyst a cavity.

    Returns at most ``max_candidates`` :class:`CavityCandidate`, best first.
    """
    from .kernels.morphology import binary_dilate, label

    ct = _ct(ct_hu)
    sp = _spacing(spacing)
    lung = _lung(lung_mask, ct.shape)
    air_t = _number(air_hu, "air_hu")
    wall_t = _number(wall_hu, "wall_hu")
    wall = _number(wall_mm, "wall_mm", positive=True)
    if any(wall / s > 10_000 for s in sp):
        raise ValueError(f"wall_mm of {wall:g} mm is more than 10000 voxels at spacing {sp}: too large")
    r0 = _number(min_radius_mm, "min_radius_mm")
    r1 = _number(max_radius_mm, "max_radius_mm", positive=True)
    if not 0 <= r0 < r1:
        raise ValueError(f"min_radius_mm must be in [0, max_radius_mm); got {min_radius_mm!r}, {max_radius_mm!r}")
    frac_t = _number(min_wall_fraction, "min_wall_fraction")
    if not 0.0 <= frac_t <= 1.0:
        raise ValueError(f"min_wall_fraction must be in [0, 1]; got {min_wall_fraction!r}")
    top = _positive_int(max_candidates, "max_candidates")
    ctx_t = None
    if max_fibrotic_context is not None:
        ctx_t = _number(max_fibrotic_context, "max_fibrotic_context")
        if not 0.0 <= ctx_t <= 1.0:
            raise ValueError(f"max_fibrotic_context must be None or in [0, 1]; got {max_fibrotic_context!r}")
    lab, count = label((ct < np.float32(air_t)) & lung, connectivity=6)
    if count == 0:
        return []
    voxel_mm3 = sp[0] * sp[1] * sp[2]
    sizes = np.bincount(lab.ravel(), minlength=count + 1)
    vmin = 4.0 / 3.0 * math.pi * r0**3 / voxel_mm3
    vmax = 4.0 / 3.0 * math.pi * r1**3 / voxel_mm3
    struct = _ellipsoid_structure(wall, sp)
    margin = tuple(s // 2 + 1 for s in struct.shape)
    out: list[CavityCandidate] = []
    for k in np.flatnonzero((sizes >= max(vmin, 1.0)) & (sizes <= vmax)):
        if k == 0:
            continue
        comp_full = lab == k
        box = _bbox(comp_full, margin)
        comp = comp_full[box]
        shell = binary_dilate(comp, struct) & ~comp & lung[box]
        vals = ct[box][shell]
        if vals.size == 0:
            continue
        fraction = float(np.count_nonzero(vals > np.float32(wall_t)) / vals.size)
        if fraction < frac_t:
            continue
        zz, yy, xx = np.nonzero(comp)
        volume = float(comp.sum()) * voxel_mm3
        out.append(
            CavityCandidate(
                z=float(zz.mean() + box[0].start),
                y=float(yy.mean() + box[1].start),
                x=float(xx.mean() + box[2].start),
                radius_mm=float((3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)),
                wall_fraction=fraction,
                wall_hu_mean=float(vals.mean()),
                volume_mm3=volume,
                score=fraction,
            )
        )
    if ctx_t is not None and out:
        fib = fibrosis_mask(ct, lung, spacing=sp)
        kept = []
        for c in out:
            reach = c.radius_mm + 20.0
            centre_mm = (c.z * sp[0], c.y * sp[1], c.x * sp[2])
            box = tuple(
                slice(max(0, int((cm - reach) / s)), min(n, int((cm + reach) / s) + 2))
                for cm, s, n in zip(centre_mm, sp, ct.shape)
            )
            grids = np.ogrid[box]
            d2 = sum((g * s - cm) ** 2 for g, s, cm in zip(grids, sp, centre_mm))
            ring = (d2 > (c.radius_mm + 12.0) ** 2) & (d2 < reach**2) & lung[box]
            n_ring = int(np.count_nonzero(ring))
            context = float(np.count_nonzero(fib[box] & ring) / n_ring) if n_ring else 0.0
            if context <= ctx_t:
                kept.append(replace(c, fibrotic_context=context))
        out = kept
    out.sort(key=lambda c: (-c.score, c.z, c.y, c.x))
    return out[:top]


def fibrosis_mask(
    ct_hu: npt.ArrayLike,
    lung_mask: npt.ArrayLike,
    *,
    spacing: Sequence[float],
    sigma_mm: float = 4.0,
    mean_hu: tuple[float, float] = (-740.0, -350.0),
    min_std_hu: float = 60.0,
    solid_hu: float = -200.0,
) -> npt.NDArray[np.bool_]:
    """Lung voxels with fibrotic (reticular) texture: a bool mask.

    Local statistics inside the lung by normalised convolution with
    :func:`medfuse.gaussian` (``sigma_mm``, in mm): the local mean HU and
    standard deviation of lung voxels below ``solid_hu`` only (the chest
    wall and mediastinum do not leak in, nor do the solid voxels a lung
    mask's closing takes in: vessels, the hila's edges, nodules). Reticulation and honeycombing raise the local mean
    above normal parenchyma (about -850 HU) but far below solid tissue,
    and make the texture heterogeneous: fibrotic = lung & mean in
    ``mean_hu`` & std >= ``min_std_hu``. Consolidation and nodules (mean
    above the range) and normal lung with its thin vessels (mean below it)
    are left out.
    """
    import medfuse as mf

    ct = _ct(ct_hu)
    sp = _spacing(spacing)
    lung = _lung(lung_mask, ct.shape)
    sigma = _number(sigma_mm, "sigma_mm", positive=True)
    try:
        lo, hi = (float(v) for v in mean_hu)
    except (TypeError, ValueError):
        raise ValueError(f"mean_hu must be two numbers (low, high); got {mean_hu!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"mean_hu must be two finite numbers with low < high; got {mean_hu!r}")
    std_t = _number(min_std_hu, "min_std_hu")
    solid = _number(solid_hu, "solid_hu")
    counted = lung & (ct < np.float32(solid))
    w = counted.astype(np.float32)
    x = np.where(counted, ct, np.float32(0.0))
    norm = mf.gaussian(w, sigma, spacing=sp)
    m1 = mf.gaussian(x, sigma, spacing=sp)
    m2 = mf.gaussian(x * x, sigma, spacing=sp)
    safe = np.maximum(norm, np.float32(1e-3))
    mean = m1 / safe
    std = np.sqrt(np.maximum(m2 / safe - mean * mean, np.float32(0.0)))
    out: npt.NDArray[np.bool_] = lung & (mean >= np.float32(lo)) & (mean <= np.float32(hi)) & (std >= np.float32(std_t))
    return out


def zone_fractions(mask: npt.ArrayLike, lung_mask: npt.ArrayLike) -> dict[str, float]:
    """Fraction of the lung in ``mask`` per zone of :data:`ZONES` (0 for a zone without lung).

    Zones: right (x index below the middle column) and left lung, each cut
    into the upper, middle and lower third of the slices (z).
    """
    lung = np.asarray(lung_mask) != 0
    m = np.asarray(mask) != 0
    if lung.ndim != 3 or m.shape != lung.shape:
        raise ValueError(f"mask and lung_mask must be 3D of the same shape; got {m.shape} and {lung.shape}")
    nz, nx = lung.shape[0], lung.shape[2]
    thirds = (slice(0, nz // 3), slice(nz // 3, 2 * nz // 3), slice(2 * nz // 3, nz))
    halves = (slice(0, nx // 2), slice(nx // 2, nx))
    out = {}
    for side, xs in zip("RL", halves):
        for level, zs in zip("UML", thirds):
            n = int(np.count_nonzero(lung[zs, :, xs]))
            out[side + level] = float(np.count_nonzero(m[zs, :, xs] & lung[zs, :, xs]) / n) if n else 0.0
    return out


def fibrosis_extent(
    ct_hu: npt.ArrayLike, lung_mask: npt.ArrayLike, *, spacing: Sequence[float], **kwargs: Any
) -> dict[str, float]:
    """Fibrotic fraction of the lung per zone (:data:`ZONES`) and overall (``"total"``).

    :func:`fibrosis_mask` (``kwargs`` go to it) summarised by :func:`zone_fractions`.
    """
    m = fibrosis_mask(ct_hu, lung_mask, spacing=spacing, **kwargs)
    lung = np.asarray(lung_mask) != 0
    out = zone_fractions(m, lung)
    n = int(np.count_nonzero(lung))
    out["total"] = float(np.count_nonzero(m) / n) if n else 0.0
    return out
