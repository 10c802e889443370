"""Argument checks shared by the kernels and their NumPy twins.

Both layers call the same functions so that they refuse the same inputs with
the same messages (the message is part of the contract: tests match on it).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

IMAGE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


# Suffix of the dtype-specific entry points in medfuse._core (STYLE §5):
# canny_u8, glcm_i64, attention_f32, ... One table for every family; which
# dtypes a function accepts is checked before the lookup.
_CORE_SUFFIX = {
    np.dtype(np.uint8): "u8",
    np.dtype(np.uint16): "u16",
    np.dtype(np.uint32): "u32",
    np.dtype(np.uint64): "u64",
    np.dtype(np.int8): "i8",
    np.dtype(np.int16): "i16",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
}


def core_suffix(dtype: object) -> str:
    """The ``_core`` entry-point suffix of a (validated) native-order dtype."""
    if isinstance(dtype, np.dtype) and dtype.isnative:  # the usual call: an array's dtype, no conversion
        suffix = _CORE_SUFFIX.get(dtype)
        if suffix is not None:
            return suffix
    return _CORE_SUFFIX[np.dtype(cast(Any, dtype)).newbyteorder("=")]


def dtype_names(dtypes: Sequence[type]) -> str:
    return ", ".join(np.dtype(d).name for d in dtypes)


def check_shape(arr: npt.NDArray, name: str, ndims: Sequence[int] = (2, 3)) -> None:
    """ValueError naming ``name`` for an ndim outside ``ndims`` or an empty array."""
    if arr.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must be {want}-dimensional; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); every axis needs at least one element")


@functools.lru_cache(maxsize=64)
def _scalar_types(dtypes: tuple[type, ...]) -> frozenset[type]:
    return frozenset(np.dtype(d).type for d in dtypes)


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
    if arr.dtype.kind not in "biuf" or arr.dtype.type not in _scalar_types(tuple(dtypes)):
        raise TypeError(
            f"{name} must have dtype {dtype_names(dtypes)}; got {arr.dtype}"
        )
    check_shape(arr, name, ndims)
    native = arr.dtype.newbyteorder("=")
    return contiguous(arr, dtype=native)


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
    if type(aperture_size) is int and aperture_size in (3, 5, 7):  # the usual call, without the ABC checks
        return aperture_size
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


# ---- enhance (median, bilateral) and cnn (conv2d) ---------------------------

MEDIAN_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
MEDIAN_BORDERS = {"reflect101": 0, "replicate": 1}
BILATERAL_DTYPES = (np.uint8, np.float32)
MAX_FILTER_SIZE = 1 << 20


def _integer(value: object, name: str) -> int:
    if type(value) is int:  # the common case, without the ABC checks below
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    return int(value)  # type: ignore[arg-type]


def median_size(size: object, ndim: int) -> tuple[int, ...]:
    """An odd integer >= 1, or one per axis."""
    if type(size) is int and size >= 1 and size % 2 == 1 and size <= MAX_FILTER_SIZE:  # the common case
        return (size,) * ndim
    if isinstance(size, (numbers.Integral, np.integer)) and not isinstance(size, (bool, np.bool_)):
        items: list[object] = [size] * ndim
    else:
        try:
            items = list(size)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"size must be an odd integer or a sequence of {ndim} odd integers; got {size!r}") from None
        if len(items) != ndim:
            raise ValueError(f"size must have one value per axis ({ndim}); got {len(items)}")
    out = []
    for item in items:
        s = _integer(item, "size")
        if s < 1 or s % 2 == 0 or s > MAX_FILTER_SIZE:
            raise ValueError(f"size values must be odd integers between 1 and {MAX_FILTER_SIZE}; got {s}")
        out.append(s)
    return tuple(out)


# float32 medians (and 16-bit windows of up to 49 values) select among every
# window value of every output: a window of more values than this would take
# hours on any real image (8- and 16-bit data use a sliding histogram instead,
# whose cost grows with the window's height x depth, and have no such limit).
MAX_SELECT_WINDOW = 1 << 21


def median_window(size: tuple[int, ...], dtype: np.dtype) -> None:
    n = math.prod(size)
    if dtype == np.float32 and n > MAX_SELECT_WINDOW:
        raise ValueError(
            f"size {size} gives a window of {n} values; float32 medians gather every window value "
            f"per output, so at most {MAX_SELECT_WINDOW} values are supported (8- and 16-bit images have no such limit)"
        )


def median_border(border: object) -> str:
    if not isinstance(border, str) or border not in MEDIAN_BORDERS:
        raise ValueError(f"border must be one of {', '.join(MEDIAN_BORDERS)}; got {border!r}")
    return border


def no_nan(arr: npt.NDArray, name: str = "image") -> None:
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; the median is undefined there (infinities are allowed)")


def bilateral_params(d: object, sigma_color: object, sigma_space: object) -> tuple[int, float, float, int]:
    """(d, sigma_color, sigma_space, radius) with cv2.bilateralFilter's radius rule."""
    dd = _integer(d, "d")
    sc = real_number(sigma_color, "sigma_color")
    ss = real_number(sigma_space, "sigma_space")
    if sc <= 0:
        raise ValueError(f"sigma_color must be > 0; got {sc:g}")
    if ss <= 0:
        raise ValueError(f"sigma_space must be > 0; got {ss:g}")
    radius = dd // 2 if dd > 0 else int(np.round(ss * 1.5))
    radius = max(radius, 1)
    if radius > 1024:
        raise ValueError(f"d (or 1.5 * sigma_space when d <= 0) gives a radius of {radius}; at most 1024 is supported")
    return dd, sc, ss, radius


def finite_image(arr: npt.NDArray, name: str = "image") -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity; the filter is undefined there")


def bilateral_range(img: npt.NDArray) -> None:
    """Refuse a float32 image whose value range max - min overflows float32 (rescale it first)."""
    if img.dtype == np.float32 and img.size:
        with np.errstate(over="ignore"):
            span = np.float32(img.max()) - np.float32(img.min())
        if not np.isfinite(span) and np.isfinite(img).all():  # NaN / inf: refused as such elsewhere
            raise ValueError("image's value range (max - min) overflows float32; rescale it first")


def pair(value: object, name: str, *, minimum: int) -> tuple[int, int]:
    """An integer or a pair of integers, each >= minimum."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        items: list[object] = [value, value]
    elif isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an integer or a pair of integers; got {value!r}")
    else:
        try:
            items = list(value)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"{name} must be an integer or a pair of integers; got {value!r}") from None
        if len(items) != 2:
            raise ValueError(f"{name} must be an integer or a pair of integers; got {len(items)} values")
    out = []
    for item in items:
        iv = _integer(item, name)
        if iv < minimum:
            raise ValueError(f"{name} values must be >= {minimum}; got {iv}")
        out.append(iv)
    return out[0], out[1]


def conv2d_args(
    x: object, weight: object, bias: object, stride: object, padding: object, dilation: object,
    groups: object, activation: object, *, float64: bool = False,
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray | None, tuple[int, int], tuple[int, int],
           tuple[int, int], int, str | None, tuple[int, int]]:
    """Validate conv2d arguments; returns arrays (C-contiguous, native) and the output size.

    float32 only, unless ``float64``: then x may also be float64 and weight
    (and bias) must have x's dtype.
    """
    xa = x if isinstance(x, np.ndarray) else np.asarray(x)
    wa = weight if isinstance(weight, np.ndarray) else np.asarray(weight)
    dt: np.dtype[Any] = np.dtype(np.float32)
    if float64 and xa.dtype.newbyteorder("=") == np.float64:
        dt = np.dtype(np.float64)
    for arr, name in ((xa, "x"), (wa, "weight")):
        if arr.dtype.newbyteorder("=") != dt:
            want = "float32" if not float64 else f"float32 or float64, the same for x and weight (x is {xa.dtype})"
            raise TypeError(f"{name} must have dtype {want}; got {arr.dtype}")
        if arr.ndim != 4:
            raise ValueError(f"{name} must be 4-dimensional ({'N, C, H, W' if name == 'x' else 'C_out, C_in/groups, kH, kW'}); got shape {arr.shape}")
        if 0 in arr.shape:
            raise ValueError(f"{name} is empty (shape {arr.shape})")
    g = _integer(groups, "groups")
    if g < 1:
        raise ValueError(f"groups must be >= 1; got {g}")
    _n, c, h, w = xa.shape
    co, cig, kh, kw = wa.shape
    if c % g or co % g:
        raise ValueError(f"groups={g} must divide the input channels ({c}) and the output channels ({co})")
    if cig * g != c:
        raise ValueError(f"weight expects {cig * g} input channels (C_in/groups={cig}, groups={g}); x has {c} (mismatched channels)")
    s = pair(stride, "stride", minimum=1)
    p = pair(padding, "padding", minimum=0)
    d = pair(dilation, "dilation", minimum=1)
    if activation is not None and not (isinstance(activation, str) and activation == "relu"):
        raise ValueError(f"activation must be None or 'relu'; got {activation!r}")
    ho = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (w + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    if ho < 1 or wo < 1:
        raise ValueError(
            f"weight (kernel {kh}x{kw}, dilation {d}) is larger than the padded input "
            f"({h + 2 * p[0]}x{w + 2 * p[1]}): the output would be empty"
        )
    native = dt.newbyteorder("=")
    ba = None
    if bias is not None:
        ba = bias if isinstance(bias, np.ndarray) else np.asarray(bias)
        if ba.dtype.newbyteorder("=") != dt:
            raise TypeError(f"bias must have dtype {dt.name} (as x); got {ba.dtype}")
        if ba.shape != (co,):
            raise ValueError(f"bias must have shape ({co},); got {ba.shape}")
        ba = contiguous(ba, dtype=native)
    return (contiguous(xa, dtype=native), contiguous(wa, dtype=native), ba,
            s, p, d, g, activation, (ho, wo))  # type: ignore[return-value]


# ---- morphology (label, regionprops_basic) ----------------------------------

_CONNECTIVITY_RANK = {2: {4: 1, 8: 2}, 3: {6: 1, 18: 2, 26: 3}}


def binary_image(image: object, name: str = "binary") -> npt.NDArray[np.uint8]:
    """A 2D/3D bool or integer array as a C-contiguous 0/1 uint8 array.

    Nonzero is foreground. TypeError for float, complex or object dtypes;
    ValueError for another ndim or an empty array.
    """
    arr = image if isinstance(image, np.ndarray) else np.asarray(image)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"{name} must be a bool or integer array (nonzero = foreground); got dtype {arr.dtype}")
    check_shape(arr, name)
    if arr.dtype.kind == "b":
        return contiguous(arr).view(np.uint8)
    return contiguous(arr != 0).view(np.uint8)


def connectivity_rank(connectivity: object, ndim: int) -> int:
    """4/8 (2D) or 6/18/26 (3D) as scipy's structure rank; None -> 1 (faces only)."""
    allowed = _CONNECTIVITY_RANK[ndim]
    if connectivity is None:
        return 1
    if isinstance(connectivity, (bool, np.bool_)) or not isinstance(connectivity, (numbers.Integral, np.integer)):
        raise TypeError(f"connectivity must be None or an integer; got {connectivity!r}")
    c = int(connectivity)  # type: ignore[arg-type]
    if c not in allowed:
        want = ", ".join(str(k) for k in allowed)
        raise ValueError(f"connectivity must be one of {want} (or None) for a {ndim}D image; got {c}")
    return allowed[c]


def label_image(labels: object, name: str = "labels") -> npt.NDArray[np.int64]:
    """A 2D/3D integer label image (>= 0) as a C-contiguous int64 array."""
    arr = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array; got dtype {arr.dtype}")
    check_shape(arr, name)
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} values must fit in int64")
    out = contiguous(arr, dtype=np.int64)
    if out.min() < 0:
        raise ValueError(f"{name} must be >= 0 (0 = background); got minimum {out.min()}")
    return out


def intensity_image(intensity: object, shape: tuple[int, ...], name: str = "intensity") -> npt.NDArray[np.float64]:
    arr = intensity if isinstance(intensity, np.ndarray) else np.asarray(intensity)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a bool, integer or float array; got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have the labels' shape {shape}; got {arr.shape}")
    out = contiguous(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinity; the mean is undefined there")
    return out


def connectivity_structure(rank: int, ndim: int) -> npt.NDArray[np.bool_]:
    """The 3x3(x3) structure of offsets with at most ``rank`` nonzero components
    (scipy.ndimage.generate_binary_structure(ndim, rank))."""
    return np.abs(np.indices((3,) * ndim) - 1).sum(axis=0) <= rank


def structure_element(structure: object, connectivity: object, ndim: int) -> npt.NDArray[np.bool_]:
    """A boolean structuring element: ``structure`` or one built from
    ``connectivity`` (not both); neither gives scipy's default (faces only)."""
    if structure is not None and connectivity is not None:
        raise ValueError("give structure or connectivity, not both")
    if structure is None:
        return connectivity_structure(connectivity_rank(connectivity, ndim), ndim)
    arr = structure if isinstance(structure, np.ndarray) else np.asarray(structure)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"structure must be a bool or integer array; got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"structure must have the image's {ndim} dimensions; got shape {arr.shape}")
    if any(n % 2 == 0 for n in arr.shape):
        raise ValueError(f"structure must have an odd size on every axis (centre = origin); got shape {arr.shape}")
    if not arr.any():
        raise ValueError("structure must contain at least one nonzero element")
    return arr != 0


def iteration_count(iterations: object, structure: npt.NDArray[np.bool_] | None = None) -> int:
    """An integer; < 1 means 'repeat until nothing changes' (scipy's rule).

    Repeating until stable needs a ``structure`` that contains its centre:
    then dilation only grows and erosion only shrinks the mask, so it stops.
    Without the centre the result can oscillate for ever (scipy.ndimage
    loops for ever on such input, e.g. a lone pixel dilated by [1, 0, 1]):
    refused rather than hanging.
    """
    it = _integer(iterations, "iterations")
    if it < 1 and structure is not None and not structure[tuple(n // 2 for n in structure.shape)]:
        raise ValueError(
            f"iterations={it} (< 1: repeat until the result stops changing) needs a structure that contains its "
            "centre; without it the result can oscillate for ever. Give a positive iteration count or set the "
            "structure's centre"
        )
    return it


def border_bit(border_value: object) -> int:
    if isinstance(border_value, (bool, np.bool_)):
        return int(border_value)
    b = _integer(border_value, "border_value")
    if b not in (0, 1):
        raise ValueError(f"border_value must be 0 or 1; got {b}")
    return b


# ---- hardening (issue 9): refuse outputs that cannot fit, before allocating --------


def memory_limit_bytes() -> int:
    """What one allocation may use at most: the machine's physical memory, or
    the process' address-space limit (RLIMIT_AS) when that is lower."""
    import os

    limit = 1 << 62
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            limit = min(limit, int(soft))
    except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX
        pass
    return int(limit)


def check_alloc(nbytes: int, what: str) -> None:
    """MemoryError naming ``what`` if ``nbytes`` (exact Python int, no
    overflow) exceed :func:`memory_limit_bytes`: such a request would fail or
    swap the machine after minutes; refuse it before allocating anything.
    Requests up to 16 MiB pass without querying the limits (two system calls
    per call, a tenth of a small histogram's time)."""
    if nbytes <= 1 << 24:
        return
    limit = memory_limit_bytes()
    if nbytes > limit:
        raise MemoryError(
            f"{what} would need {nbytes / 2**30:.3g} GiB, more than the {limit / 2**30:.3g} GiB "
            "of memory this process may use"
        )


def contiguous(a: object, dtype: object = None) -> np.ndarray:
    """``np.ascontiguousarray`` that also guarantees alignment: a misaligned
    view (e.g. ``np.ndarray(shape, dtype, buffer, offset=1)``) is C-contiguous
    and passes through ascontiguousarray unchanged, but the C++ kernels read
    it through a ``T*``, and a misaligned ``T*`` is undefined behaviour
    (found by UBSan in .ci/sanitize). Such an array is copied."""
    out = np.ascontiguousarray(a, dtype=dtype)  # type: ignore[call-overload]
    return out if out.flags.aligned else out.copy()
