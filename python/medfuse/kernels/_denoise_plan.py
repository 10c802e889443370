"""Argument checks and the weight table shared by medfuse.nl_means and its twin.

The weight of a patch distance (mean squared difference ``m`` over the
patch) is ``exp(-max(m - 2 sigma^2, 0) / h^2)``: cv2.fastNlMeansDenoising's
``exp(-m / h^2)`` when ``sigma == 0``, scikit-image's ``denoise_nl_means``
weight otherwise. Like cv2, weights below 1e-3 are dropped. The kernel reads
the weight from a table of ``NLM_BINS`` bins over the sum of squared
differences ``ssd``: ``lut[min(int(ssd * scale), NLM_BINS)]``, with the last
entry 0. The table is built here, once, in float64 then rounded to float32,
so the kernel and the twin use identical weights.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import numpy.typing as npt

from . import _validate as v

NLM_DTYPES = (np.uint8, np.float32)
NLM_BINS = 4096
NLM_MIN_WEIGHT = 1e-3


def _odd_size(value: object, name: str, maximum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an odd integer; got {value!r}")
    s = int(value)
    if s < 1 or s % 2 == 0 or s > maximum:
        raise ValueError(f"{name} must be odd, >= 1 and <= {maximum}; got {s}")
    return s


def nl_means_params(
    h: object, patch_size: object, search_size: object, sigma: object
) -> tuple[int, int, npt.NDArray[np.float32], np.float32]:
    """(patch_radius, search_radius, lut, scale) for the kernel and the twin."""
    hh = v.real_number(h, "h")
    if hh <= 0:
        raise ValueError(f"h must be > 0; got {hh:g}")
    ps = _odd_size(patch_size, "patch_size", 15)
    ss = _odd_size(search_size, "search_size", 65)
    sg = v.real_number(sigma, "sigma", minimum=0.0)
    area = ps * ps
    offset = 2.0 * sg * sg
    unusable = f"h={hh:g} and sigma={sg:g} give no usable weight table (h**2 under- or overflows)"
    if not 0.0 < hh * hh < math.inf:  # the weights divide by h^2
        raise ValueError(unusable)
    m_max = offset + hh * hh * math.log(1.0 / NLM_MIN_WEIGHT)  # mean distance where the weight hits 1e-3
    scale = np.float32(NLM_BINS / (area * m_max))
    if not (math.isfinite(float(scale)) and float(scale) > 0):
        raise ValueError(unusable)
    m = np.arange(NLM_BINS + 1, dtype=np.float64) / (float(scale) * area)
    lut = np.exp(-np.maximum(m - offset, 0.0) / (hh * hh))
    lut[lut < NLM_MIN_WEIGHT] = 0.0
    lut[-1] = 0.0
    return ps // 2, ss // 2, lut.astype(np.float32), scale
