"""Deterministic synthetic images and volumes for the medfuse tests.

Plain NumPy/SciPy functions (no pytest), so hypothesis strategies, fixtures
and the subprocess scripts of test_dispatch.py can all use them. Every
generator takes a shape (2D or 3D), a dtype and a ``numpy.random.Generator``.

Families:
  natural   smoothed noise plus filled shapes and a linear gradient (photo-like)
  ct        synthetic CT: air, body ellipse ~0 HU, lungs ~-850 HU, ribs
            ~+700 HU, a solid nodule, 15 HU noise (values in HU for int16 and
            float; windowed into the dtype's range otherwise)
  noise     uniform noise over the dtype's range (floats: [0, 255))
  constant  one value everywhere
  blocks    binary blocks of two levels (0 and the dtype's "white")
  extremes  blocks of the dtype's extreme values (min, max, 0, and for
            floats the largest finite values and subnormals)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy import ndimage

DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)
INT_DTYPES = (np.uint8, np.uint16, np.int16)
FLOAT_DTYPES = (np.float32, np.float64)

# White level of each dtype for families defined on [0, 1].
_WHITE = {
    np.dtype(np.uint8): 255.0,
    np.dtype(np.uint16): 65535.0,
    np.dtype(np.int16): 4095.0,  # 12-bit CT range, offset below
    np.dtype(np.float32): 255.0,
    np.dtype(np.float64): 255.0,
}
_OFFSET = {np.dtype(np.int16): -1024.0}

Shape = tuple[int, ...]


def from_unit(f: npt.NDArray[np.float64], dtype: npt.DTypeLike) -> npt.NDArray:
    """Map intensities in [0, 1] to ``dtype``: rounded for integers, as is for floats."""
    dt = np.dtype(dtype)
    v = f * _WHITE[dt] + _OFFSET.get(dt, 0.0)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.clip(np.rint(v), info.min, info.max).astype(dt)
    return v.astype(dt)


def _grid(shape: Shape) -> list[npt.NDArray[np.float64]]:
    return [g.astype(np.float64) for g in np.meshgrid(*[np.arange(n) for n in shape], indexing="ij", sparse=True)]


def natural(shape: Shape, dtype: npt.DTypeLike, rng: np.random.Generator) -> npt.NDArray:
    """Smoothed noise + a gradient + a few filled ellipses/boxes: photo-like."""
    shape = tuple(shape)
    noise = rng.standard_normal(shape)
    f = ndimage.gaussian_filter(noise, sigma=rng.uniform(1.0, 3.0), mode="reflect")
    f = f / (np.abs(f).max() + 1e-12) * 0.15 + 0.45
    grid = _grid(shape)
    direction = rng.standard_normal(len(shape))
    ramp = sum(d * g for d, g in zip(direction, grid))
    span = float(np.ptp(ramp)) if np.size(ramp) > 1 else 0.0
    if span > 0:
        f = f + 0.2 * (ramp - ramp.min()) / span - 0.1
    for _ in range(int(rng.integers(1, 5))):
        center = [rng.uniform(0, n) for n in shape]
        radii = [rng.uniform(1.0, max(1.5, n / 2)) for n in shape]
        level = rng.uniform(-0.35, 0.35)
        if rng.random() < 0.5:
            inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0
        else:
            inside = np.ones(shape, dtype=bool)
            for g, c, r in zip(grid, center, radii):
                inside = inside & (np.abs(g - c) <= r)
        f = f + level * inside
    return from_unit(np.clip(f, 0.0, 1.0), dtype)


def ct_hu(shape: Shape, rng: np.random.Generator, *, noise_hu: float = 15.0) -> npt.NDArray[np.float64]:
    """A synthetic chest CT slice (2D) or volume (3D) in HU, float64.

    Air -1000 outside an elliptic body of soft tissue (~0 HU) with a fat rim,
    two elliptic lungs (~-850 HU), bright ribs (~+700 HU) in the chest wall,
    a solid nodule (~+30 HU) in the right lung, Gaussian noise.
    """
    shape = tuple(shape)
    grid = _grid(shape)
    ny, nx = shape[-2], shape[-1]
    y, x = grid[-2], grid[-1]
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    if len(shape) == 3:
        nz = shape[0]
        z = grid[0]
        cz = (nz - 1) / 2.0
        # Lungs narrow towards the ends of the volume.
        taper = 1.0 - 0.6 * ((z - cz) / max(cz, 1.0)) ** 2
    else:
        taper = 1.0
    by, bx = 0.42 * ny, 0.47 * nx
    body = ((y - cy) / by) ** 2 + ((x - cx) / bx) ** 2
    hu = np.full(np.broadcast_shapes(shape, np.shape(body)), -1000.0)
    hu = np.where(body <= 1.0, -100.0, hu)  # fat rim
    hu = np.where(body <= 0.88, 10.0, hu)  # soft tissue
    hu = np.broadcast_to(hu, shape).copy()
    ly, lx = 0.28 * ny, 0.17 * nx
    lungs = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        d = ((y - cy) / ly) ** 2 + ((x - cx - side * 0.22 * nx) / lx) ** 2
        lungs |= np.broadcast_to(d <= taper, shape)
    hu[lungs] = -850.0
    # Ribs: small bright ellipses on a ring inside the body outline.
    for t in np.linspace(0.2, np.pi - 0.2, 7):
        for side in (-1.0, 1.0):
            ry = cy - 0.37 * ny * np.cos(t) * 0.9
            rx = cx + side * 0.41 * nx * np.sin(t)
            d = ((y - ry) / max(0.025 * ny, 0.6)) ** 2 + ((x - rx) / max(0.04 * nx, 0.6)) ** 2
            hu[np.broadcast_to(d <= 1.0, shape)] = 700.0
    # Nodule in the right lung (image left).
    ny0 = cy + rng.uniform(-0.1, 0.1) * ny
    nx0 = cx - 0.22 * nx + rng.uniform(-0.05, 0.05) * nx
    r = max(0.05 * min(ny, nx), 0.8)
    d = ((y - ny0) / r) ** 2 + ((x - nx0) / r) ** 2
    if len(shape) == 3:
        d = d + ((grid[0] - (shape[0] - 1) / 2.0) / max(r, 0.8)) ** 2
    hu[np.broadcast_to(d <= 1.0, shape)] = 30.0
    return hu + rng.standard_normal(shape) * noise_hu


def ct(shape: Shape, dtype: npt.DTypeLike, rng: np.random.Generator) -> npt.NDArray:
    """The CT family in ``dtype``: HU for int16/floats, windowed [-1000, 1000] otherwise."""
    dt = np.dtype(dtype)
    hu = ct_hu(shape, rng)
    if dt == np.int16 or dt.kind == "f":
        out = np.rint(hu) if dt.kind in "ui" else hu
        return np.clip(out, -1024, 3071).astype(dt)
    return from_unit(np.clip((hu + 1000.0) / 2000.0, 0.0, 1.0), dt)


def noise(shape: Shape, dtype: npt.DTypeLike, rng: np.random.Generator) -> npt.NDArray:
    """Uniform noise over the whole integer range; floats uniform in [0, 255)."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)
    return (rng.random(shape) * 255.0).astype(dt)


def constant(shape: Shape, dtype: npt.DTypeLike, rng: np.random.Generator) -> npt.NDArray:
    f = rng.random()
    return from_unit(np.full(tuple(shape), f), dtype)


def blocks(shape: Shape, dtype: npt.DTypeLike, rng: np.random.Generator) -> npt.NDArray:
    """Binary image: random blocks of 0 and white (nearest-upsampled coin flips)."""
    shape = tuple(shape)
    cell = int(rng.integers(1, 9))
    coarse = rng.random(tuple(-(-n // cell) for n in shape)) < 0.5
    fine = coarse
    for axis in range(len(shape)):
        fine = np.repeat(fine, cell, axis=axis)
    fine = fine[tuple(slice(0, n) for n in shape)]
    return from_unit(fine.astype(np.float64), dtype)


def extreme_values(dtype: npt.DTypeLike) -> list:
    """The values at the edges of a dtype's range (finite only)."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return [info.min, info.max, 0, 1, info.max - 1, (int(info.min) + int(info.max)) // 2]
    fi = np.finfo(dt)
    return [0.0, -0.0, float(fi.max), float(-fi.max), float(fi.tiny), float(fi.smallest_subnormal), 1.0, -1.0]


def extremes(shape: Shape, dtype: npt.DTypeLike, rng: np.random.Generator) -> npt.NDArray:
    """Blocks of extreme values of the dtype."""
    dt = np.dtype(dtype)
    values = np.array(extreme_values(dt), dtype=dt)
    cell = int(rng.integers(1, 4))
    shape = tuple(shape)
    coarse = rng.integers(0, len(values), size=tuple(-(-n // cell) for n in shape))
    idx = coarse
    for axis in range(len(shape)):
        idx = np.repeat(idx, cell, axis=axis)
    idx = idx[tuple(slice(0, n) for n in shape)]
    return values[idx]


FAMILIES: dict[str, Callable[[Shape, npt.DTypeLike, np.random.Generator], npt.NDArray]] = {
    "natural": natural,
    "ct": ct,
    "noise": noise,
    "constant": constant,
    "blocks": blocks,
    "extremes": extremes,
}

# Families whose values stay moderate (no overflow of float gradients).
TAME_FAMILIES = ("natural", "ct", "noise", "constant", "blocks")


def make(family: str, shape: Shape, dtype: npt.DTypeLike = np.uint8, seed: int = 0) -> npt.NDArray:
    """``FAMILIES[family](shape, dtype, default_rng(seed))``."""
    return FAMILIES[family](tuple(shape), dtype, np.random.default_rng(seed))


def tiny_shapes() -> list[tuple[int, int]]:
    """Every 2D shape from 1x1 to 4x4."""
    return [(h, w) for h in range(1, 5) for w in range(1, 5)]


# Geometry for the 3D accuracy tests --------------------------------------


def sphere(
    shape: Shape, center: tuple[float, ...], radius: float, inside: float, outside: float, dtype: npt.DTypeLike,
    *, noise_sd: float = 0.0, seed: int = 0,
) -> tuple[npt.NDArray, npt.NDArray[np.float64]]:
    """A ball with a one-voxel partial-volume edge; returns (image, signed distance to the surface)."""
    grid = _grid(shape)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, center))) - radius
    return _paint_from_distance(dist, inside, outside, dtype, noise_sd, seed), dist


def tube(
    shape: Shape, point: tuple[float, ...], direction: tuple[float, ...], radius: float,
    inside: float, outside: float, dtype: npt.DTypeLike, *, noise_sd: float = 0.0, seed: int = 0,
) -> tuple[npt.NDArray, npt.NDArray[np.float64]]:
    """An infinite cylinder around a line; returns (image, signed distance to its surface)."""
    grid = _grid(shape)
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    rel = [g - p for g, p in zip(grid, point)]
    t = sum(r * c for r, c in zip(rel, d))
    perp2 = sum((r - t * c) ** 2 for r, c in zip(rel, d))
    dist = np.sqrt(perp2) - radius
    dist = np.broadcast_to(dist, tuple(shape))
    return _paint_from_distance(dist, inside, outside, dtype, noise_sd, seed), dist


def _paint_from_distance(dist, inside, outside, dtype, noise_sd, seed):
    frac = np.clip(0.5 - dist, 0.0, 1.0)  # partial-volume occupancy
    v = outside + (inside - outside) * frac
    if noise_sd:
        v = v + np.random.default_rng(seed).standard_normal(v.shape) * noise_sd
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.clip(np.rint(v), info.min, info.max).astype(dt)
    return v.astype(dt)
