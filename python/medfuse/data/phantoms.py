"""Small deterministic synthetic chest data: a lung CT volume and an X-ray.

NumPy only, seedable, fast (the default volume takes well under a second).
The anatomy is schematic but has the intensities, edges and confounders
that matter for image kernels and for lung masks and nodule detection: air,
a fat rim around soft tissue, two lungs shaped by the heart (cardiac notch),
the great vessels (hila, aortic knob and arch, superior vena cava,
ascending and descending aorta, pulmonary trunk) in anterior mediastinal
fat, the trachea and main bronchi, the diaphragm's domes (their tops in the
lowest slices, liver and spleen enclosed by a crescent of lung) with the
gastric air under the left one, branching pulmonary vessel trees with their
bronchi (air lumens in thin walls), ribs, a vertebral column and one solid
nodule. The numbers are module constants, shared with the radiograph model
(:mod:`medfuse.data.radiograph`).

Geometry. The field of view is physical and fixed: 358.4 mm in-plane (a
512 x 512 scan at 0.7 mm) and 160 mm cranio-caudal, so the voxel spacing
follows from the shape: (64, 256, 256) gives (2.5, 1.4, 1.4) mm and
(64, 512, 512) gives (2.5, 0.7, 0.7) mm. Axes are (z, y, x): z from head
(index 0) to feet, y from anterior (index 0) to posterior, x from the
patient's right (index 0, image left, radiological convention) to left.

Structures are painted with a partial-volume edge one voxel wide, then
Gaussian noise (15 HU) is added, as in a reconstructed CT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ZONES", "CTPhantom", "Cavity", "DiseasePhantom", "ct_phantom", "ct_volume", "disease_ct_phantom",
    "nodule_ct_phantom", "window_u8", "xray_from_ct", "zone_fractions",
]

FOV_YX_MM = 358.4
FOV_Z_MM = 160.0

HU_AIR = -1000.0
HU_FAT = -100.0
HU_SOFT = 40.0
HU_LUNG = -850.0
HU_NODULE = 30.0
HU_RIB = 700.0
HU_VERTEBRA = 350.0
HU_CORTEX = 900.0
HU_DISC = 80.0
NOISE_HU = 15.0

# Linear attenuation of water at ~70 keV, per mm; HU = 1000 (mu - mu_w) / mu_w.
MU_WATER_PER_MM = 0.019

# The static anatomy, in mm relative to the volume's centre (z caudal, y
# posterior, x towards the patient's left). ct_phantom and the cohort
# phantoms paint it from these numbers, and medfuse.data.radiograph projects
# the same numbers analytically: change them here and all of them follow.
# Python floats on purpose: against float32 coordinates they act as float32.
BODY_Y_MM = 5.0  # the body's elliptic cross-section is centred this far behind the volume's centre
BODY_SEMI_MM = (118.0, 160.0)  # its semi-axes (y, x)
FAT_RIM_MM = 13.0  # subcutaneous fat, inside the body's outline
SPINE_Y_MM = 89.0  # vertebral body centre (y)
VERTEBRA_SEMI_MM = (16.0, 19.0)  # vertebral body semi-axes (y, x)
CORTEX_MM = 2.5  # cortical shell of the vertebral body
ARCH_Y_MM = 24.0  # the neural arch and canal are centred this far behind the vertebral body's centre
ARCH_SEMI_MM = (13.0, 14.0)  # neural arch outline (y, x)
CANAL_SEMI_MM = (8.0, 9.0)  # spinal canal (y, x), inside the arch
VERTEBRA_PERIOD_MM = 27.0  # one vertebra plus one disc along z
DISC_SHIFT_MM = 8.0  # z + DISC_SHIFT_MM = 0 (mod period) is the middle of a disc
DISC_HALF_MM = 2.0  # half the disc's height
LUNG_CENTRE_MM = (25.0, 8.0, 68.0)  # each lung's ellipsoid: centre (z, y, |x|) ...
LUNG_SEMI_MM = (125.0, 78.0, 52.0)  # ... and semi-axes (z, y, x); the apex is above the CT's field of view
HEART_CENTRE_MM = (60.0, -25.0, 28.0)  # the heart's ellipsoid (z, y, x), carving the lungs (cardiac notch)
HEART_SEMI_MM = (70.0, 55.0, 58.0)
HILUM_MM = (5.0, 8.0, 44.0)  # where each vessel tree starts (z, y, |x|): the hilum's lateral edge
# Below its equator each lung keeps its widest section down to the diaphragm.
# The diaphragm under each lung is a dome: its top (z) is DOME_TOP_MM[side]
# at |x| = LUNG_CENTRE_MM[2] and y = DOME_Y_MM, and it falls by
# DOME_DROP_MM * (u^2 + DOME_BACK * w^2) with u = (|x| - 68) / 52 and
# w = (y - DOME_Y_MM) / 78 (the lung's semi-axes): the costophrenic angles
# laterally, the deeper posterior recess behind. The right dome is higher.
# The CT's lowest slices (z up to 80) cut the domes' tops: liver and spleen
# (soft tissue) surrounded by a crescent of lung, as in a real scan.
DOME_TOP_MM = {-1.0: 62.0, 1.0: 72.0}
DOME_Y_MM = -10.0
DOME_DROP_MM = 45.0
DOME_BACK = 1.5
# Mediastinum. Great vessels (soft tissue: blood without contrast) as
# ellipsoids (centre (z, y, x), semi-axes). They push the lungs aside where
# they meet them (aortic knob, hila, SVC) and stand out against the anterior
# mediastinal fat (ascending aorta, pulmonary trunk). All are centred in the
# mediastinum (|x| < 16, where there is no lung), so none shows as an island
# in the lung in any slice.
GREAT_VESSELS_MM: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "aortic_knob": ((-52.0, 5.0, 14.0), (17.0, 26.0, 32.0)),
    "left_hilum": ((-5.0, 10.0, 12.0), (32.0, 22.0, 35.0)),  # left pulmonary artery and veins
    "right_hilum": ((-5.0, 10.0, -12.0), (32.0, 22.0, 34.0)),
    "svc": ((-40.0, -5.0, -22.0), (45.0, 20.0, 9.0)),  # superior vena cava
    "ascending_aorta": ((-22.0, -32.0, -6.0), (36.0, 14.0, 14.0)),
    "pulmonary_trunk": ((-6.0, -48.0, 16.0), (18.0, 12.0, 12.0)),
}
AORTA_DESC_MM = ((40.0, 24.0), 12.5, -50.0)  # descending aorta: (y, x) axis, radius, top z (down through the domes)
MEDIASTINAL_FAT_MM = ((-30.0, -44.0, 0.0), (52.0, 24.0, 20.0))  # anterior mediastinal fat around the great vessels
# Airways: tubes (start, end (z, y, x) mm, lumen radius) with a soft-tissue wall of AIRWAY_WALL_MM.
TRACHEA_MM = ((-200.0, -15.0, 0.0), (-38.0, -10.0, 0.0), 8.5)
MAIN_BRONCHI_MM = (
    ((-38.0, -10.0, -1.0), (-10.0, 0.0, -26.0), 6.0),  # right
    ((-38.0, -10.0, 1.0), (-5.0, 2.0, 30.0), 5.5),  # left
)
AIRWAY_WALL_MM = 1.5
# Intrapulmonary bronchi run beside the first three generations of each
# vessel tree (bronchovascular bundles): lumen BRONCHUS_RATIO times the
# artery's radius, wall BRONCHUS_WALL times the lumen radius.
BRONCHUS_RATIO = 0.8
BRONCHUS_WALL = 0.35
STOMACH_MM = ((90.0, -15.0, 62.0), (12.0, 22.0, 28.0))  # gastric air under the left dome
# The ellipsoids that push the lungs aside, by name (the CT paints them, the radiograph cuts its lung chords with them).
CARVING_ELLIPSOIDS_MM = {"heart": (HEART_CENTRE_MM, HEART_SEMI_MM), **GREAT_VESSELS_MM, "stomach": STOMACH_MM}
# Ribs: bands in a shell inside the chest wall (the body's inner outline),
# descending anteriorly by RIB_SLOPE_MM per radian away from the spine, none in
# front (costal cartilage is soft tissue here). Each rib's cross-section is an
# ellipse of RIB_HALF_HEIGHT_MM (z) by RIB_HALF_DEPTH_MM (radial).
RIB_WALL_MM = (BODY_SEMI_MM[0] - FAT_RIM_MM, BODY_SEMI_MM[1] - FAT_RIM_MM)  # (y, x) = (105, 147)
RIB_SHELL_RHO = 0.92  # the ribs' centre line, as a fraction of the wall's semi-axes
RIB_SHELL_HALF = 0.08  # the shell painted around it, same units
RIB_FROM_BACK = (0.25, 0.72 * np.pi)  # angular extent (radians from the spine's direction)
RIB_PERIOD_MM = 26.0
RIB_SLOPE_MM = 22.0
RIB_HALF_HEIGHT_MM = 5.0
RIB_HALF_DEPTH_MM = 4.5

# The detector of an X-ray: unattenuated photons per pixel (quantum noise)
# and the log attenuation that maps to the top code value.
PHOTONS_PER_PIXEL = 1.0e6
FULL_SCALE_LOG = 8.0


@dataclass(frozen=True)
class CTPhantom:
    """A synthetic CT and the ground truth needed to score edge detection."""

    volume: npt.NDArray[np.int16]  # HU, (z, y, x)
    spacing: tuple[float, float, float]  # (dz, dy, dx) in mm
    nodule_center: tuple[float, float, float]  # (z, y, x) in voxels (fractional)
    nodule_radius_mm: float

    def nodule_box(self, margin: int = 2) -> tuple[slice, slice, slice]:
        """Index box holding the nodule plus ``margin`` voxels on every side."""
        box = []
        for c, s, n in zip(self.nodule_center, self.spacing, self.volume.shape):
            r = self.nodule_radius_mm / s
            box.append(slice(max(0, int(np.floor(c - r)) - margin), min(n, int(np.ceil(c + r)) + margin + 1)))
        return box[0], box[1], box[2]

    def nodule_mask(self, box: tuple[slice, slice, slice] | None = None) -> npt.NDArray[np.bool_]:
        """Voxels whose centre lies inside the nodule sphere (within ``box`` if given)."""
        if box is None:
            box = (slice(0, self.volume.shape[0]), slice(0, self.volume.shape[1]), slice(0, self.volume.shape[2]))
        centre_mm = tuple(c * s for c, s in zip(self.nodule_center, self.spacing))
        zz, yy, xx = _box_coords(box, self.spacing, centre_mm)
        inside: npt.NDArray[np.bool_] = zz * zz + yy * yy + xx * xx <= np.float32(self.nodule_radius_mm**2)
        return inside


def _spacing_for(shape: tuple[int, int, int]) -> tuple[float, float, float]:
    z, y, x = shape
    return (FOV_Z_MM / z, FOV_YX_MM / y, FOV_YX_MM / x)


def _soft(distance_inside_mm: npt.NDArray[np.float32], width_mm: float) -> npt.NDArray[np.float32]:
    """Partial-volume occupancy from a signed distance (> 0 inside)."""
    f = distance_inside_mm / np.float32(width_mm) + np.float32(0.5)
    frac: npt.NDArray[np.float32] = np.clip(f, 0.0, 1.0).astype(np.float32, copy=False)
    return frac


def _ellipse_distance(
    offsets: list[npt.NDArray[np.float32]], semi_axes: list[float]
) -> npt.NDArray[np.float32]:
    """Signed distance (mm, > 0 inside) to an axis-aligned ellipse/ellipsoid.

    Measured along the ray from the centre, which is exact for a circle and
    close enough elsewhere for a one-voxel partial-volume edge.
    """
    rho2 = sum((o / np.float32(a)) ** 2 for o, a in zip(offsets, semi_axes))
    r2 = sum(o * o for o in offsets)
    rho = np.sqrt(np.maximum(rho2, np.float32(1e-12)))
    r = np.sqrt(r2)
    return (r / rho - r).astype(np.float32, copy=False)


def _paint(
    vol: npt.NDArray[np.float32],
    frac: npt.NDArray[np.float32],
    hu: float | npt.NDArray[np.float32],
) -> None:
    """vol <- vol * (1 - frac) + hu * frac, in place (broadcasting frac)."""
    target = np.float32(hu) if isinstance(hu, float) else hu
    vol += frac * (target - vol)


@dataclass(frozen=True)
class _Segment:
    start: npt.NDArray[np.float64]  # (z, y, x) mm
    end: npt.NDArray[np.float64]
    radius: float  # mm
    hu: float
    generation: int = 0  # of a vessel tree: 0 at the hilum


def _vessel_tree(
    rng: np.random.Generator, hilum: npt.NDArray[np.float64], side: float
) -> list[_Segment]:
    """Branching tubes growing out of a hilum, thinner at every generation."""
    segments: list[_Segment] = []
    # (start, direction, radius, generation)
    stack: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float, int]] = []
    for k in range(5):
        angle = np.pi * (-0.45 + 0.9 * k / 4)  # fan from cranial to caudal
        direction = np.array([np.sin(angle), rng.uniform(-0.3, 0.3), side * np.cos(angle)])
        stack.append((hilum, direction / np.linalg.norm(direction), 3.0, 0))
    while stack:
        start, direction, radius, gen = stack.pop()
        length = rng.uniform(28.0, 40.0) * 0.75**gen
        end = start + direction * length
        segments.append(_Segment(start, end, radius, rng.uniform(40.0, 200.0), gen))
        if gen < 3:
            for turn in (-0.5, 0.5):
                d = direction + rng.normal(0.0, 0.15, 3)
                d[0] += turn * 0.6
                d[1] += -turn * 0.4
                stack.append((end, d / np.linalg.norm(d), radius * 0.7, gen + 1))
    return segments


def _bronchi(vessels: list[_Segment]) -> list[_Segment]:
    """The bronchi beside a vessel tree's first three generations, as (wall, lumen) tube pairs (paint in order).

    Each runs parallel to its artery, offset sideways (in the axial plane when it can) so that the two
    touch; lumen BRONCHUS_RATIO times the artery's radius, air; wall BRONCHUS_WALL times the lumen, soft tissue.
    """
    out = []
    for seg in vessels:
        if seg.generation > 2:
            continue
        axis = seg.end - seg.start
        axis = axis / np.linalg.norm(axis)
        side = np.cross(axis, np.array([1.0, 0.0, 0.0]))
        if np.linalg.norm(side) < 0.3:
            side = np.cross(axis, np.array([0.0, 1.0, 0.0]))
        side /= np.linalg.norm(side)
        lumen = seg.radius * BRONCHUS_RATIO
        outer = lumen * (1.0 + BRONCHUS_WALL)
        shift = side * (seg.radius + outer + 0.3)
        out.append(_Segment(seg.start + shift, seg.end + shift, outer, HU_SOFT, seg.generation))
        out.append(_Segment(seg.start + shift, seg.end + shift, lumen, HU_AIR, seg.generation))
    return out


def _paint_segment(
    vol: npt.NDArray[np.float32],
    lung: npt.NDArray[np.float32] | None,
    seg: _Segment,
    spacing: tuple[float, float, float],
) -> None:
    """Paint one tube (a capsule around a segment), only where there is lung (everywhere if ``lung`` is None)."""
    middle = (seg.start + seg.end) / 2
    half_extent = np.abs(seg.end - seg.start) / 2 + seg.radius
    box = _box_for(middle, half_extent, vol.shape, spacing)
    if box is None:
        return
    rel = _box_coords(box, spacing, (float(seg.start[0]), float(seg.start[1]), float(seg.start[2])))
    ab = (seg.end - seg.start).astype(np.float32)
    t = np.clip((rel[0] * ab[0] + rel[1] * ab[1] + rel[2] * ab[2]) / np.float32(ab @ ab), 0.0, 1.0)
    d2 = sum((r - t * a) ** 2 for r, a in zip(rel, ab))  # squared distance to the segment
    frac = _soft(np.float32(seg.radius) - np.sqrt(d2), spacing[2])
    if lung is not None:
        frac = frac * lung[box]
    _paint(vol[box], frac, seg.hu)


def _box_for(
    center_mm: npt.NDArray[np.float64] | tuple[float, ...],
    half_extent_mm: npt.NDArray[np.float64] | tuple[float, ...],
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
) -> tuple[slice, ...] | None:
    """Index box covering centre +- half extent (plus two voxels), or None if empty."""
    box = []
    for c, h, n, s in zip(center_mm, half_extent_mm, shape, spacing):
        lo = max(0, int(np.floor((c - h) / s)) - 2)
        hi = min(n, int(np.ceil((c + h) / s)) + 3)
        if hi <= lo:
            return None
        box.append(slice(lo, hi))
    return tuple(box)


def _box_coords(
    box: tuple[slice, ...], spacing: tuple[float, ...], center_mm: tuple[float, ...]
) -> list[npt.NDArray[np.float32]]:
    """Open-grid coordinates (mm) of a box, relative to ``center_mm``."""
    ndim = len(box)
    out = []
    for axis, (sl, s, c) in enumerate(zip(box, spacing, center_mm)):
        v = np.arange(sl.start, sl.stop, dtype=np.float32) * np.float32(s) - np.float32(c)
        out.append(v.reshape([-1 if i == axis else 1 for i in range(ndim)]))
    return out


def _ellipsoid(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    center_mm: tuple[float, float, float],
    semi_axes: tuple[float, float, float],
    edge: float,
) -> tuple[tuple[slice, ...], npt.NDArray[np.float32]] | None:
    """Occupancy of an ellipsoid inside its bounding box: (box, fraction)."""
    box = _box_for(center_mm, semi_axes, shape, spacing)
    if box is None:
        return None
    return box, _soft(_ellipse_distance(_box_coords(box, spacing, center_mm), list(semi_axes)), edge)


def _centre_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[float, float, float]:
    """The volume's centre (z, y, x) in mm from voxel 0's centre."""
    nz, ny, nx = shape
    dz, dy, dx = spacing
    return ((nz - 1) * dz / 2, (ny - 1) * dy / 2, (nx - 1) * dx / 2)


def _is_disc(z_mm: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Where z (mm from the centre, any float dtype) is an intervertebral disc rather than a vertebral body."""
    half = VERTEBRA_PERIOD_MM / 2
    out: npt.NDArray[np.bool_] = np.abs((z_mm + DISC_SHIFT_MM) % VERTEBRA_PERIOD_MM - half) > half - DISC_HALF_MM
    return out


def _axial_template(
    y2: npt.NDArray[np.float32], x2: npt.NDArray[np.float32], edge: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One axial slice through a vertebral body, one through a disc, and where the spine is not.

    Air, a fat rim, soft tissue (muscle, mediastinum), and the vertebral
    column -- a vertebral body (cortex, trabecular bone) with the neural arch
    behind it, or an intervertebral disc. ``y2`` (ny, 1) and ``x2`` (1, nx) are
    mm from the volume's centre; returns (bone slice, disc slice, spine-free
    fraction), each (ny, nx).
    """
    body = _ellipse_distance([y2 - BODY_Y_MM, x2], list(BODY_SEMI_MM))
    bone_slice = np.full(np.broadcast_shapes(y2.shape, x2.shape), HU_AIR, dtype=np.float32)
    _paint(bone_slice, _soft(body, edge), HU_FAT)
    _paint(bone_slice, _soft(body - FAT_RIM_MM, edge), HU_SOFT)
    disc_slice = bone_slice.copy()
    vertebra = _ellipse_distance([y2 - SPINE_Y_MM, x2], list(VERTEBRA_SEMI_MM))
    cortex = _soft(vertebra, edge)
    _paint(disc_slice, cortex, HU_DISC)
    _paint(bone_slice, cortex, HU_CORTEX + (HU_VERTEBRA - HU_CORTEX) * _soft(vertebra - CORTEX_MM, edge))
    canal = _soft(_ellipse_distance([y2 - SPINE_Y_MM - ARCH_Y_MM, x2], list(CANAL_SEMI_MM)), edge)
    arch = _soft(_ellipse_distance([y2 - SPINE_Y_MM - ARCH_Y_MM, x2], list(ARCH_SEMI_MM)), edge) - canal
    _paint(bone_slice, arch, HU_CORTEX)
    spine_free = 1.0 - np.maximum(cortex, arch + canal)
    return bone_slice, disc_slice, spine_free


def _at(center: tuple[float, float, float], rel: tuple[float, float, float]) -> tuple[float, float, float]:
    """A point given relative to the volume's centre (mm), from voxel 0's centre."""
    return (center[0] + rel[0], center[1] + rel[1], center[2] + rel[2])


def dome_z(y: npt.NDArray[Any], x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """z (mm from the centre, caudal) of the diaphragm under (y, x) (mm from the centre, broadcastable): see DOME_TOP_MM."""
    f = np.result_type(y, x, np.float32).type
    top = np.where(x < 0, f(DOME_TOP_MM[-1.0]), f(DOME_TOP_MM[1.0]))
    u = (np.abs(x) - f(LUNG_CENTRE_MM[2])) / f(LUNG_SEMI_MM[2])
    w = (y - f(DOME_Y_MM)) / f(LUNG_SEMI_MM[1])
    out: npt.NDArray[Any] = top + f(DOME_DROP_MM) * (u * u + f(DOME_BACK) * w * w)
    return out


def _mediastinal_carvers(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    center: tuple[float, float, float],
    edge: float,
) -> dict[str, tuple[tuple[slice, ...], npt.NDArray[np.float32]]]:
    """Occupancy (box, fraction) of what pushes the lungs aside, by name: the heart, the great
    vessels (GREAT_VESSELS_MM's names), the descending aorta and the stomach (those inside the volume)."""
    out = {}
    for name, (c_rel, semi) in CARVING_ELLIPSOIDS_MM.items():
        found = _ellipsoid(shape, spacing, _at(center, c_rel), semi, edge)
        if found is not None:
            out[name] = found
    (ay, ax), r, top = AORTA_DESC_MM
    c = _at(center, (top, ay, ax))
    box = _box_for((c[0] + FOV_Z_MM, c[1], c[2]), (FOV_Z_MM, r, r), shape, spacing)
    if box is not None:
        rel = _box_coords(box, spacing, c)
        disc = _soft(np.float32(r) - np.sqrt(rel[1] ** 2 + rel[2] ** 2), edge)
        out["descending_aorta"] = (box, disc * _soft(rel[0], edge))  # from its top (z = top) down
    return out


def _lung_occupancy(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    center: tuple[float, float, float],
    edge: float,
    spine_free: npt.NDArray[np.float32],
    carvers: dict[str, tuple[tuple[slice, ...], npt.NDArray[np.float32]]],
) -> npt.NDArray[np.float32]:
    """Lung occupancy in [0, 1]: ellipsoids above their equator that keep their widest
    section below it, down to the diaphragm's domes, kept off the spine; ``carvers``
    (:func:`_mediastinal_carvers`: the heart (cardiac notch), the great vessels, the
    descending aorta and the stomach) carve them."""
    lung = np.zeros(shape, dtype=np.float32)
    for side in (-1.0, 1.0):  # -1: patient's right (image left)
        cz, cy, cx = LUNG_CENTRE_MM
        c = (center[0] + cz, center[1] + cy, center[2] + side * cx)
        az, ay, ax = LUNG_SEMI_MM
        # z: from the apex down to the bottom of the volume (the dome ends the lung)
        box = _box_for((c[0] - az / 2 + FOV_Z_MM, c[1], c[2]), (az / 2 + FOV_Z_MM, ay, ax), shape, spacing)
        if box is None:
            continue
        rel = _box_coords(box, spacing, c)
        above = np.minimum(rel[0], np.float32(0.0))  # below the equator: the widest section
        frac = _soft(_ellipse_distance([above, rel[1], rel[2]], list(LUNG_SEMI_MM)), edge)
        y_c = rel[1] + np.float32(c[1] - center[1])
        x_c = rel[2] + np.float32(c[2] - center[2])
        z_c = rel[0] + np.float32(c[0] - center[0])
        frac = frac * _soft(dome_z(y_c, x_c) - z_c, edge)
        np.maximum(lung[box], frac * spine_free[box[1:]], out=lung[box])
    for box, occ in carvers.values():
        lung[box] *= 1.0 - occ
    return lung


def _paint_mediastinum(
    vol: npt.NDArray[np.float32],
    spacing: tuple[float, float, float],
    center: tuple[float, float, float],
    edge: float,
    carvers: dict[str, tuple[tuple[slice, ...], npt.NDArray[np.float32]]],
) -> None:
    """Paint (before the lungs) the anterior mediastinal fat, the great vessels and the descending
    aorta (soft tissue; ``carvers`` from :func:`_mediastinal_carvers`), the trachea and main bronchi
    (air in a soft-tissue wall) and the stomach's air."""
    c_rel, semi = MEDIASTINAL_FAT_MM
    found = _ellipsoid(vol.shape, spacing, _at(center, c_rel), semi, edge)  # type: ignore[arg-type]
    if found is not None:
        box, frac = found
        _paint(vol[box], frac, HU_FAT)
    for name in (*GREAT_VESSELS_MM, "descending_aorta"):
        if name in carvers:
            box, occ = carvers[name]
            _paint(vol[box], occ, HU_SOFT)
    for start, end, radius in (TRACHEA_MM, *MAIN_BRONCHI_MM):
        a = np.add(start, center)
        b = np.add(end, center)
        _paint_segment(vol, None, _Segment(a, b, radius + AIRWAY_WALL_MM, HU_SOFT), spacing)
        _paint_segment(vol, None, _Segment(a, b, radius, HU_AIR), spacing)
    if "stomach" in carvers:
        box, occ = carvers["stomach"]
        _paint(vol[box], occ, HU_AIR)


def _hilum(center: tuple[float, float, float], side: float) -> npt.NDArray[np.float64]:
    return np.array([center[0] + HILUM_MM[0], center[1] + HILUM_MM[1], center[2] + side * HILUM_MM[2]])


def _rib_shell(
    y: npt.NDArray[Any], x: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Where (y, x) (mm from the centre, broadcastable, float32 or float64) lies relative to the ribs' shell.

    Returns (from_back, radial, in_shell): the angle (radians) from the
    spine's direction (0 behind, pi in front), the signed depth (mm) from the
    ribs' centre line (the shell at RIB_SHELL_RHO of the chest wall), and
    whether the point is inside the painted shell (depth and angular extent).
    """
    f = np.result_type(y, x).type
    u = (y - BODY_Y_MM) / f(RIB_WALL_MM[0])
    v = x / f(RIB_WALL_MM[1])
    rho = np.sqrt(u**2 + v**2)
    from_back = np.abs(np.arctan2(u, v) - f(np.pi / 2))
    from_back = np.minimum(from_back, f(2 * np.pi) - from_back)  # 0 at the spine, pi in front
    unit = rho - f(RIB_SHELL_RHO)
    in_shell = (np.abs(unit) < RIB_SHELL_HALF) & (from_back > RIB_FROM_BACK[0]) & (from_back < RIB_FROM_BACK[1])
    return from_back, unit * f(RIB_WALL_MM[0]), in_shell


def _rib_band(z: npt.NDArray[Any], from_back: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """|z - the nearest rib's centre| / RIB_HALF_HEIGHT_MM (broadcasting; 0 on a rib's centre line, 1 at its edge)."""
    phase = (z - RIB_SLOPE_MM * from_back) % RIB_PERIOD_MM
    out: npt.NDArray[Any] = np.abs(phase - RIB_PERIOD_MM / 2) / RIB_HALF_HEIGHT_MM
    return out


def _paint_ribs(
    vol: npt.NDArray[np.float32],
    z_mm: npt.NDArray[np.float32],
    y2: npt.NDArray[np.float32],
    x2: npt.NDArray[np.float32],
    edge: float,
) -> None:
    """Paint the ribs into ``vol`` (nz, ny, nx) in place; ``z_mm`` (nz,), ``y2`` (ny, 1), ``x2`` (1, nx) in mm."""
    from_back, radial, shell = _rib_shell(y2, x2)
    iy, ix = np.nonzero(shell)
    if iy.size:
        band = _rib_band(z_mm[:, None], from_back[iy, ix][None, :])
        r = np.sqrt(band**2 + (radial[iy, ix] / np.float32(RIB_HALF_DEPTH_MM))[None, :] ** 2)
        plane = vol.reshape(vol.shape[0], -1)
        flat = iy * vol.shape[2] + ix
        sub = plane[:, flat]
        _paint(sub, _soft((1.0 - r) * np.float32(RIB_HALF_HEIGHT_MM), edge), HU_RIB)
        plane[:, flat] = sub


def _detector_image(path: npt.NDArray[np.float64], bits: int, seed: int) -> npt.NDArray[np.uint16]:
    """A detector's reading of log attenuations ``path``: quantum noise drawn from ``seed``, then ``bits`` bits."""
    rng = np.random.default_rng(seed)
    # Quantum noise (Poisson, as Gaussian on the log signal): relative sd of the detected intensity, 1 / sqrt(photons).
    photons = PHOTONS_PER_PIXEL * np.exp(-path)
    noisy = path + rng.standard_normal(path.shape) / np.sqrt(np.maximum(photons, 1.0))
    top = 2 ** int(bits) - 1
    image: npt.NDArray[np.uint16] = np.clip(np.rint(noisy / FULL_SCALE_LOG * top), 0, top).astype(np.uint16)
    return image


def ct_phantom(shape: tuple[int, int, int] = (64, 256, 256), seed: int = 0) -> CTPhantom:
    """Build a synthetic chest CT with its nodule ground truth.

    ``shape`` is (z, y, x), each at least 1 (use at least 32 in y and x for
    recognisable anatomy); the spacing follows from it (see the module doc).
    ``seed`` sets the vessel tree, the nodule position and the noise.
    """
    dims = tuple(int(n) for n in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"shape must be three positive integers (z, y, x); got {tuple(shape)}")
    shape3: tuple[int, int, int] = (dims[0], dims[1], dims[2])
    rng = np.random.default_rng(seed)
    spacing = _spacing_for(shape3)
    nz, ny, nx = shape3
    dz, dy, dx = spacing
    center = _centre_mm(shape3, spacing)  # mm
    edge = dx  # partial-volume width, mm
    y2, x2 = _box_coords((slice(0, ny), slice(0, nx)), (dy, dx), center[1:])

    # Axial template (body, fat rim, spine), a vertebral body or a disc per slice.
    bone_slice, disc_slice, spine_free = _axial_template(y2, x2, edge)
    z_mm = np.arange(nz, dtype=np.float32) * np.float32(dz) - np.float32(center[0])
    vol = np.where(_is_disc(z_mm)[:, None, None], disc_slice[None], bone_slice[None])

    # Mediastinum (fat, great vessels, airways) and the stomach, then the lungs:
    # kept off the spine, above the domes, minus the heart and great vessels.
    carvers = _mediastinal_carvers(shape3, spacing, center, edge)
    _paint_mediastinum(vol, spacing, center, edge, carvers)
    lung = _lung_occupancy(shape3, spacing, center, edge, spine_free, carvers)
    _paint(vol, lung, HU_LUNG)

    # Vessels: two trees from the hila, inside the lungs only, each with its bronchi.
    for side in (-1.0, 1.0):
        tree = _vessel_tree(rng, _hilum(center, side), side)
        for seg in _bronchi(tree) + tree:
            _paint_segment(vol, lung, seg, spacing)

    # Nodule: a solid sphere well inside the right lung.
    nodule_radius = 6.0
    offset = (rng.uniform(-25.0, 15.0), rng.uniform(-10.0, 25.0), -LUNG_CENTRE_MM[2] + rng.uniform(-12.0, 12.0))
    nodule_mm = (center[0] + offset[0], center[1] + offset[1], center[2] + offset[2])
    found = _ellipsoid(shape3, spacing, nodule_mm, (nodule_radius,) * 3, edge)
    if found is not None:
        box, frac = found
        _paint(vol[box], frac, HU_NODULE)

    # Ribs (painted last: they cover whatever lies in their shell).
    _paint_ribs(vol, z_mm, y2, x2, edge)

    vol += rng.standard_normal(shape3, dtype=np.float32) * np.float32(NOISE_HU)
    np.rint(vol, out=vol)
    np.clip(vol, -1024, 3071, out=vol)
    nodule_vox = (nodule_mm[0] / dz, nodule_mm[1] / dy, nodule_mm[2] / dx)
    return CTPhantom(vol.astype(np.int16), spacing, nodule_vox, nodule_radius)


def ct_volume(
    shape: tuple[int, int, int] = (64, 256, 256), seed: int = 0
) -> tuple[npt.NDArray[np.int16], tuple[float, float, float]]:
    """Synthetic chest CT: (int16 HU volume (z, y, x), spacing (dz, dy, dx) mm)."""
    ph = ct_phantom(shape, seed)
    return ph.volume, ph.spacing


def xray_from_ct(
    volume: npt.ArrayLike,
    spacing: tuple[float, float, float],
    *,
    bits: int = 12,
    seed: int = 0,
) -> npt.NDArray[np.uint16]:
    """A frontal (AP) chest X-ray from a CT volume: uint16, ``bits`` bits used.

    HU become linear attenuation, integrated along y (anterior-posterior);
    the detector value is the log-attenuation ``-log(I / I0)``, so bone and
    soft tissue are bright and lungs dark, quantized to ``bits`` bits (12 by
    default, up to 16) with a little quantum noise. Rows are resampled so
    pixels are square at the in-plane spacing dx: the image has shape
    (round(nz * dz / dx), nx), head at the top, patient's right on the left.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or vol.size == 0:
        raise ValueError(f"volume must be a non-empty 3D array (z, y, x); got shape {vol.shape}")
    if not 8 <= int(bits) <= 16:
        raise ValueError(f"bits must be between 8 and 16; got {bits}")
    dz, dy, dx = (float(s) for s in spacing)
    if min(dz, dy, dx) <= 0:
        raise ValueError(f"spacing must be positive; got {spacing}")
    mu = np.maximum(vol.astype(np.float32) * np.float32(MU_WATER_PER_MM / 1000) + np.float32(MU_WATER_PER_MM), 0)
    path = mu.sum(axis=1, dtype=np.float64) * dy  # (z, x), dimensionless line integral

    # Linear interpolation along z onto rows of height dx (ends clamped).
    nz = vol.shape[0]
    rows = max(1, round(nz * dz / dx))
    pos = np.clip((np.arange(rows) + 0.5) * (nz / rows) - 0.5, 0.0, nz - 1.0)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, nz - 1)
    w = (pos - i0)[:, None]
    path = path[i0] * (1.0 - w) + path[i1] * w

    return _detector_image(path, bits, seed)


def window_u8(hu: npt.ArrayLike, center: float = -600.0, width: float = 1500.0) -> npt.NDArray[np.uint8]:
    """CT windowing to 8 bits: [center - width/2, center + width/2] -> [0, 255].

    Rounds to nearest; the default is a lung window. One HU step is
    ``255 / width`` grey levels, so HU thresholds convert the same way.
    """
    if not width > 0:
        raise ValueError(f"width must be > 0; got {width}")
    x = np.asarray(hu, dtype=np.float32)
    scaled = (x - np.float32(center - width / 2)) * np.float32(255.0 / width)
    out: npt.NDArray[np.uint8] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------
# Cohort phantoms (for medfuse.data.synthetic_cohort): the same anatomy as
# ct_phantom (the same helpers, in the same order), but the static part
# (body, spine, lungs, ribs) is built once per shape and cached, vessels are
# thinner, and the nodule is parameterised (size, density, margin, location).
# ---------------------------------------------------------------------------

# Lobe centres as offsets (z, y, x) in mm from the volume centre, and the
# lung each lobe lies in (-1: patient's right, image left; +1: left).
LOBE_OFFSETS_MM: dict[str, tuple[float, float, float]] = {
    "RUL": (-30.0, 0.0, -68.0),
    "RML": (10.0, -25.0, -72.0),
    "RLL": (40.0, 25.0, -66.0),
    "LUL": (-30.0, 0.0, 68.0),
    "LLL": (40.0, 25.0, 70.0),
}


@dataclass(frozen=True)
class _Anatomy:
    volume: npt.NDArray[np.float32]  # HU without vessels, nodule or noise
    lung: npt.NDArray[np.float32]  # lung occupancy in [0, 1]
    spacing: tuple[float, float, float]
    noise: npt.NDArray[np.float32]  # a noise bank larger than the volume


_ANATOMY_CACHE: dict[tuple[int, int, int], _Anatomy] = {}


def _static_anatomy(shape: tuple[int, int, int]) -> _Anatomy:
    """Body, spine, lungs and ribs for ``shape`` (cached; treat as read-only)."""
    cached = _ANATOMY_CACHE.get(shape)
    if cached is not None:
        return cached
    nz, ny, nx = shape
    # ct_phantom's anatomy (the same helpers in the same order), without its
    # nodule, vessels and noise.
    spacing = _spacing_for(shape)
    dz, dy, dx = spacing
    center = _centre_mm(shape, spacing)
    edge = dx
    y2, x2 = _box_coords((slice(0, ny), slice(0, nx)), (dy, dx), center[1:])
    bone_slice, disc_slice, spine_free = _axial_template(y2, x2, edge)
    z_mm = np.arange(nz, dtype=np.float32) * np.float32(dz) - np.float32(center[0])
    vol = np.where(_is_disc(z_mm)[:, None, None], disc_slice[None], bone_slice[None]).astype(np.float32)
    carvers = _mediastinal_carvers(shape, spacing, center, edge)
    _paint_mediastinum(vol, spacing, center, edge, carvers)
    lung = _lung_occupancy(shape, spacing, center, edge, spine_free, carvers)
    _paint(vol, lung, HU_LUNG)
    _paint_ribs(vol, z_mm, y2, x2, edge)
    bank_shape = (nz + 8, ny + 16, nx + 16)
    noise = np.random.default_rng(12345).standard_normal(bank_shape, dtype=np.float32) * np.float32(NOISE_HU)
    vol.setflags(write=False)
    lung.setflags(write=False)
    noise.setflags(write=False)
    anatomy = _Anatomy(vol, lung, spacing, noise)
    _ANATOMY_CACHE[shape] = anatomy
    return anatomy


N_VESSEL_VARIANTS = 8
_VESSEL_CACHE: dict[tuple[tuple[int, int, int], int], npt.NDArray[np.float32]] = {}


def _with_vessels(shape: tuple[int, int, int], variant: int) -> npt.NDArray[np.float32]:
    """The static anatomy plus vessel tree number ``variant`` (cached, read-only).

    Vessels are thinner than ct_phantom's (radius 1.65 mm at the hilum).
    """
    key = (shape, variant)
    cached = _VESSEL_CACHE.get(key)
    if cached is not None:
        return cached
    anatomy = _static_anatomy(shape)
    center = _centre_mm(shape, anatomy.spacing)
    vol = anatomy.volume.copy()
    rng = np.random.default_rng([variant, 424242])
    for side in (-1.0, 1.0):
        tree = [_Segment(seg.start, seg.end, seg.radius * 0.55, seg.hu, seg.generation)
                for seg in _vessel_tree(rng, _hilum(center, side), side)]
        for seg in _bronchi(tree) + tree:
            _paint_segment(vol, anatomy.lung, seg, anatomy.spacing)
    vol.setflags(write=False)
    _VESSEL_CACHE[key] = vol
    return vol


def nodule_ct_phantom(
    shape: tuple[int, int, int] = (48, 128, 128),
    *,
    seed: int = 0,
    diameter_mm: float = 12.0,
    nodule_hu: float = HU_NODULE,
    spiculation: float = 0.0,
    lobulation: float = 0.0,
    lobe: str = "RUL",
    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> CTPhantom:
    """A chest CT (int16 HU) with one parameterised nodule; fast for cohorts.

    Same geometry and axis conventions as :func:`ct_phantom`. ``diameter_mm``
    (> 0) and ``nodule_hu`` set the nodule's size and density (e.g. +30 solid,
    -300 part-solid, -600 ground glass, +300 calcified); ``lobulation`` in
    [0, 1] bulges the surface in a few broad lobes; ``spiculation`` in [0, 1]
    adds thin radial spikes (about a voxel wide, so a small scan sees them
    only partly, like real CT at this resolution). ``lobe`` is one of
    RUL, RML, RLL, LUL, LLL; ``offset_mm`` shifts the nodule from the lobe
    centre. ``seed`` sets the vessel trees, the margin shape and the noise.
    The static anatomy is cached per shape, so calls after the first take
    a few tens of milliseconds at the default shape.
    """
    dims = tuple(int(n) for n in shape)
    if len(dims) != 3 or min(dims) < 8:
        raise ValueError(f"shape must be three integers >= 8 (z, y, x); got {tuple(shape)}")
    if not diameter_mm > 0:
        raise ValueError(f"diameter_mm must be > 0; got {diameter_mm}")
    if lobe not in LOBE_OFFSETS_MM:
        raise ValueError(f"lobe must be one of {', '.join(LOBE_OFFSETS_MM)}; got {lobe!r}")
    shape3: tuple[int, int, int] = (dims[0], dims[1], dims[2])
    anatomy = _static_anatomy(shape3)
    # Separate streams: anatomy and noise do not depend on the nodule's margin.
    rng_anatomy = np.random.default_rng([seed, 0])
    rng = np.random.default_rng([seed, 1])
    spacing = anatomy.spacing
    nz, ny, nx = shape3
    dz, dy, dx = spacing
    center = _centre_mm(shape3, spacing)
    lung = anatomy.lung
    # Vessels: one of N_VESSEL_VARIANTS cached trees (painting a tree costs
    # more than the rest of the case), picked by the seed.
    vol = _with_vessels(shape3, int(rng_anatomy.integers(N_VESSEL_VARIANTS))).copy()
    oz, oy, ox = (int(rng_anatomy.integers(0, b - s + 1)) for b, s in zip(anatomy.noise.shape, shape3))

    # Nodule: radius modulated by low-order lobes and thin spikes.
    lo = LOBE_OFFSETS_MM[lobe]
    c_mm = tuple(c + o + d for c, o, d in zip(center, lo, offset_mm))
    radius = float(diameter_mm) / 2
    _paint_nodule(vol, lung, spacing, c_mm, radius, float(nodule_hu), float(spiculation), float(lobulation), rng)

    # Noise from the cached bank at a random offset.
    vol += anatomy.noise[oz : oz + nz, oy : oy + ny, ox : ox + nx]
    np.rint(vol, out=vol)
    np.clip(vol, -1024, 3071, out=vol)
    nodule_vox = (c_mm[0] / dz, c_mm[1] / dy, c_mm[2] / dx)
    return CTPhantom(vol.astype(np.int16), spacing, nodule_vox, radius)


def _paint_nodule(
    vol: npt.NDArray[np.float32],
    lung: npt.NDArray[np.float32],
    spacing: tuple[float, float, float],
    c_mm: tuple[float, ...],
    radius: float,
    nodule_hu: float,
    spiculation: float,
    lobulation: float,
    rng: np.random.Generator,
) -> None:
    """Paint a nodule (radius modulated by broad lobes and thin spikes) inside the lung."""
    shape3 = vol.shape
    dx = spacing[2]
    reach = radius * (1.0 + 0.35 * float(lobulation)) + 6.0 * float(spiculation) + 1.0
    box = _box_for(c_mm, (reach,) * 3, shape3, spacing)
    if box is not None:
        rel = _box_coords(box, spacing, c_mm)
        r = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)
        unit = [o / np.maximum(r, np.float32(1e-6)) for o in rel]
        bound = np.full(r.shape, np.float32(radius), dtype=np.float32)
        if lobulation > 0:
            for _ in range(4):
                d = rng.normal(size=3)
                d /= np.linalg.norm(d)
                cos = unit[0] * d[0] + unit[1] * d[1] + unit[2] * d[2]
                bound = bound + np.float32(0.25 * radius * lobulation) * np.maximum(cos, 0) ** 4
        if spiculation > 0:
            n_spikes = 6 + int(10 * spiculation)
            for _ in range(n_spikes):
                d = rng.normal(size=3)
                d /= np.linalg.norm(d)
                cos = unit[0] * d[0] + unit[1] * d[1] + unit[2] * d[2]
                length = np.float32(rng.uniform(3.0, 7.0) * spiculation)
                bound = bound + length * np.maximum(cos, 0) ** 60
        frac = _soft(bound - r, dx) * lung[box]
        _paint(vol[box], frac, float(nodule_hu))


# ---------------------------------------------------------------------------
# Disease phantoms (medfuse.data.synthetic_cohort(task="disease")): the
# cohort anatomy plus tuberculosis and fibrosis findings, with their truth.
# ---------------------------------------------------------------------------

HU_FLUID = 10.0  # pleural effusion
HU_CAVITY_WALL = 35.0
HU_CAVITY_AIR = -990.0
HU_CONSOLIDATION = 35.0
HU_GRANULOMA = 800.0
HU_MICRONODULE = 20.0
HU_RETICULAR_LINE = -250.0
HU_HONEYCOMB_AIR = -980.0
HU_HONEYCOMB_WALL = -300.0
HU_DIAPHRAGM = 45.0
#: Zones for fibrosis extent: lung (R = patient's right, x < centre) x third of z (upper, middle, lower).
ZONES = ("RU", "RM", "RL", "LU", "LM", "LL")

_PLEURA_CACHE: dict[tuple[int, int, int], npt.NDArray[np.float32]] = {}
_NOISE_BANKS: dict[tuple[str, tuple[int, int, int]], npt.NDArray[np.float32]] = {}


@dataclass(frozen=True)
class Cavity:
    """A thick-walled cavity: centre in voxel indices (z, y, x), radii in mm."""

    center: tuple[float, float, float]
    outer_radius_mm: float
    inner_radius_mm: float


@dataclass(frozen=True)
class DiseasePhantom:
    """A disease CT (int16 HU) and its lesion truth."""

    volume: npt.NDArray[np.int16]
    spacing: tuple[float, float, float]
    lung: npt.NDArray[np.bool_]  # lung (after volume loss, without effusion)
    nodule_center: tuple[float, float, float] | None  # voxels; None without a nodule
    nodule_radius_mm: float  # 0 without a nodule
    cavities: tuple[Cavity, ...]
    fibrosis_mask: npt.NDArray[np.bool_]  # fibrotic lung voxels
    effusion_mask: npt.NDArray[np.bool_]

    def zone_extent(self) -> dict[str, float]:
        """Fibrotic fraction of the lung in each of ``ZONES`` (0 where a zone has no lung)."""
        return zone_fractions(self.fibrosis_mask, self.lung)

    def cavity_mask(self) -> npt.NDArray[np.bool_]:
        """Voxels inside a cavity's outer wall (label 1 for every cavity)."""
        return cavity_truth_mask(self.volume.shape, self.spacing, self.cavities)


def zone_masks(shape: tuple[int, ...]) -> dict[str, tuple[slice, slice]]:
    """(z slice, x slice) of each zone in ``ZONES`` for a (z, y, x) volume."""
    nz, nx = int(shape[0]), int(shape[2])
    thirds = (slice(0, nz // 3), slice(nz // 3, 2 * nz // 3), slice(2 * nz // 3, nz))
    halves = (slice(0, nx // 2), slice(nx // 2, nx))
    out = {}
    for side, xs in zip("RL", halves):
        for level, zs in zip("UML", thirds):
            out[side + level] = (zs, xs)
    return out


def zone_fractions(mask: npt.NDArray[np.bool_], lung: npt.NDArray[np.bool_]) -> dict[str, float]:
    """Fraction of ``lung`` voxels that are in ``mask``, per zone of :data:`ZONES`."""
    out = {}
    for name, (zs, xs) in zone_masks(lung.shape).items():
        n = int(np.count_nonzero(lung[zs, :, xs]))
        out[name] = float(np.count_nonzero(mask[zs, :, xs] & lung[zs, :, xs]) / n) if n else 0.0
    return out


def cavity_truth_mask(
    shape: tuple[int, ...], spacing: tuple[float, float, float], cavities: tuple[Cavity, ...] | list[Cavity]
) -> npt.NDArray[np.bool_]:
    """Voxels whose centre lies within a cavity's outer radius."""
    mask = np.zeros(tuple(int(n) for n in shape), dtype=bool)
    for cav in cavities:
        c_mm = tuple(c * s for c, s in zip(cav.center, spacing))
        box = _box_for(c_mm, (cav.outer_radius_mm,) * 3, mask.shape, spacing)
        if box is None:
            continue
        rel = _box_coords(box, spacing, c_mm)
        mask[box] |= rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2 <= np.float32(cav.outer_radius_mm**2)
    return mask


def _pleural_depth(shape: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """Distance (mm) from each lung voxel to the nearest non-lung voxel (cached)."""
    cached = _PLEURA_CACHE.get(shape)
    if cached is not None:
        return cached
    from scipy import ndimage

    anatomy = _static_anatomy(shape)
    depth = ndimage.distance_transform_edt(anatomy.lung > 0.5, sampling=anatomy.spacing).astype(np.float32)
    depth.setflags(write=False)
    _PLEURA_CACHE[shape] = depth
    return depth


def _noise_bank(kind: str, shape: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """Unit-sd noise larger than the volume (cached per kind and shape): "texture" is band-pass (features ~2
    voxels, seed 777), "smooth" is low-frequency (features ~10 mm, seed 778)."""
    cached = _NOISE_BANKS.get((kind, shape))
    if cached is not None:
        return cached
    from scipy import ndimage

    bank_shape = (shape[0] + 8, shape[1] + 16, shape[2] + 16)
    white = np.random.default_rng(777 if kind == "texture" else 778).standard_normal(bank_shape, dtype=np.float32)
    if kind == "texture":
        bank = ndimage.gaussian_filter(white, (0.6, 0.9, 0.9)) - ndimage.gaussian_filter(white, (1.5, 2.2, 2.2))
    else:
        bank = ndimage.gaussian_filter(white, (1.5, 2.5, 2.5))
    bank /= np.float32(bank.std())
    bank.setflags(write=False)
    _NOISE_BANKS[(kind, shape)] = bank
    return bank


def _window(bank: npt.NDArray[np.float32], shape: tuple[int, int, int], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    oz, oy, ox = (int(rng.integers(0, b - s + 1)) for b, s in zip(bank.shape, shape))
    return bank[oz : oz + shape[0], oy : oy + shape[1], ox : ox + shape[2]]


def _sphere(
    vol: npt.NDArray[np.float32],
    weight: npt.NDArray[np.float32] | None,
    spacing: tuple[float, float, float],
    c_mm: tuple[float, ...],
    radius: float,
    hu: float,
) -> None:
    found = _ellipsoid(vol.shape, spacing, c_mm, (radius,) * 3, spacing[2])  # type: ignore[arg-type]
    if found is None:
        return
    box, frac = found
    if weight is not None:
        frac = frac * weight[box]
    _paint(vol[box], frac, hu)


def disease_ct_phantom(
    shape: tuple[int, int, int] = (48, 128, 128),
    *,
    seed: int = 0,
    nodule: dict[str, Any] | None = None,
    n_cavities: int = 0,
    tree_in_bud: bool = False,
    consolidation: bool = False,
    n_granulomas: int = 0,
    effusion: bool = False,
    fibrosis: float = 0.0,
    honeycombing: bool = False,
    traction_bronchiectasis: bool = False,
    volume_loss: float = 0.0,
) -> DiseasePhantom:
    """A chest CT with the findings of the disease model, and their truth.

    Same anatomy, geometry and axes as :func:`nodule_ct_phantom` (the cohort
    anatomy, one of its vessel trees, its noise), with a more realistic
    parenchyma: denser towards the back (up to +30 HU, gravity in a supine
    scan) and a slowly varying texture (about +-10 HU). Findings, painted
    in HU:

    - ``nodule``: None or the keyword arguments of the nodule of
      :func:`nodule_ct_phantom` (``diameter_mm``, ``nodule_hu``,
      ``spiculation``, ``lobulation``, ``lobe``, ``offset_mm``).
    - ``n_cavities`` (0-6): thick-walled cavities in the upper lobes (outer
      radius 9-14 mm, wall 3.5-5 mm of +35 HU, air of -990 HU inside).
    - ``tree_in_bud``: two clusters of 2-3.6 mm centrilobular micronodules in
      the upper-lobe periphery. ``consolidation``: a lobulated +35 HU
      opacity of 10-18 mm semi-axes (three lobes) in an upper lobe. ``n_granulomas``:
      calcified (+800 HU) 5-7 mm nodules.
    - ``effusion``: dependent fluid (+10 HU), posterior and basal, one or
      both sides, 12-35 mm deep at the bottom slice.
    - ``fibrosis`` in [0, 1]: the fraction of the lower third's lung that is
      fibrotic, as a region growing from the basal subpleural lung upwards
      and inwards; reticulation (a network of -250 HU lines) inside it,
      ``honeycombing`` (clustered air cysts with walls) in its outer half,
      ``traction_bronchiectasis`` (dilated air-filled airways) in it.
    - ``volume_loss`` in [0, 0.5): the diaphragm rises; that fraction of the
      volume's height (times 1.5, domed) at the bases becomes soft tissue.

    ``seed`` sets the vessel tree, the lesions' positions and the noise.
    """
    dims = tuple(int(n) for n in shape)
    if len(dims) != 3 or min(dims) < 8:
        raise ValueError(f"shape must be three integers >= 8 (z, y, x); got {tuple(shape)}")
    if not 0 <= int(n_cavities) <= 6:
        raise ValueError(f"n_cavities must be between 0 and 6; got {n_cavities}")
    if not 0 <= int(n_granulomas) <= 10:
        raise ValueError(f"n_granulomas must be between 0 and 10; got {n_granulomas}")
    if not 0.0 <= float(fibrosis) <= 1.0:
        raise ValueError(f"fibrosis must be in [0, 1]; got {fibrosis}")
    if not 0.0 <= float(volume_loss) < 0.5:
        raise ValueError(f"volume_loss must be in [0, 0.5); got {volume_loss}")
    shape3: tuple[int, int, int] = (dims[0], dims[1], dims[2])
    anatomy = _static_anatomy(shape3)
    rng_anatomy = np.random.default_rng([seed, 0])
    rng = np.random.default_rng([seed, 21])
    spacing = anatomy.spacing
    nz, ny, nx = shape3
    dz, dy, dx = spacing
    center = _centre_mm(shape3, spacing)
    vol = _with_vessels(shape3, int(rng_anatomy.integers(N_VESSEL_VARIANTS))).copy()
    oz, oy, ox = (int(rng_anatomy.integers(0, b - s + 1)) for b, s in zip(anatomy.noise.shape, shape3))
    lung = anatomy.lung.copy()
    z_mm = (np.arange(nz, dtype=np.float32) * np.float32(dz))[:, None, None]
    y_mm = (np.arange(ny, dtype=np.float32) * np.float32(dy))[None, :, None]
    x_mm = (np.arange(nx, dtype=np.float32) * np.float32(dx))[None, None, :]

    # Parenchyma: gravity-dependent density (posterior lung up to +30 HU, as
    # in a supine scan) and a slowly varying texture (about +-10 HU).
    soft_bank = _noise_bank("smooth", shape3)
    posterior = np.clip((y_mm - np.float32(center[1] - 60.0)) / np.float32(150.0), 0.0, 1.0) ** 2
    vol += lung * (np.float32(30.0) * posterior + np.float32(10.0) * _window(soft_bank, shape3, rng))

    # Volume loss: a domed diaphragm rises into the bases.
    if volume_loss > 0:
        lung_x = np.minimum(np.abs(x_mm - np.float32(center[2] - LUNG_CENTRE_MM[2])), np.abs(x_mm - np.float32(center[2] + LUNG_CENTRE_MM[2])))
        cut = np.float32(nz * dz * (1.0 - 1.5 * float(volume_loss))) + np.float32(18.0) * (lung_x / np.float32(52.0)) ** 2
        below = _soft(z_mm - cut, dz) * lung
        _paint(vol, below, HU_DIAPHRAGM)
        lung -= below

    # Fibrosis: a basal subpleural region holding exactly `fibrosis` of the lower third's lung.
    fib_mask = np.zeros(shape3, dtype=bool)
    if fibrosis > 0:
        depth = _pleural_depth(shape3)
        bank = _noise_bank("texture", shape3)
        wobble = _window(bank, shape3, rng)
        score = depth / np.float32(12.0) + (np.float32(nz * dz) - z_mm) / np.float32(45.0) + np.float32(0.15) * wobble
        inside = lung > 0.5
        lower = inside.copy()
        lower[: 2 * nz // 3] = False
        vals = score[lower]
        if vals.size:
            thr = np.float32(np.quantile(vals, float(fibrosis)))
            fib_mask = inside & (score <= thr)
            tex = _window(bank, shape3, rng)
            lines = np.exp(-((tex / np.float32(0.45)) ** 2))  # a network along the zero crossings
            fib_hu = np.float32(HU_LUNG + 30.0) + (np.float32(HU_RETICULAR_LINE - HU_LUNG)) * lines
            if honeycombing:
                cyst_tex = _window(bank, shape3, rng)
                outer = fib_mask & (score <= np.float32(0.5) * thr + np.float32(0.5) * score[fib_mask].min())
                cyst = cyst_tex > np.float32(0.9)
                wall = np.abs(cyst_tex - np.float32(0.9)) < np.float32(0.2)
                fib_hu = np.where(outer & cyst, np.float32(HU_HONEYCOMB_AIR), fib_hu)
                fib_hu = np.where(outer & wall, np.float32(HU_HONEYCOMB_WALL), fib_hu)
            w = (fib_mask * lung).astype(np.float32)
            vol += w * (fib_hu - vol)
            if traction_bronchiectasis:
                zz, yy, xx = np.nonzero(fib_mask)
                for _ in range(3):
                    k = int(rng.integers(zz.size))
                    start = np.array([zz[k] * dz, yy[k] * dy, xx[k] * dx])
                    d = rng.normal(size=3)
                    d[0] = -abs(d[0]) - 0.5  # towards the hilum (up)
                    end = start + d / np.linalg.norm(d) * rng.uniform(12.0, 20.0)
                    _paint_segment(vol, lung, _Segment(start, end, 2.6, HU_HONEYCOMB_WALL), spacing)
                    _paint_segment(vol, lung, _Segment(start, end, 1.6, HU_HONEYCOMB_AIR), spacing)

    def upper_lobe_point(spread: float) -> tuple[float, float, float]:
        lo = LOBE_OFFSETS_MM["RUL" if rng.random() < 0.55 else "LUL"]
        off = rng.uniform(-spread, spread, 3)
        return (center[0] + lo[0] + off[0] - 8.0, center[1] + lo[1] + off[1] + 10.0, center[2] + lo[2] + off[2])

    # Consolidation: a lobulated opacity in an upper lobe.
    if consolidation:
        c = upper_lobe_point(6.0)
        for _ in range(3):
            cc = tuple(v + o for v, o in zip(c, rng.uniform(-8.0, 8.0, 3)))
            axes = tuple(float(a) for a in rng.uniform(10.0, 18.0, 3))
            found = _ellipsoid(shape3, spacing, cc, axes, dx)  # type: ignore[arg-type]
            if found is not None:
                box, frac = found
                _paint(vol[box], frac * lung[box], HU_CONSOLIDATION + float(rng.normal(0, 10)))

    # Tree-in-bud: clusters of micronodules in the upper-lobe periphery.
    if tree_in_bud:
        for _ in range(2):
            c = upper_lobe_point(10.0)
            for _ in range(12):
                p = tuple(v + o for v, o in zip(c, rng.normal(0.0, 7.0, 3)))
                _sphere(vol, lung, spacing, p, float(rng.uniform(1.0, 1.8)), HU_MICRONODULE)

    # Calcified granulomas anywhere in the lungs (upper zones favoured).
    for _ in range(int(n_granulomas)):
        lobe = LOBES_ORDER[int(rng.choice(5, p=[0.3, 0.1, 0.15, 0.3, 0.15]))]
        lo = LOBE_OFFSETS_MM[lobe]
        p = tuple(c + o + e for c, o, e in zip(center, lo, rng.uniform(-12.0, 12.0, 3)))
        _sphere(vol, lung, spacing, p, float(rng.uniform(2.5, 3.5)), HU_GRANULOMA)

    # Cavities: thick walls, air inside, upper lobes, apart from each other.
    cavities: list[Cavity] = []
    tries = 0
    while len(cavities) < int(n_cavities) and tries < 200:
        tries += 1
        c = upper_lobe_point(12.0)
        outer = float(rng.uniform(9.0, 14.0))
        inner = outer - float(rng.uniform(3.5, 5.0))
        cv = (c[0] / dz, c[1] / dy, c[2] / dx)
        iz, iy, ix = (round(v) for v in cv)
        if not (0 <= iz < nz and 0 <= iy < ny and 0 <= ix < nx) or anatomy.lung[iz, iy, ix] < 1.0:
            continue
        if _pleural_depth(shape3)[iz, iy, ix] < outer + 1.0:
            continue
        if any(np.linalg.norm(np.subtract(cv, o.center) * spacing) < outer + o.outer_radius_mm + 4.0 for o in cavities):
            continue
        _sphere(vol, None, spacing, c, outer, HU_CAVITY_WALL)
        _sphere(vol, None, spacing, c, inner, HU_CAVITY_AIR)
        cavities.append(Cavity(cv, outer, inner))

    # Nodule (as in nodule_ct_phantom).
    nodule_center = None
    nodule_radius = 0.0
    if nodule is not None:
        nod = dict(nodule)
        lo = LOBE_OFFSETS_MM[str(nod.get("lobe", "RUL"))]
        off = nod.get("offset_mm", (0.0, 0.0, 0.0))
        c_mm = tuple(c + o + d for c, o, d in zip(center, lo, off))
        nodule_radius = float(nod.get("diameter_mm", 12.0)) / 2
        _paint_nodule(vol, lung, spacing, c_mm, nodule_radius, float(nod.get("nodule_hu", HU_NODULE)),
                      float(nod.get("spiculation", 0.0)), float(nod.get("lobulation", 0.0)),
                      np.random.default_rng([seed, 1]))
        nodule_center = (c_mm[0] / dz, c_mm[1] / dy, c_mm[2] / dx)

    # Effusion: dependent fluid, posterior and basal.
    eff = np.zeros(shape3, dtype=bool)
    if effusion:
        sides = [(-1.0,), (1.0,), (-1.0, 1.0)][int(rng.integers(3))]
        for side in sides:
            thick = float(rng.uniform(12.0, 35.0))
            top = np.float32(nz * dz * 0.35)
            rise = np.clip((z_mm - top) / (np.float32(nz * dz) - top), 0.0, 1.0) * np.float32(thick)
            back = np.float32(center[1] + 8.0 + 78.0)  # the lungs' posterior edge
            on_side = (x_mm - np.float32(center[2])) * np.float32(side) > 0
            frac = _soft(y_mm - (back - rise), dy) * on_side * lung
            frac *= (rise > 0)
            _paint(vol, frac.astype(np.float32), HU_FLUID)
            eff |= frac > 0.5
            lung -= frac
    vol += anatomy.noise[oz : oz + nz, oy : oy + ny, ox : ox + nx]
    np.rint(vol, out=vol)
    np.clip(vol, -1024, 3071, out=vol)
    lung_truth = lung > 0.5
    return DiseasePhantom(
        vol.astype(np.int16), spacing, lung_truth, nodule_center, nodule_radius, tuple(cavities),
        fib_mask & lung_truth, eff,
    )


LOBES_ORDER = tuple(LOBE_OFFSETS_MM)
