"""Canny parameters turned into what the kernel and its twin both compute.

This is the one place where the user's arguments become numbers in the
gradient-magnitude domain, so ``medfuse.canny`` and ``medfuse.reference.canny``
cannot drift apart on threshold semantics. Every rule here is stated in the
``canny`` docstring.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _validate as v

# Smoothing kernel of the Sobel operator of each aperture, and its sum (the
# gain one extra smoothed axis adds to a gradient).
SOBEL_SMOOTH = {3: (1, 2, 1), 5: (1, 4, 6, 4, 1), 7: (1, 6, 15, 20, 15, 6, 1)}
SOBEL_DERIV = {3: (-1, 0, 1), 5: (-1, -2, 0, 2, 1), 7: (-1, -4, -5, 0, 5, 4, 1)}
SOBEL_GAIN = {3: 4, 5: 16, 7: 64}

# Largest comparison value the integer kernels are given (magnitudes of 2D
# 8/16-bit data stay far below it).
_INT_CMP_MAX = float(2**62)


@dataclass(frozen=True)
class CannyPlan:
    ndim: int
    aperture: int
    l2: bool
    exact_int: bool  # 2D 8/16-bit data without smoothing or anisotropy: integer arithmetic
    round16: bool  # uint8 2D aperture 7: gradients are round-half-even(S / 16), as cv2
    low_cmp: float  # candidate if magnitude (squared for L2) > low_cmp
    high_cmp: float  # strong if magnitude (squared for L2) > high_cmp
    weights: tuple[float, ...]  # per-axis gradient weights from spacing (all 1.0 if isotropic)
    smooth: tuple[npt.NDArray[np.float64], ...] | None  # per-axis Gaussian taps, or None


def gaussian_taps(sigma: float, truncate: float = 4.0) -> npt.NDArray[np.float64]:
    """Normalized 1D Gaussian, radius int(truncate*sigma + 0.5), as scipy.ndimage."""
    radius = int(truncate * sigma + 0.5)
    if radius == 0:  # a one-tap kernel: no smoothing, as scipy.ndimage
        return np.ones(1, dtype=np.float64)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x * x)
    return phi / phi.sum()


def plan_canny(
    image: npt.NDArray,
    low: object,
    high: object,
    aperture_size: object,
    l2_gradient: object,
    sigma: object,
    spacing: object,
) -> CannyPlan:
    lo, hi = v.thresholds(low, high)
    a = v.aperture(aperture_size)
    l2 = v.flag(l2_gradient, "l2_gradient")
    ndim = image.ndim
    sp = None if spacing is None else v.per_axis(spacing, "spacing", ndim, allow_zero=False)
    sg = None if sigma is None else v.per_axis(sigma, "sigma", ndim, allow_zero=True)

    if sp is None:
        weights = (1.0,) * ndim
    else:
        finest = min(sp)
        weights = tuple(finest / s for s in sp)

    smooth = None
    if sg is not None and any(s > 0 for s in sg):
        vox = sg if sp is None else tuple(s / d for s, d in zip(sg, sp))
        if max(vox) > 256.0:
            raise ValueError(
                f"sigma is {max(vox):g} voxels on some axis; at most 256 voxels are supported"
            )
        if ndim == 3 and vox[0] > 31.0:
            raise ValueError(
                f"sigma along z is {vox[0]:g} voxels; at most 31 voxels are supported"
            )
        smooth = tuple(gaussian_taps(s) for s in vox)

    is_int = image.dtype.kind in "ui"
    exact_int = is_int and ndim == 2 and smooth is None and all(w == 1.0 for w in weights)
    round16 = exact_int and image.dtype == np.uint8 and a == 7

    def to_cmp(t: float) -> float:
        if round16:
            t = t / 16.0
        if ndim == 3:
            t = t * SOBEL_GAIN[a]
        if l2:
            if exact_int and image.dtype == np.uint8:
                t = min(t, 32767.0)  # cv2.Canny clamps before squaring
            t = t * t
        if exact_int:
            t = float(math.floor(min(t, _INT_CMP_MAX)))
        return min(t, sys.float_info.max)  # squaring a huge threshold must not give inf

    return CannyPlan(
        ndim=ndim,
        aperture=a,
        l2=l2,
        exact_int=exact_int,
        round16=round16,
        low_cmp=to_cmp(lo),
        high_cmp=to_cmp(hi),
        weights=weights,
        smooth=smooth,
    )


@functools.lru_cache(maxsize=64)
def _plain_plan(
    dtype: np.dtype, ndim: int, low: float, high: float, aperture_size: int, l2_gradient: bool
) -> CannyPlan:
    return plan_canny(np.empty((1,) * ndim, dtype), low, high, aperture_size, l2_gradient, None, None)


def plan_canny_cached(
    image: npt.NDArray,
    low: object,
    high: object,
    aperture_size: object,
    l2_gradient: object,
    sigma: object,
    spacing: object,
) -> CannyPlan:
    """``plan_canny``, remembered for the common call: thresholds of type int or
    float, an int aperture, a bool flag, no sigma or spacing (the plan depends
    only on those values and the image's dtype and ndim). Checking the
    arguments anew took half of a small image's call."""
    if (
        sigma is None
        and spacing is None
        and type(low) in (int, float)
        and type(high) in (int, float)
        and type(aperture_size) is int
        and type(l2_gradient) is bool
    ):
        return _plain_plan(image.dtype, image.ndim, low, high, aperture_size, l2_gradient)
    return plan_canny(image, low, high, aperture_size, l2_gradient, sigma, spacing)

