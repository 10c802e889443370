"""Non-local means denoising (C++ kernel)."""

from __future__ import annotations

import numpy.typing as npt

from . import _validate as v
from ._denoise_plan import NLM_DTYPES, nl_means_params
from ._ext import core as _core
from ._threads import get_num_threads

__all__ = ["nl_means"]




def nl_means(
    image: npt.ArrayLike,
    h: float,
    *,
    patch_size: int = 7,
    search_size: int = 21,
    sigma: float = 0.0,
) -> npt.NDArray:
    """Non-local means of a 2D single-channel image (pixelwise).

    Parameters
    ----------
    image : 2D ndarray of uint8 or float32
        Any strides and byte order. Float input must be finite (ValueError).
    h : float > 0
        Filter strength, in the image's units (gray levels for uint8), as
        cv2.fastNlMeansDenoising's ``h`` and scikit-image's ``h``.
    patch_size : odd int in [1, 15]
        Side of the square patches compared (cv2 ``templateWindowSize``,
        default 7 as cv2).
    search_size : odd int in [1, 65]
        Side of the square search window around each pixel (cv2
        ``searchWindowSize``, default 21 as cv2).
    sigma : float >= 0
        Noise standard deviation subtracted from patch distances, as in
        scikit-image (``sigma=0``: cv2's weight).

    Returns
    -------
    ndarray of the input's dtype and shape:
    ``sum_o w_o I(p+o) / sum_o w_o`` over the search window, with
    ``w_o = exp(-max(m_o - 2 sigma^2, 0) / h^2)`` and ``m_o`` the mean squared
    difference of the patches around ``p`` and ``p+o``.

    Semantics
    ---------
    Reflect101 border (cv2's BORDER_DEFAULT) for patches and the search
    window. Weights come from a 4096-bin table over the patch distance and
    weights below 1e-3 are dropped (cv2 drops them too), so results differ
    slightly from cv2's integer arithmetic and from scikit-image's exact
    weights; the test suite bounds the difference. uint8 distances are exact
    integers; float32 ones are summed in a fixed order. Results are identical
    to :func:`medfuse.reference.nl_means`, for every thread count and SIMD
    path. uint8 output is rounded half to even.
    """
    img = v.as_image(image, dtypes=NLM_DTYPES, ndims=(2,))
    pr, sr, lut, scale = nl_means_params(h, patch_size, search_size, sigma)
    v.check_finite_image(img)
    fn = getattr(_core(), "nlm_" + v.core_suffix(img.dtype))
    return fn(img, pr, sr, lut, float(scale), get_num_threads())
