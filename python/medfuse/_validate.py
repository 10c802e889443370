"""Argument checks shared by the kernels and their NumPy twins.

Both layers call the same functions so that they refuse the same inputs with
the same messages (the message is part of the contract: tests match on it).
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np
import numpy.typing as npt

IMAGE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def dtype_names(dtypes: Sequence[type]) -> str:
    return ", ".join(np.dtype(d).name for d in dtypes)


def as_image(
    image: object,
    name: str = "image",
    *,
    dtypes: Sequence[type] = IMAGE_DTYPES,
    ndims: Sequence[int] = (2, 3),
) -> npt.NDArray:
    """Return ``image`` as a C-contiguous, native-byte-order array, or raise.

    TypeError for a dtype outside ``dtypes``; ValueError for another ndim or
    an empty array. Values are not copied when the input is already in shape.
    """
    arr = image if isinstance(image, np.ndarray) else np.asarray(image)
    if arr.dtype.kind not in "biuf" or arr.dtype.type not in tuple(np.dtype(d).type for d in dtypes):
        raise TypeError(
            f"{name} must have dtype {dtype_names(dtypes)}; got {arr.dtype}"
        )
    if arr.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must be {want}-dimensional; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); every axis needs at least one element")
    native = arr.dtype.newbyteorder("=")
    return np.ascontiguousarray(arr, dtype=native)


def check_finite_image(arr: npt.NDArray, name: str = "image") -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity; edges are undefined there")


def real_number(value: object, name: str, *, minimum: float | None = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite; got {v}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}; got {v:g}")
    return v


def thresholds(low: object, high: object) -> tuple[float, float]:
    lo = real_number(low, "low", minimum=0.0)
    hi = real_number(high, "high", minimum=0.0)
    if lo > hi:
        raise ValueError(f"low must be <= high; got low={lo:g}, high={hi:g}")
    return lo, hi


def aperture(aperture_size: object) -> int:
    if isinstance(aperture_size, (bool, np.bool_)) or not isinstance(aperture_size, numbers.Integral):
        raise TypeError(f"aperture_size must be an integer (3, 5 or 7); got {aperture_size!r}")
    a = int(aperture_size)
    if a not in (3, 5, 7):
        raise ValueError(f"aperture_size must be 3, 5 or 7; got {a}")
    return a


def flag(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def per_axis(
    value: object, name: str, ndim: int, *, allow_zero: bool
) -> tuple[float, ...]:
    """A positive (or >= 0) finite number, or one such number per axis."""
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_)):
        items: list[object] = [value] * ndim
    else:
        try:
            items = list(value)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(
                f"{name} must be a number or a sequence of {ndim} numbers; got {value!r}"
            ) from None
        if len(items) != ndim:
            raise ValueError(
                f"{name} must have one value per axis ({ndim}); got {len(items)}"
            )
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.number)):
            raise TypeError(f"{name} values must be real numbers; got {v!r}")
        f = float(v)  # type: ignore[arg-type]
        if not math.isfinite(f) or f < 0 or (f == 0 and not allow_zero):
            req = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} values must be finite and {req}; got {f}")
        out.append(f)
    return tuple(out)
