"""Convolution and filtering: dense correlation, separable filters, Gaussian
smoothing, unsharp masking and filter banks on 2D images and 3D volumes.

Common rules
------------
* Images are (y, x) or (z, y, x) arrays of uint8, uint16, int16, float32 or
  float64, any strides and byte order.
* Correlation, as cv2.filter2D and scipy.ndimage.correlate: the kernel is not
  flipped, and its anchor is ``k // 2`` on every axis (cv2's default anchor
  (-1, -1), also for even sizes: a 4-tap kernel reads offsets -2..1;
  scipy.ndimage with origin=0 does the same).
* Borders: ``"reflect101"`` (gfedcb|abcdefgh|gfedcba, cv2 BORDER_REFLECT_101,
  scipy "mirror"), ``"reflect"`` (cba|abc, cv2 BORDER_REFLECT, scipy
  "reflect"), ``"replicate"`` (aaa|abc, scipy "nearest"), ``"constant"``
  (``value`` outside) and ``"wrap"`` (periodic, scipy "grid-wrap"; cv2's
  filters do not offer it). Kernels may be larger than the image: the border
  rule is applied again and again (as cv2 and scipy do).
* Output dtype: float32 for integer and float32 input, float64 for float64
  input. ``out_dtype`` may ask for float32, float64 or the image's own dtype;
  integer outputs are rounded half to even and saturated (cv2's
  ``ddepth=-1``; NaN becomes 0).
* Arithmetic: float32 sums, float64 when the input or the output is float64.
  The AVX2 path uses fused multiply-add, so it may differ from the baseline
  path (and from cv2/scipy) by rounding: about 1e-6 of sum |kernel| * |image|
  in float32. Zero taps are skipped (as cv2 and scipy.ndimage do).
* NaN policy: NaN/inf in the image propagate to every output pixel whose
  window holds them under a non-zero tap; NaN/inf in a kernel is refused.
* Kernels hold at most 2**20 taps.
* Results do not depend on the thread count (``medfuse.set_num_threads``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _convolve_plan as plan
from . import _validate as v
from ._ext import core as _core
from ._threads import get_num_threads

__all__ = ["convolve", "filter_bank", "gaussian", "sep_filter", "unsharp_mask"]





def _out_code(img: npt.NDArray[Any], out: np.dtype) -> int:
    if out == np.float32 and img.dtype != np.float32:
        return 0
    if out == np.float64 and img.dtype != np.float64:
        return 1
    return 2


def _sep(img: npt.NDArray[Any], kernels: Sequence[npt.NDArray[np.float64]], border: str, value: float,
         out: np.dtype) -> npt.NDArray[Any]:
    fn = getattr(_core(), "sep_filter_" + v.core_suffix(img.dtype))
    result: npt.NDArray[Any] = fn(img, [v.contiguous(k) for k in kernels], plan.BORDERS[border], value,
              _out_code(img, out), plan.compute_f64(img, out), get_num_threads())
    return result


def convolve(
    image: npt.ArrayLike,
    kernel: npt.ArrayLike,
    *,
    border: str = "reflect101",
    value: float = 0.0,
    out_dtype: npt.DTypeLike | None = None,
) -> npt.NDArray[Any]:
    """Correlate ``image`` with a dense ``kernel`` of the same ndim.

    ``out[p] = sum_o kernel[o] * image[p + o - k // 2]`` (see the module doc
    for borders, dtypes and precision). 2D results equal
    ``cv2.filter2D(image, cv2.CV_32F, kernel, borderType=...)`` to 1e-5 of
    sum |kernel| * |image| (cv2 switches to a DFT for kernels of 11x11 and
    more, whose rounding differs); 3D results equal
    ``scipy.ndimage.correlate(image, kernel, mode=...)`` to the same
    tolerance.
    """
    img = v.as_image(image)
    b = plan.border(border)
    val = plan.fill_value(value)
    out = plan.out_dtype(out_dtype, img)
    k = plan.kernel_nd(kernel, img.ndim)
    fn = getattr(_core(), "correlate_" + v.core_suffix(img.dtype))
    result: npt.NDArray[Any] = fn(img, k, plan.BORDERS[b], val, _out_code(img, out), plan.compute_f64(img, out),
                                  get_num_threads())
    return result


def sep_filter(
    image: npt.ArrayLike,
    kernels: Sequence[npt.ArrayLike],
    *,
    border: str = "reflect101",
    value: float = 0.0,
    out_dtype: npt.DTypeLike | None = None,
) -> npt.NDArray[Any]:
    """Separable correlation: one 1D kernel per axis, in array order.

    ``kernels`` is ``(ky, kx)`` for 2D and ``(kz, ky, kx)`` for 3D — note
    that ``cv2.sepFilter2D(image, ddepth, kernelX, kernelY)`` takes them in
    the other order. The result equals ``convolve(image, outer product of
    the kernels)`` (same anchors ``k // 2``, same borders, including
    ``"constant"``: out-of-image pixels hold ``value`` before any pass).
    A one-tap kernel ``[1]`` leaves its axis alone at no cost.
    """
    img = v.as_image(image)
    b = plan.border(border)
    val = plan.fill_value(value)
    out = plan.out_dtype(out_dtype, img)
    ks = plan.kernels_1d(kernels, img.ndim)
    return _sep(img, ks, b, val, out)


def gaussian(
    image: npt.ArrayLike,
    sigma: float | Sequence[float],
    *,
    truncate: float = 4.0,
    border: str = "reflect101",
    spacing: Sequence[float] | None = None,
    value: float = 0.0,
    out_dtype: npt.DTypeLike | None = None,
) -> npt.NDArray[Any]:
    """Gaussian smoothing, one sigma per axis (or one for all).

    Equal, to 1e-5 relative, to ``scipy.ndimage.gaussian_filter(image,
    sigma, mode="mirror", truncate=truncate)`` computed in float64: the same
    taps (radius ``int(truncate * sigma + 0.5)``, ``exp(-x²/2σ²)``
    normalised to sum 1). ``sigma`` is in voxels, or in the units of
    ``spacing`` (e.g. mm) when ``spacing`` gives the voxel size per axis.
    ``sigma`` 0 on an axis leaves that axis unsmoothed; negative sigma is
    refused. Output float32 for integer and float32 input, float64 for
    float64 (scipy returns the input dtype: pass ``out_dtype=image.dtype``
    for that, rounded half to even for integers).
    """
    img = v.as_image(image)
    sig = plan.sigmas(sigma, img.ndim, spacing)
    t = plan.truncate_value(truncate)
    b = plan.border(border)
    val = plan.fill_value(value)
    out = plan.out_dtype(out_dtype, img)
    return _sep(img, plan.gaussian_kernels(sig, t), b, val, out)


def unsharp_mask(
    image: npt.ArrayLike,
    sigma: float | Sequence[float],
    amount: float,
    *,
    threshold: float = 0.0,
    truncate: float = 4.0,
    border: str = "reflect101",
) -> npt.NDArray[Any]:
    """Sharpen: ``image + amount * (image - gaussian(image, sigma))``.

    The detail ``d = image - blurred`` is added only where ``|d| >=
    threshold`` (elsewhere the pixel is unchanged; threshold 0 sharpens
    everywhere). The blur is ``gaussian(image, sigma, truncate=truncate,
    border=border)`` (float32 sums, float64 for float64 input). The result
    has the input's dtype: integers are rounded half to even and clipped to
    the dtype's range; float32/float64 are returned unclipped (floats have
    no fixed range). ``amount`` may be any finite number (negative blurs).
    """
    img = v.as_image(image)
    a = v.real_number(amount, "amount")
    thr = v.real_number(threshold, "threshold", minimum=0.0)
    sig = plan.sigmas(sigma, img.ndim, None)
    t = plan.truncate_value(truncate)
    b = plan.border(border)
    # One C++ call: the blur of gaussian(img, sigma, ...) (same kernels, same bits) and
    # plan.unsharp_combine's float64 formula; in 2D fused row by row, so no blurred image is stored.
    x = np.ascontiguousarray(img, dtype=img.dtype.newbyteorder("="))
    fn = getattr(_core(), "unsharp_mask_" + v.core_suffix(x.dtype))
    result: npt.NDArray[Any] = fn(x, [v.contiguous(k) for k in plan.gaussian_kernels(sig, t)], plan.BORDERS[b], a,
                                  thr, get_num_threads())
    return result


def filter_bank(
    image: npt.ArrayLike,
    *,
    kind: str = "log",
    sigmas: float | Sequence[float] = (1.0, 2.0, 4.0),
    normalize: bool = True,
    frequencies: float | Sequence[float] = (0.1, 0.2, 0.4),
    orientations: int = 4,
    bandwidth: float = 1.0,
    laws_vectors: Sequence[str] | None = None,
    laws_window: int | Sequence[int] = 15,
    truncate: float = 4.0,
    border: str = "reflect101",
) -> tuple[npt.NDArray[np.float32], list[str]]:
    """A stack of filter responses for texture features.

    Returns ``(responses, names)``: ``responses`` is float32 of shape
    ``(n_filters, *image.shape)`` and ``names[i]`` names filter i.

    kind="log" (2D and 3D)
        Laplacian of Gaussian at each sigma in ``sigmas`` (voxels): equal to
        ``scipy.ndimage.gaussian_laplace(image, sigma, mode="mirror",
        truncate=truncate)`` (computed as the sum over axes of a separable
        filter: the second-derivative Gaussian taps on that axis, Gaussian
        taps on the others, scipy's taps). With ``normalize`` the response
        is multiplied by sigma² (scale-normalised LoG). Names ``"log_s<σ>"``.
    kind="gabor" (2D)
        Magnitude ``sqrt(real² + imag²)`` of the responses to the complex
        Gabor kernels of ``skimage.filters.gabor_kernel(frequency, theta,
        bandwidth=bandwidth)`` (n_stds=3, offset 0) for every frequency in
        ``frequencies`` (cycles per pixel) and ``orientations`` angles
        ``theta = k * pi / orientations``. The kernels are applied as
        skimage.filters.gabor does (a convolution, i.e. correlation with the
        flipped kernel), with ``border`` (skimage: mode). Names
        ``"gabor_f<f>_t<k>"``.
    kind="laws" (2D and 3D)
        Laws texture energy: for each combination of the 5-tap vectors in
        ``laws_vectors`` (default all of L5, E5, S5, R5, W5) one per axis
        (axis order: ``"L5E5"`` is L5 along y and E5 along x), the response
        ``sep_filter(image, vectors)`` then its energy, the local mean of
        |response| over a centred window of ``laws_window`` (odd) pixels per
        axis. 25 filters in 2D, 125 in 3D. Names like ``"L5E5"``.

    All filters use ``border`` (default reflect101) and float32 sums
    (float64 for float64 input); the stack is float32.
    """
    img = v.as_image(image)
    k = plan.bank_kind(kind, img.ndim)
    b = plan.border(border)
    t = plan.truncate_value(truncate)
    out_dt = np.dtype(np.float64) if img.dtype == np.float64 else np.dtype(np.float32)
    specs = plan.bank_specs(k, img.ndim, sigmas, normalize, frequencies, orientations, bandwidth,
                            laws_vectors, laws_window, t)
    v.check_alloc(4 * len(specs) * img.size, f"filter_bank output ({len(specs)} filters x {img.shape})")
    stack = np.empty((len(specs),) + img.shape, dtype=np.float32)
    names = []
    for i, spec in enumerate(specs):
        names.append(spec.name)
        if spec.kind == "sep_sum":
            acc = None
            for ks in spec.terms:
                r = _sep(img, ks, b, 0.0, out_dt)
                acc = r if acc is None else acc + r
            assert acc is not None
            stack[i] = acc * spec.scale
        elif spec.kind == "gabor":
            assert spec.kernel is not None
            re = convolve(img, spec.kernel.real, border=b, out_dtype=out_dt)
            im = convolve(img, spec.kernel.imag, border=b, out_dtype=out_dt)
            stack[i] = np.hypot(re, im)
        else:  # laws
            r = _sep(img, spec.terms[0], b, 0.0, out_dt)
            np.abs(r, out=r)
            stack[i] = _sep(r, spec.terms[1], b, 0.0, out_dt)
    return stack, names
