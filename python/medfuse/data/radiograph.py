"""A PA chest radiograph of a synthetic patient, at a detector's size and geometry.

:func:`pa_radiograph` turns a cohort phantom (a volume of
:func:`medfuse.data.phantoms.nodule_ct_phantom` or
:func:`~medfuse.data.phantoms.disease_ct_phantom`) into the frontal chest
film of the same patient: 616 x 512 pixels of 0.7 mm (431 x 358 mm, a
portrait 43 x 35 cm cassette), head at the top, the patient's right on the
image's left, bright where the body attenuates (log attenuation, 12 bits).

Two parts, added as line integrals of the linear attenuation (HU become
mu = mu_water (1 + HU / 1000), mu_water = 0.019 / mm at ~70 keV):

1. **The whole chest, analytically** (the same for every patient, computed
   once per process): the body (fat rim and soft tissue), both lungs with
   their apices and the diaphragm's domes (the right higher, costophrenic
   angles at the lateral ends, a deeper posterior recess), the heart, the
   great vessels (hila, aortic knob, superior vena cava, ascending aorta,
   pulmonary trunk, descending aorta) carving the lungs' medial edges, the
   anterior mediastinal fat around them, the trachea and the main bronchi
   (air), the vertebral column (bodies, discs, arches), the ribs (the CT
   phantom's rib model, integrated through its shell) and the clavicles,
   and a gastric air bubble under the left dome. Every shape the CT phantom
   draws is drawn from the same constants (``medfuse.data.phantoms``): the
   lungs (ellipsoids above the equator, their widest section below, down to
   the domes), the heart, the great vessels, the fat, the airways, the spine
   and the ribs; the CT is the middle 160 mm of the chest, so the apices,
   the lower domes, the clavicles and the abdomen below it exist in the
   radiograph only. Ellipsoids, cylinders, tubes and the domes have
   closed-form chords along the beam (where several carve a lung, the union
   of their intervals is removed); the ribs are summed over a fine axial
   grid of their shell.
2. **The patient**: the CT volume minus its shape's static anatomy (what the
   cohort adds per patient: the vessel tree, the nodule, cavities,
   consolidation, granulomas, effusion, fibrosis, volume loss, parenchymal
   density, and the CT's noise), projected along the beam and resampled
   (linear) onto the detector over the CT's 160 mm. Above and below the
   CT's field of view the lung content continues as a low-pass copy of the
   CT's edge slices, fading out over 20 mm (apex) and 60 mm (bases, down to
   the costophrenic angles) inside the lungs, so an effusion or basal
   fibrosis reaches the diaphragm instead of stopping at a seam.

Parallel beam (a 1.8 m source makes the heart ~10 % larger on a PA film;
neglected). Quantum noise (Poisson, as Gaussian on the log signal, 10^6
photons per pixel unattenuated) is drawn from ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import phantoms as ph

__all__ = ["DETECTOR_SHAPE", "PIXEL_MM", "SLAB_TOP_MM", "pa_radiograph", "slab_rows"]

DETECTOR_SHAPE = (616, 512)  # rows (head to feet), columns (patient's right to left)
# The detector's width is the CT's in-plane field of view: 512 columns of 0.7 mm.
PIXEL_MM = ph.FOV_YX_MM / DETECTOR_SHAPE[1]
SLAB_TOP_MM = 70.0  # where the CT's first slice edge lands, from the detector's top edge
_MU = ph.MU_WATER_PER_MM / 1000.0  # per mm per HU

# Anatomy in mm relative to the CT volume's centre: Z caudal, Y posterior, X towards the patient's left.
# Where the CT sees it, it is the CT phantom's (medfuse.data.phantoms' constants); the rest exists here only.
_FAT_CUTS = ("heart", *ph.GREAT_VESSELS_MM)  # soft tissue inside the mediastinal fat's outline


@dataclass(frozen=True)
class _Grid:
    z: npt.NDArray[np.float64]  # (rows, 1) mm relative to the CT centre
    x: npt.NDArray[np.float64]  # (1, cols)


def _grid(shape: tuple[int, int], fov_z_mm: float) -> _Grid:
    rows, cols = shape
    d = (np.arange(rows, dtype=np.float64) + 0.5) * PIXEL_MM  # from the detector's top edge
    z = d - SLAB_TOP_MM - fov_z_mm / 2.0
    x = (np.arange(cols, dtype=np.float64) + 0.5) * PIXEL_MM - cols * PIXEL_MM / 2.0
    return _Grid(z[:, None], x[None, :])


def _ellipsoid_interval(
    g: _Grid, centre: tuple[float, float, float], semi: tuple[float, float, float]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Where each ray (along Y) enters and leaves an axis-aligned ellipsoid: (y0, y1), y0 = y1 when it misses."""
    (cz, cy, cx), (az, ay, ax) = centre, semi
    q = 1.0 - ((g.z - cz) / az) ** 2 - ((g.x - cx) / ax) ** 2
    h = ay * np.sqrt(np.clip(q, 0.0, None))
    return cy - h, cy + h


def _ellipse_chord(x: npt.NDArray[np.float64], cx: float, ax: float, ay: float) -> npt.NDArray[np.float64]:
    """Chord along Y of an elliptic cylinder (axis along Z) at lateral positions x."""
    out: npt.NDArray[np.float64] = 2.0 * ay * np.sqrt(np.clip(1.0 - ((x - cx) / ax) ** 2, 0.0, None))
    return out


def _tube_chord(g: _Grid, a: tuple[float, float, float], b: tuple[float, float, float], r: float) -> npt.NDArray[np.float64]:
    """Chord along Y through a capsule of radius r around segment a-b (Z, Y, X mm).

    A ray along Y meets the axis line at the distance between the ray and the
    segment's projection on the detector plane; the chord of a cylinder is
    2 sqrt(r^2 - d^2) / sin(angle to the beam), capped at the capsule's length.
    """
    az, _ay, ax = a
    bz, _by, bx = b
    length = math.dist(a, b)
    dz, dx = bz - az, bx - ax
    proj = math.hypot(dz, dx)
    sin = max(proj / max(length, 1e-9), 1e-3)
    if proj < 1e-9:
        t = np.zeros(np.broadcast_shapes(g.z.shape, g.x.shape))
    else:
        t = np.clip(((g.z - az) * dz + (g.x - ax) * dx) / proj**2, 0.0, 1.0)
    d2 = (g.z - az - t * dz) ** 2 + (g.x - ax - t * dx) ** 2
    chord: npt.NDArray[np.float64] = np.minimum(2.0 * np.sqrt(np.clip(r * r - d2, 0.0, None)) / sin, length + 2 * r)
    return chord


def _covered(
    base: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    cuts: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
) -> npt.NDArray[np.float64]:
    """Length of ``base`` (an interval along each ray, (y0, y1)) covered by the union of the ``cuts`` intervals."""
    b0, b1 = np.broadcast_arrays(*base)
    los = np.stack([np.clip(c[0], b0, b1) for c in cuts])  # b0 has the rays' full shape: so has every clip
    his = np.maximum(np.stack([np.clip(c[1], b0, b1) for c in cuts]), los)
    order = np.argsort(los, axis=0, kind="stable")
    los = np.take_along_axis(los, order, axis=0)
    his = np.take_along_axis(his, order, axis=0)
    reach = b0.copy()
    total = np.zeros(b0.shape)
    for lo, hi in zip(los, his):
        total += np.clip(hi - np.maximum(lo, reach), 0.0, None)
        np.maximum(reach, hi, out=reach)
    return total


def _ellipsoid_cuts(g: _Grid, names: tuple[str, ...]) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    return [_ellipsoid_interval(g, *ph.CARVING_ELLIPSOIDS_MM[n]) for n in names]


def _aorta_cut(g: _Grid) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    (ay, ax), r, top = ph.AORTA_DESC_MM
    hh = r * np.sqrt(np.clip(1.0 - ((g.x - ax) / r) ** 2, 0.0, None)) * (g.z > top)
    return ay - hh, ay + hh


def _dome_cut(g: _Grid) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Where each ray runs below the diaphragm: phantoms.dome_z(y, x) = dome_z(DOME_Y_MM, x) + drop back w^2 with
    w = (y - DOME_Y_MM) / lung semi-axis y, so z > dome_z holds for |w| < sqrt(s), s = (z - dome_z(DOME_Y_MM, x)) / (drop back)."""
    s = (g.z - ph.dome_z(np.float64(ph.DOME_Y_MM), g.x)) / (ph.DOME_DROP_MM * ph.DOME_BACK)
    half = ph.LUNG_SEMI_MM[1] * np.sqrt(np.clip(s, 0.0, None))
    return ph.DOME_Y_MM - half, ph.DOME_Y_MM + half


def _lung_chord(g: _Grid, side: float) -> npt.NDArray[np.float64]:
    """Air-filled lung length along each ray for one lung, as the CT phantom draws it: its ellipsoid above the
    equator and its widest section below, down to the dome, minus the heart, great vessels, descending aorta
    and stomach that displace it (the union of those intervals along the ray)."""
    (cz, cy, cx), (az, ay, ax) = ph.LUNG_CENTRE_MM, ph.LUNG_SEMI_MM
    zz = np.minimum(g.z, cz)  # below the equator: the widest section, down to the dome
    q = 1.0 - ((zz - cz) / az) ** 2 - ((g.x - side * cx) / ax) ** 2
    h = ay * np.sqrt(np.clip(q, 0.0, None))
    lung = (cy - h, cy + h)
    cuts = _ellipsoid_cuts(g, tuple(ph.CARVING_ELLIPSOIDS_MM)) + [_aorta_cut(g), _dome_cut(g)]
    out: npt.NDArray[np.float64] = (lung[1] - lung[0]) - _covered(lung, cuts)
    return out


def _fat_chord(g: _Grid) -> npt.NDArray[np.float64]:
    """Mediastinal fat along each ray: its ellipsoid minus the heart and great vessels inside it."""
    fat = _ellipsoid_interval(g, *ph.MEDIASTINAL_FAT_MM)
    out: npt.NDArray[np.float64] = (fat[1] - fat[0]) - _covered(fat, _ellipsoid_cuts(g, _FAT_CUTS))
    return out


def _rib_projection(g: _Grid) -> npt.NDArray[np.float64]:
    """Rib length along each ray (mm), averaged over each column's width: the CT phantom's ribs (bands in a shell
    inside the chest wall, descending anteriorly, none in front), summed along the beam in 0.5 mm steps at two
    lateral positions per column."""
    step = 0.5  # along the beam (mm)
    n_sub = 2  # lateral samples per column
    centres = g.x[0]
    cols = len(centres)
    y_reach = 1.05 * ph.RIB_WALL_MM[0]
    ys = np.arange(ph.BODY_Y_MM - y_reach, ph.BODY_Y_MM + y_reach, step)
    sub = (np.arange(n_sub) + 0.5) / n_sub * PIXEL_MM - PIXEL_MM / 2
    xs = (centres[:, None] + sub[None, :]).ravel()
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    from_back, radial, shell = ph._rib_shell(yy, xx)
    half_height, half_depth, period = ph.RIB_HALF_HEIGHT_MM, ph.RIB_HALF_DEPTH_MM, ph.RIB_PERIOD_MM
    keep = shell & (np.abs(radial) < half_depth)
    col_of = np.broadcast_to((np.arange(cols)[:, None] * np.ones(n_sub, np.intp)).ravel()[None, :], keep.shape)
    fb, rad, col = from_back[keep], radial[keep], col_of[keep]
    order = np.argsort(col, kind="stable")
    fb, rad, col = fb[order], rad[order], col[order]
    starts = np.searchsorted(col, np.arange(cols))
    weight = step / n_sub  # mm along the beam per point, averaged over the column's lateral samples
    depth_room = np.sqrt(np.clip(1.0 - (rad / half_depth) ** 2, 0.0, None))  # band half-height allowed at this depth
    # The ribs depend on Z only through (Z - slope from_back) mod period: the projection is periodic in Z, so it is
    # computed over one period (0.2 mm steps) and looked up for every row.
    zp = np.arange(0.0, period, 0.2)
    one = np.zeros((len(zp), cols))
    empty = np.diff(np.append(starts, len(fb))) == 0
    for i0 in range(0, len(zp), 32):
        z = zp[i0 : i0 + 32, None]
        band = ph._rib_band(z, fb[None, :])
        occ = np.clip((depth_room[None, :] - band) * half_height / 1.0 + 0.5, 0.0, 1.0)  # 1 mm partial-volume edge
        if len(fb):
            summed = np.add.reduceat(occ, np.minimum(starts, len(fb) - 1), axis=1)
            summed[:, empty] = 0.0
            one[i0 : i0 + 32] = summed * weight
    k = np.mod(g.z[:, 0], period) / 0.2
    k0 = np.floor(k).astype(np.intp) % len(zp)
    k1 = (k0 + 1) % len(zp)
    w = (k - np.floor(k))[:, None]
    out: npt.NDArray[np.float64] = one[k0] * (1.0 - w) + one[k1] * w
    # the cage: the first ribs at the apices, the last ones below the domes
    cage = np.clip((g.z[:, 0] + 118.0) / 6.0, 0.0, 1.0) * np.clip((175.0 - g.z[:, 0]) / 20.0, 0.0, 1.0)
    out = out * cage[:, None]
    return out


_BACKGROUND: dict[float, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}


def _background(fov_z_mm: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(line integral of mu of the static chest, lung length along each ray) on the detector, cached per CT height."""
    cached = _BACKGROUND.get(fov_z_mm)
    if cached is not None:
        return cached
    g = _grid(DETECTOR_SHAPE, fov_z_mm)
    hu_air, hu_fat, hu_soft = ph.HU_AIR, ph.HU_FAT, ph.HU_SOFT
    # body: fat rim and soft tissue (elliptic cylinders)
    (body_y, body_x), rim = ph.BODY_SEMI_MM, ph.FAT_RIM_MM
    path = _ellipse_chord(g.x, 0.0, body_x, body_y) * (1000.0 + hu_fat) * _MU
    path = path + _ellipse_chord(g.x, 0.0, body_x - rim, body_y - rim) * (hu_soft - hu_fat) * _MU
    path = np.broadcast_to(path, np.broadcast_shapes(g.z.shape, g.x.shape)).copy()
    # lungs
    lungs = _lung_chord(g, -1.0) + _lung_chord(g, 1.0)
    path += lungs * (ph.HU_LUNG - hu_soft) * _MU
    # anterior mediastinal fat around the great vessels
    path += _fat_chord(g) * (hu_fat - hu_soft) * _MU
    # trachea and main bronchi (air in the mediastinum; their walls are soft tissue like the surroundings)
    airway = sum(_tube_chord(g, a, b, r) for a, b, r in (ph.TRACHEA_MM, *ph.MAIN_BRONCHI_MM))
    path += airway * (hu_air - hu_soft) * _MU
    # stomach bubble
    y0, y1 = _ellipsoid_interval(g, *ph.STOMACH_MM)
    path += (y1 - y0) * (hu_air - hu_soft) * _MU
    # vertebral column: bodies (cortex + trabecular) or discs, and the neural arch
    vb, cortex = ph.VERTEBRA_SEMI_MM, ph.CORTEX_MM  # (Y, X); along the beam only X matters
    body = _ellipse_chord(g.x, 0.0, vb[1], vb[0])
    inner = _ellipse_chord(g.x, 0.0, vb[1] - cortex, vb[0] - cortex)
    bone = (body - inner) * (ph.HU_CORTEX - hu_soft) + inner * (ph.HU_VERTEBRA - hu_soft)
    path += np.where(ph._is_disc(g.z), body * (ph.HU_DISC - hu_soft), bone) * _MU
    (arch_y, arch_x), (canal_y, canal_x) = ph.ARCH_SEMI_MM, ph.CANAL_SEMI_MM
    arch = _ellipse_chord(g.x, 0.0, arch_x, arch_y) - _ellipse_chord(g.x, 0.0, canal_x, canal_y)
    path += arch * (ph.HU_CORTEX - hu_soft) * _MU
    # ribs and clavicles
    path += _rib_projection(g) * (ph.HU_RIB - hu_soft) * _MU
    for side in (-1.0, 1.0):
        clav = _tube_chord(g, (-96.0, -95.0, side * 18.0), (-104.0, -92.0, side * 70.0), 6.5)
        clav += _tube_chord(g, (-104.0, -92.0, side * 70.0), (-122.0, -55.0, side * 138.0), 6.0)
        path += clav * (ph.HU_RIB - hu_soft) * _MU
    path.setflags(write=False)
    lungs.setflags(write=False)
    _BACKGROUND[fov_z_mm] = (path, lungs)
    return path, lungs


def slab_rows(shape: tuple[int, int, int]) -> tuple[float, float]:
    """Detector rows (fractional, top edge of row 0 = 0) where the first and last slice edges of a CT of ``shape`` land.

    The CT's slices span its 160 mm field of view whatever their number; row k covers
    [k, k + 1) in these units, so slice i's centre is at ``top + (i + 0.5) (bottom - top) / nz``.
    """
    dims = tuple(int(n) for n in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"shape must be three positive integers (z, y, x); got {tuple(shape)}")
    nz = dims[0]
    dz = ph._spacing_for((dims[0], dims[1], dims[2]))[0]
    top = SLAB_TOP_MM / PIXEL_MM
    return top, top + nz * dz / PIXEL_MM


def _lowpass_x(row: npt.NDArray[np.float64], sigma_px: float) -> npt.NDArray[np.float64]:
    from scipy import ndimage

    out: npt.NDArray[np.float64] = ndimage.gaussian_filter1d(row, sigma_px, mode="nearest")
    return out


def pa_radiograph(volume: npt.ArrayLike, *, bits: int = 12, seed: int = 0) -> npt.NDArray[np.uint16]:
    """The PA chest radiograph (uint16, ``bits`` bits used, 616 x 512 at 0.7 mm) of a cohort phantom.

    ``volume``: the int16 HU volume of :func:`~medfuse.data.phantoms.nodule_ct_phantom` or
    :func:`~medfuse.data.phantoms.disease_ct_phantom` (any shape they accept; the spacing follows from
    it). Anything else is refused: the radiograph adds the volume's difference from the phantom's static
    anatomy, which only a phantom has. See the module documentation for the model.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or min(vol.shape) < 8:
        raise ValueError(f"volume must be a cohort phantom's 3D array (z, y, x), each side >= 8; got shape {vol.shape}")
    if vol.dtype.kind not in "iuf":
        raise TypeError(f"volume must hold HU numbers; got dtype {vol.dtype}")
    if not 8 <= int(bits) <= 16:
        raise ValueError(f"bits must be between 8 and 16; got {bits}")
    shape3 = (int(vol.shape[0]), int(vol.shape[1]), int(vol.shape[2]))
    anatomy = ph._static_anatomy(shape3)
    dz, dy, dx = anatomy.spacing
    residual = vol.astype(np.float32) - anatomy.volume
    # a phantom differs from its static anatomy inside the lungs only (plus noise): refuse anything else
    outside = anatomy.lung < 0.01
    stray = float(np.abs(residual[outside]).mean()) if outside.any() else 0.0
    if stray > 3.0 * ph.NOISE_HU:
        raise ValueError(
            f"volume does not look like a medfuse cohort phantom of shape {shape3} (mean |difference| from its "
            f"static anatomy outside the lungs is {stray:.0f} HU); pa_radiograph needs nodule_ct_phantom or "
            "disease_ct_phantom volumes (use phantoms.xray_from_ct for other volumes)"
        )
    proj = residual.sum(axis=1, dtype=np.float64) * dy * _MU  # (nz, nx)

    rows, cols = DETECTOR_SHAPE
    fov_z = shape3[0] * dz
    path, lungs = _background(fov_z)
    # columns: the CT's field of view is the detector's width
    xi = np.clip((np.arange(cols) + 0.5) * PIXEL_MM / dx - 0.5, 0.0, shape3[2] - 1.0)
    i0 = np.floor(xi).astype(np.intp)
    i1 = np.minimum(i0 + 1, shape3[2] - 1)
    wx = xi - i0
    pc = proj[:, i0] * (1.0 - wx) + proj[:, i1] * wx  # (nz, cols)
    # rows inside the CT's slab: linear in z; outside: low-pass of the edge slices, fading, inside the lungs
    d = (np.arange(rows) + 0.5) * PIXEL_MM
    zi = (d - SLAB_TOP_MM) / dz - 0.5
    inside = (zi >= -0.5) & (zi <= shape3[0] - 0.5)
    zc = np.clip(zi, 0.0, shape3[0] - 1.0)
    k0 = np.floor(zc).astype(np.intp)
    k1 = np.minimum(k0 + 1, shape3[0] - 1)
    wz = (zc - k0)[:, None]
    patient = np.where(inside[:, None], pc[k0] * (1.0 - wz) + pc[k1] * wz, 0.0)
    sigma = 6.0 / PIXEL_MM
    top_edge = _lowpass_x(pc[: min(2, shape3[0])].mean(axis=0), sigma)
    bottom_edge = _lowpass_x(pc[-min(2, shape3[0]) :].mean(axis=0), sigma)
    above = d < SLAB_TOP_MM
    below = d > SLAB_TOP_MM + fov_z
    fade_top = np.clip(1.0 - (SLAB_TOP_MM - d) / 20.0, 0.0, 1.0)
    fade_bottom = np.clip(1.0 - (d - SLAB_TOP_MM - fov_z) / 60.0, 0.0, 1.0)
    in_lung = np.clip(lungs / 10.0, 0.0, 1.0)
    patient += (above * fade_top)[:, None] * top_edge[None, :] * in_lung
    patient += (below * fade_bottom)[:, None] * bottom_edge[None, :] * in_lung
    return ph._detector_image(path + patient, bits, seed)
