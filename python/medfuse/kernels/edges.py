"""Edge detection: Canny and Sobel on 2D images and 3D volumes (C++ kernels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _validate as v
from ._edges_plan import plan_canny_cached
from ._ext import core as _core
from ._threads import get_num_threads

__all__ = ["canny", "sobel"]

_BORDERS = {"replicate": 0, "reflect101": 1}




def canny(
    image: npt.ArrayLike,
    low: float,
    high: float,
    *,
    aperture_size: int = 3,
    l2_gradient: bool = False,
    sigma: float | Sequence[float] | None = None,
    spacing: Sequence[float] | None = None,
) -> npt.NDArray[np.uint8]:
    """Canny edges of a 2D image (y, x) or a 3D volume (z, y, x).

    Parameters
    ----------
    image : ndarray of uint8, uint16, int16, float32 or float64
        Any strides and byte order. Float input must be finite.
    low, high : float
        Hysteresis thresholds on the gradient magnitude, in the input's own
        units (HU for CT), ``0 <= low <= high``. A pixel is a candidate if
        its magnitude is > ``low`` and a local maximum along the gradient; a
        candidate is an edge if it is > ``high`` or connected (8-connectivity
        in 2D, 26 in 3D) through candidates to one that is.
    aperture_size : 3, 5 or 7
        Sobel aperture. Gradients use a replicated border, as cv2.Canny.
    l2_gradient : bool
        Magnitude sqrt(gx² + gy² [+ gz²]) instead of |gx| + |gy| [+ |gz|].
    sigma : float or one float per axis, optional
        Gaussian pre-smoothing (scipy.ndimage.gaussian_filter with
        mode="mirror", truncate=4); in voxels, or in mm when ``spacing`` is
        given. 0 on an axis leaves that axis unsmoothed.
    spacing : one float per axis, optional
        Voxel size, e.g. (dz, dy, dx) in mm. Each gradient component is
        multiplied by ``min(spacing) / spacing[axis]``, so thresholds keep the
        units of an isotropic volume at the finest spacing.

    Returns
    -------
    ndarray of uint8, the input's shape, values in {0, 255}.

    Semantics
    ---------
    * 2D uint8: identical to ``cv2.Canny(image, low, high, apertureSize=...,
      L2gradient=...)`` on every pixel, including cv2's aperture-7 rule
      (gradients divided by 16 and rounded to int16, thresholds divided by 16).
    * 2D uint16 / int16: the same integer arithmetic without the 8-bit
      limits, so ``canny(x.astype(uint16) * 257, 257*low, 257*high)`` equals
      ``canny(x, low, high)`` for apertures 3 and 5 (and for 7 up to cv2's
      rounding of 8-bit gradients, which wider types do not need).
    * float32 / float64: 2D float32 is smoothed and differentiated in
      float32, everything else in float64; magnitudes and suppression are
      float64. Integer-valued input gives the uint8 result for apertures 3
      and 5 (float32 gradients of such data are exact).
    * 3D: 3D Sobel gradients, non-maximum suppression along the gradient
      quantized to the 13 directions of the 26-neighbourhood (in a plane with
      no z-gradient this is exactly the 2D rule), 26-connected hysteresis.
      Thresholds are scaled by the Sobel gain of the extra axis, so a volume
      of identical slices has, slice by slice, the 2D result (for float32
      only when the data are integer-valued: 3D works in float64, 2D float32
      in float32).
    """
    img = v.as_image(image)
    plan = plan_canny_cached(img, low, high, aperture_size, l2_gradient, sigma, spacing)
    core = _core()
    fn = getattr(core, "canny_" + v.core_suffix(img.dtype))
    smooth = [] if plan.smooth is None else [v.contiguous(t) for t in plan.smooth]
    return fn(
        img,
        plan.aperture,
        plan.l2,
        plan.exact_int,
        plan.round16,
        plan.low_cmp,
        plan.high_cmp,
        list(plan.weights),
        smooth,
        get_num_threads(),
    )


def sobel(
    image: npt.ArrayLike, *, aperture_size: int = 3, border: str = "reflect101"
) -> tuple[npt.NDArray, ...]:
    """Sobel derivative along each axis: ``(d/dy, d/dx)`` or ``(d/dz, d/dy, d/dx)``.

    2D results equal ``cv2.Sobel(image, ddepth, 1, 0, ksize=aperture_size)``
    (and ``0, 1`` for d/dy) with ``border="reflect101"`` (cv2's default) or
    ``"replicate"``. 3D uses the separable 3D Sobel operator (derivative along
    one axis, smoothing along the other two). Output: float32 for float32,
    float64 for float64, int32 for integer input (int64 for 3D 16-bit input
    with aperture 7, whose sums can exceed int32) — never saturated.
    Integer sums are exact; float32 data is summed in float32 (as cv2.Sobel;
    in float64 when some ``|x| > 2**100``, whose sums could overflow), float64
    data in float64; taps in ascending order, x first, as the NumPy twin.
    """
    img = v.as_image(image)
    a = v.aperture(aperture_size)
    if not isinstance(border, str) or border not in _BORDERS:
        raise ValueError(f"border must be one of {', '.join(_BORDERS)}; got {border!r}")
    core = _core()
    fn = getattr(core, "sobel_" + v.core_suffix(img.dtype))
    return tuple(fn(img, a, _BORDERS[border], get_num_threads()))
