"""Argument checks and kernel construction shared by medfuse.convolve and its twin.

Both layers call these functions, so they refuse the same inputs with the
same messages and build bit-identical taps.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from . import _validate as v

BORDERS = {"reflect101": 0, "reflect": 1, "replicate": 2, "constant": 3, "wrap": 4}
# numpy.pad modes / scipy.ndimage modes for each border
SCIPY_MODES = {"reflect101": "mirror", "reflect": "reflect", "replicate": "nearest", "constant": "constant",
               "wrap": "grid-wrap"}
MAX_TAPS = 1 << 20
LAWS_VECTORS = {
    "L5": (1.0, 4.0, 6.0, 4.0, 1.0),
    "E5": (-1.0, -2.0, 0.0, 2.0, 1.0),
    "S5": (-1.0, 0.0, 2.0, 0.0, -1.0),
    "R5": (1.0, -4.0, 6.0, -4.0, 1.0),
    "W5": (-1.0, 2.0, 0.0, -2.0, 1.0),
}


def border(value: object) -> str:
    if not isinstance(value, str) or value not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}; got {value!r}")
    return value


def out_dtype(value: object, image: npt.NDArray[Any]) -> np.dtype:
    """None -> float32 (float64 for float64 input); else float32, float64 or the input dtype."""
    if value is None:
        return np.dtype(np.float64) if image.dtype == np.float64 else np.dtype(np.float32)
    try:
        dt = np.dtype(cast(Any, value))
    except TypeError:
        raise TypeError(f"out_dtype must be None, float32, float64 or the image dtype; got {value!r}") from None
    allowed = {np.dtype(np.float32), np.dtype(np.float64), image.dtype.newbyteorder("=")}
    if dt.newbyteorder("=") not in allowed:
        raise ValueError(
            f"out_dtype must be None, float32, float64 or the image dtype ({image.dtype}); got {dt}"
        )
    return dt.newbyteorder("=")


def compute_f64(image: npt.NDArray[Any], out: np.dtype) -> bool:
    """float64 sums for float64 input or float64 output, float32 otherwise."""
    return image.dtype == np.float64 or out == np.float64


def kernel_nd(kernel: object, ndim: int, name: str = "kernel") -> npt.NDArray[np.float64]:
    k = kernel if isinstance(kernel, np.ndarray) else np.asarray(kernel)
    if k.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (int or float); got dtype {k.dtype}")
    if k.ndim != ndim:
        raise ValueError(f"{name} must have the image's number of dimensions ({ndim}); got shape {k.shape}")
    if k.size == 0:
        raise ValueError(f"{name} is empty (shape {k.shape})")
    if k.size > MAX_TAPS:
        raise ValueError(f"{name} has {k.size} taps; at most 2**20 = {MAX_TAPS} are allowed")
    k64 = v.contiguous(k, dtype=np.float64)
    if not np.isfinite(k64).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return k64


def kernels_1d(kernels: object, ndim: int) -> list[npt.NDArray[np.float64]]:
    if isinstance(kernels, np.ndarray) and kernels.ndim == 1:
        raise TypeError("kernels must be a sequence of one 1D kernel per axis, not a single array")
    try:
        items = list(kernels)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"kernels must be a sequence of {ndim} 1D kernels; got {kernels!r}") from None
    if len(items) != ndim:
        raise ValueError(f"kernels must have one 1D kernel per axis ({ndim}); got {len(items)}")
    out = []
    for k in items:
        a = k if isinstance(k, np.ndarray) else np.asarray(k)
        if a.dtype.kind not in "iuf":
            raise TypeError(f"kernels must hold real numbers; got dtype {a.dtype}")
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"kernels must be non-empty 1D arrays; got shape {a.shape}")
        if a.size > MAX_TAPS:
            raise ValueError(f"kernels: {a.size} taps; at most 2**20 = {MAX_TAPS} are allowed")
        a64 = v.contiguous(a, dtype=np.float64)
        if not np.isfinite(a64).all():
            raise ValueError("kernels contain NaN or infinity")
        out.append(a64)
    return out


def fill_value(value: object) -> float:
    return v.real_number(value, "value")


def gaussian_taps(sigma: float, truncate: float, order: int = 0) -> npt.NDArray[np.float64]:
    """scipy.ndimage's 1D Gaussian (derivative) taps: radius int(truncate*sigma + 0.5)."""
    if sigma == 0.0 and order == 0:
        return np.ones(1)
    radius_f = truncate * sigma + 0.5
    if not radius_f < MAX_TAPS:  # also inf/NaN (sigma = 1e308): int() would raise OverflowError
        raise ValueError(
            f"sigma * truncate too large: radius {radius_f:.3g}; at most 2**20 = {MAX_TAPS} taps are allowed"
        )
    radius = int(radius_f)
    if 2 * radius + 1 > MAX_TAPS:
        raise ValueError(
            f"sigma * truncate too large: {2 * radius + 1} taps; at most 2**20 = {MAX_TAPS} are allowed"
        )
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    s2 = sigma * sigma
    if s2 == 0.0:  # sigma > 0 so small that its square underflows (1e-300): the sigma -> 0 limit
        if order == 0:
            return np.ones(1)
        raise ValueError(f"sigma {sigma!r} is too small for a Gaussian derivative (sigma**2 underflows)")
    phi = np.exp(-0.5 / s2 * x * x)
    phi = phi / phi.sum()
    if order == 0:
        return phi
    if order == 2:
        return (x * x / (s2 * s2) - 1.0 / s2) * phi
    raise ValueError("order must be 0 or 2")


def sigmas(sigma: object, ndim: int, spacing: object) -> tuple[float, ...]:
    s = v.per_axis(sigma, "sigma", ndim, allow_zero=True)
    if spacing is None:
        return s
    sp = v.per_axis(spacing, "spacing", ndim, allow_zero=False)
    return tuple(a / b for a, b in zip(s, sp))


def truncate_value(truncate: object) -> float:
    t = v.real_number(truncate, "truncate")
    if t <= 0:
        raise ValueError(f"truncate must be > 0; got {t:g}")
    return t


def gaussian_kernels(sig: Sequence[float], truncate: float) -> list[npt.NDArray[np.float64]]:
    return [gaussian_taps(s, truncate) for s in sig]


# ---- filter bank --------------------------------------------------------------------
def scale_list(values: object, name: str) -> tuple[float, ...]:
    if isinstance(values, (numbers.Real, np.number)) and not isinstance(values, (bool, np.bool_)):
        values = [values]
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{name} must be a number or a sequence of numbers; got {values!r}") from None
    if not items:
        raise ValueError(f"{name} must not be empty")
    out = []
    for it in items:
        f = v.real_number(it, name)
        if f <= 0:
            raise ValueError(f"{name} values must be > 0; got {f:g}")
        out.append(f)
    return tuple(out)


def gabor_kernel(frequency: float, theta: float, bandwidth: float, n_stds: float) -> npt.NDArray[np.complex128]:
    """Complex Gabor kernel, as skimage.filters.gabor_kernel (offset 0, sigma from bandwidth)."""
    b = 2.0 ** bandwidth
    sig = math.sqrt(math.log(2) / 2) / math.pi * (b + 1) / (b - 1) / frequency
    ct, st = math.cos(theta), math.sin(theta)
    x0 = math.ceil(max(abs(n_stds * sig * ct), abs(n_stds * sig * st), 1))
    y0 = math.ceil(max(abs(n_stds * sig * ct), abs(n_stds * sig * st), 1))
    y = np.arange(-y0, y0 + 1, dtype=np.float64)[:, None]
    x = np.arange(-x0, x0 + 1, dtype=np.float64)[None, :]
    rotx = x * ct + y * st
    roty = -x * st + y * ct
    g = np.exp(-0.5 * (rotx ** 2 / sig ** 2 + roty ** 2 / sig ** 2)) / (2 * math.pi * sig * sig)
    result: npt.NDArray[np.complex128] = g * np.exp(1j * (2 * math.pi * frequency * rotx))
    return result


def laws_names(vectors: object, ndim: int) -> list[tuple[str, ...]]:
    if vectors is None:
        names = list(LAWS_VECTORS)
    else:
        if isinstance(vectors, str):
            vectors = [vectors]
        names = list(vectors)  # type: ignore[call-overload]
        for n in names:
            if n not in LAWS_VECTORS:
                raise ValueError(f"laws_vectors must name vectors among {', '.join(LAWS_VECTORS)}; got {n!r}")
        if not names:
            raise ValueError("laws_vectors must not be empty")
    import itertools

    return list(itertools.product(names, repeat=ndim))


def laws_window(window: object, ndim: int) -> tuple[int, ...]:
    if isinstance(window, (numbers.Integral, np.integer)) and not isinstance(window, (bool, np.bool_)):
        items = [int(window)] * ndim
    else:
        try:
            items = [int(w) for w in window]  # type: ignore[union-attr, attr-defined]
        except TypeError:
            raise TypeError(f"laws_window must be an odd integer or one per axis; got {window!r}") from None
        if len(items) != ndim:
            raise ValueError(f"laws_window must have one value per axis ({ndim}); got {len(items)}")
    for w in items:
        if w < 1 or w % 2 == 0:
            raise ValueError(f"laws_window must be odd and >= 1 (a centred window); got {w}")
    return tuple(items)


def positive(value: object, name: str) -> float:
    f = v.real_number(value, name)
    if f <= 0:
        raise ValueError(f"{name} must be > 0; got {f:g}")
    return f


def optional_float(value: object | None, name: str) -> float | None:
    return None if value is None else v.real_number(value, name)


# ---- unsharp mask ------------------------------------------------------------------
def unsharp_combine(img: npt.NDArray[Any], blurred: npt.NDArray[Any], amount: float, threshold: float) -> npt.NDArray[Any]:
    """out = img + amount * d where |d| >= threshold (d = img - blurred), in float64;
    integers rounded half to even and clipped to the dtype's range."""
    x = img.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d = x - blurred.astype(np.float64)
        out = np.where(np.abs(d) >= threshold, x + amount * d, x)
    if img.dtype.kind in "ui":
        info = np.iinfo(img.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
        out = np.nan_to_num(out, nan=0.0)
    with np.errstate(over="ignore"):
        return out.astype(img.dtype)


# ---- filter bank specifications ------------------------------------------------------
class BankSpec:
    """One filter of a bank: a sum of separable terms, a Gabor kernel, or Laws energy."""

    def __init__(self, name: str, kind: str, terms: list[list[npt.NDArray[np.float64]]],
                 scale: float = 1.0, kernel: npt.NDArray[np.complex128] | None = None) -> None:
        self.name = name
        self.kind = kind
        self.terms = terms
        self.scale = scale
        self.kernel = kernel


def bank_kind(kind: object, ndim: int) -> str:
    if not isinstance(kind, str) or kind not in ("log", "gabor", "laws"):
        raise ValueError(f"kind must be 'log', 'gabor' or 'laws'; got {kind!r}")
    if kind == "gabor" and ndim != 2:
        raise ValueError("kind='gabor' needs a 2D image; got a 3D volume")
    return kind


def _fmt(x: float) -> str:
    return f"{x:g}"


def bank_specs(kind: str, ndim: int, sigmas: object, normalize: object, frequencies: object,
               orientations: object, bandwidth: object, laws_vectors: object, laws_window_: object,
               truncate: float) -> list[BankSpec]:
    specs: list[BankSpec] = []
    if kind == "log":
        norm = v.flag(normalize, "normalize")
        for s in scale_list(sigmas, "sigmas"):
            g = gaussian_taps(s, truncate)
            d2 = gaussian_taps(s, truncate, order=2)
            terms = [[d2 if a == axis else g for a in range(ndim)] for axis in range(ndim)]
            specs.append(BankSpec(f"log_s{_fmt(s)}", "sep_sum", terms, s * s if norm else 1.0))
    elif kind == "gabor":
        freqs = scale_list(frequencies, "frequencies")
        if isinstance(orientations, (bool, np.bool_)) or not isinstance(orientations, (numbers.Integral, np.integer)):
            raise TypeError(f"orientations must be an integer >= 1; got {orientations!r}")
        n_or = int(orientations)
        if n_or < 1:
            raise ValueError(f"orientations must be >= 1; got {n_or}")
        bw = positive(bandwidth, "bandwidth")
        for f in freqs:
            if f > 0.5:
                raise ValueError(f"frequencies must be in (0, 0.5] cycles per pixel; got {f:g}")
            for k in range(n_or):
                ker = gabor_kernel(f, k * math.pi / n_or, bw, 3.0)
                if ker.size > MAX_TAPS:
                    raise ValueError(f"frequencies: {f:g} gives a Gabor kernel of {ker.shape}; too large")
                # skimage.filters.gabor convolves: correlate with the flipped kernel
                specs.append(BankSpec(f"gabor_f{_fmt(f)}_t{k}", "gabor", [],
                                      kernel=v.contiguous(ker[::-1, ::-1])))
    else:
        combos = laws_names(laws_vectors, ndim)
        win = laws_window(laws_window_, ndim)
        box = [np.full(w, 1.0 / w) for w in win]
        for combo in combos:
            vecs = [np.asarray(LAWS_VECTORS[n], dtype=np.float64) for n in combo]
            specs.append(BankSpec("".join(combo), "laws", [vecs, box]))
    return specs
