"""Canny benchmark cases: inputs, implementations, and how each one is run.

One definition shared by the pytest-benchmark suite (``benchmarks/``) and
``medfuse bench --quick``, so both time the same inputs with the same
parameters. Inputs come from the synthetic chest phantom
(:mod:`medfuse.data.phantoms`); building them and converting them for other
libraries (8-bit windowing, float copies, SimpleITK images) happens in
:func:`prepare`, never inside the timed call.

Implementations and what makes them comparable:

* ``medfuse`` with 1 thread and with every core;
* ``reference``: the pure NumPy twin, where it takes seconds at most;
* ``cv2.Canny`` (8-bit 2D only) with ``cv2.setNumThreads`` matched to
  medfuse's count; int16 HU slices are given to it as an 8-bit lung-window
  copy with the thresholds converted to grey levels;
* ``skimage.feature.canny`` (2D, float, pure NumPy/SciPy): same sigma as the
  case (0 where nothing smooths), mirror border, L2 magnitude;
* SimpleITK ``CannyEdgeDetection`` for volumes: float32 copy with the voxel
  spacing, Gaussian variance sigma² in mm², thresholds divided by 8 (ITK
  thresholds the L2 gradient per voxel; medfuse's 3D Sobel magnitude is 8
  times that, after its own normalization) — comparable, not identical.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..data import phantoms as _phantoms
from ..kernels._threads import default_num_threads, get_num_threads, set_num_threads
from ..kernels.edges import canny
from ..reference import canny as reference_canny

__all__ = [
    "CASES",
    "QUICK_GROUPS",
    "Case",
    "Impl",
    "Prepared",
    "case",
    "implementations",
    "load_input",
    "pinned_threads",
    "prepare",
    "time_call",
]

LUNG_WINDOW = (-600.0, 1500.0)  # (center, width) HU of the 8-bit copies

# Module to import for each optional library (pytest.importorskip uses these).
OPTIONAL_MODULES = {"cv2": "cv2", "skimage": "skimage.feature", "sitk": "SimpleITK"}


@dataclass(frozen=True)
class Case:
    """One benchmark group: an input and the Canny parameters used on it."""

    group: str
    description: str
    kind: str  # "u8", "i16" or "f32" CT slice, "xray" (8-bit chest radiograph), or "volume" (int16 HU with spacing)
    shape: tuple[int, ...]
    low: float
    high: float
    sigma: float | None = None
    l2_gradient: bool = False
    reference: bool = True  # the NumPy twin is run (it takes seconds at most here)
    large: bool = False  # calls take seconds: time a few fixed rounds


CASES: tuple[Case, ...] = (
    Case(
        "canny-u8-512",
        "512x512 CT slice, 8-bit lung window; thresholds 50/150 grey levels",
        "u8",
        (512, 512),
        50.0,
        150.0,
    ),
    Case(
        "canny-u8-2048",
        "2048x2048 CT slice, 8-bit lung window; thresholds 50/150 grey levels",
        "u8",
        (2048, 2048),
        50.0,
        150.0,
    ),
    Case(
        "canny-u8-xray-512",
        "512x512 chest X-ray, 8-bit (projected from the CT phantom, grey-level noise SD 4); thresholds 35/110",
        "xray",
        (512, 512),
        35.0,
        110.0,
    ),
    Case(
        "canny-i16-ct-512",
        "512x512 CT slice, int16 HU; thresholds 200/500 HU, no smoothing",
        "i16",
        (512, 512),
        200.0,
        500.0,
    ),
    Case(
        "canny-f32-512",
        "512x512 CT slice, float32 HU; sigma=1, L2 magnitude, thresholds 200/500 HU",
        "f32",
        (512, 512),
        200.0,
        500.0,
        sigma=1.0,
        l2_gradient=True,
    ),
    Case(
        "canny-i16-volume-32x128x128",
        "32x128x128 CT volume, int16 HU, spacing (5, 2.8, 2.8) mm; sigma=1 mm, L2, 200/500 HU",
        "volume",
        (32, 128, 128),
        200.0,
        500.0,
        sigma=1.0,
        l2_gradient=True,
    ),
    Case(
        "canny-i16-volume-128x512x512",
        "128x512x512 CT volume, int16 HU, spacing (1.25, 0.7, 0.7) mm; sigma=1 mm, L2, 200/500 HU",
        "volume",
        (128, 512, 512),
        200.0,
        500.0,
        sigma=1.0,
        l2_gradient=True,
        reference=False,  # tens of seconds and many GB in the NumPy twin
        large=True,
    ),
)

QUICK_GROUPS = ("canny-u8-512", "canny-i16-ct-512", "canny-f32-512", "canny-i16-volume-32x128x128")


def case(group: str) -> Case:
    """The case of a benchmark group, by name."""
    for c in CASES:
        if c.group == group:
            return c
    raise KeyError(f"no benchmark case {group!r}; known: {', '.join(c.group for c in CASES)}")


def _xray_u8(shape: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """A frontal chest radiograph of the phantom (12-bit detector values), linearly resampled to ``shape``,
    stretched to 0-255, with Gaussian grey-level noise of SD 4 (seeded), rounded to uint8."""
    ph = _phantoms.ct_phantom((64, 256, 256), seed=0)
    raw = _phantoms.xray_from_ct(ph.volume, ph.spacing, bits=12).astype(np.float64)
    rows, cols = raw.shape
    yi = (np.arange(shape[0]) + 0.5) * rows / shape[0] - 0.5
    xi = (np.arange(shape[1]) + 0.5) * cols / shape[1] - 0.5
    across = np.stack([np.interp(xi, np.arange(cols), r) for r in raw])  # (rows, shape[1])
    img = np.stack([np.interp(yi, np.arange(rows), col) for col in across.T], axis=1)  # (shape[0], shape[1])
    img = (img - img.min()) * (255.0 / max(float(np.ptp(img)), 1.0))
    img += np.random.default_rng(shape[0]).normal(0.0, 4.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@functools.cache
def load_input(group: str) -> tuple[npt.NDArray[Any], tuple[float, float, float] | None]:
    """The case's input (built once, then cached) and its spacing for volumes."""
    c = case(group)
    if c.kind == "volume":
        ph = _phantoms.ct_phantom(c.shape, seed=0)  # type: ignore[arg-type]
        return ph.volume, ph.spacing
    if c.kind == "xray":
        return _xray_u8(c.shape), None  # type: ignore[arg-type]
    hu = _phantoms.ct_phantom((1, *c.shape), seed=0).volume[0]  # type: ignore[arg-type]
    if c.kind == "u8":
        return _phantoms.window_u8(hu, *LUNG_WINDOW), None
    if c.kind == "f32":
        return hu.astype(np.float32), None
    return hu, None


@dataclass(frozen=True)
class Impl:
    """An implementation and the thread count it runs with (None: NumPy code)."""

    family: str  # "medfuse", "reference", "cv2", "skimage" or "sitk"
    threads: int | None = None

    @property
    def id(self) -> str:
        """Short name, e.g. ``medfuse-2t`` or ``reference`` (pytest parameter ids)."""
        return self.family if self.threads is None else f"{self.family}-{self.threads}t"

    @classmethod
    def from_id(cls, text: str) -> Impl:
        """Inverse of :attr:`id`."""
        family, _, threads = text.partition("-")
        if not threads:
            return cls(family)
        if not threads.endswith("t") or not threads[:-1].isdigit():
            raise ValueError(f"not an implementation id: {text!r}")
        return cls(family, int(threads[:-1]))

    def __str__(self) -> str:
        return self.id

    def label(self, c: Case) -> str:
        """Human-readable name with everything that makes the timing fair or not."""
        t = "" if self.threads is None else f", {self.threads} thread{'s' * (self.threads > 1)}"
        if self.family == "medfuse":
            return f"medfuse{t}"
        if self.family == "reference":
            return "medfuse.reference (NumPy)"
        if self.family == "cv2":
            copy = " (8-bit windowed copy)" if c.kind == "i16" else ""
            return f"cv2.Canny{t}{copy}"
        if self.family == "skimage":
            dtype = "float32" if c.kind == "f32" else "float64 copy"
            return f"skimage.feature.canny ({dtype}, sigma={c.sigma or 0:g})"
        return f"SimpleITK CannyEdgeDetection{t} (float32 copy)"


def implementations(c: Case) -> list[Impl]:
    """Every implementation that applies to a case (installed or not)."""
    counts = sorted({1, default_num_threads()})
    impls = [Impl("medfuse", n) for n in counts]
    if c.reference:
        impls.append(Impl("reference"))
    if c.kind in ("u8", "xray", "i16"):
        impls += [Impl("cv2", n) for n in counts]
    if c.kind == "volume":
        impls += [Impl("sitk", n) for n in counts]
    else:
        impls.append(Impl("skimage"))
    return impls


@dataclass(frozen=True)
class Prepared:
    """A ready-to-time call and what its result must agree with."""

    run: Callable[[], Any]  # the timed call; inputs are already converted
    edges: Callable[[Any], npt.NDArray[np.bool_]]  # its result as a boolean edge map
    threads: int | None  # medfuse / cv2 thread count to pin while running
    expected: Callable[[], npt.NDArray[np.uint8]] | None = None  # must equal run()
    expected_name: str = ""


def _canny_kwargs(c: Case, spacing: tuple[float, float, float] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"l2_gradient": c.l2_gradient}
    if c.sigma is not None:
        kwargs["sigma"] = c.sigma
    if spacing is not None:
        kwargs["spacing"] = spacing
    return kwargs


def _medfuse_call(group: str) -> Callable[[], npt.NDArray[np.uint8]]:
    c = case(group)
    image, spacing = load_input(group)
    kwargs = _canny_kwargs(c, spacing)
    return lambda: canny(image, c.low, c.high, **kwargs)


@functools.cache
def _reference_result(group: str) -> npt.NDArray[np.uint8]:
    c = case(group)
    image, spacing = load_input(group)
    return reference_canny(image, c.low, c.high, **_canny_kwargs(c, spacing))


@functools.cache
def _medfuse_one_thread_result(group: str) -> npt.NDArray[np.uint8]:
    with pinned_threads(1):
        return _medfuse_call(group)()


def _nonzero(result: Any) -> npt.NDArray[np.bool_]:
    edges: npt.NDArray[np.bool_] = np.asarray(result) != 0
    return edges


def prepare(c: Case, impl: Impl) -> Prepared:
    """Convert the case's input for ``impl`` and return the call to time.

    Raises ImportError if the implementation's library is not installed.
    """
    image, spacing = load_input(c.group)
    kwargs = _canny_kwargs(c, spacing)

    if impl.family == "medfuse":
        expected: Callable[[], npt.NDArray[np.uint8]] | None = None
        name = ""
        if c.reference:
            expected, name = functools.partial(_reference_result, c.group), "medfuse.reference"
        elif impl.threads != 1:
            expected, name = functools.partial(_medfuse_one_thread_result, c.group), "medfuse, 1 thread"
        return Prepared(_medfuse_call(c.group), _nonzero, impl.threads, expected, name)

    if impl.family == "reference":
        return Prepared(lambda: reference_canny(image, c.low, c.high, **kwargs), _nonzero, None)

    if impl.family == "cv2":
        import cv2

        if c.kind in ("u8", "xray"):
            img8, low, high = image, c.low, c.high
            expected = functools.partial(_medfuse_one_thread_result, c.group)
            name = "medfuse, 1 thread"
        else:  # int16 HU: an 8-bit lung-window copy, thresholds in grey levels
            center, width = LUNG_WINDOW
            img8 = _phantoms.window_u8(image, center, width)
            low, high = c.low * 255.0 / width, c.high * 255.0 / width

            def expected() -> npt.NDArray[np.uint8]:
                with pinned_threads(1):
                    return canny(img8, low, high, l2_gradient=c.l2_gradient)

            name = "medfuse on the same 8-bit copy"
        return Prepared(
            lambda: cv2.Canny(img8, low, high, L2gradient=c.l2_gradient),
            _nonzero,
            impl.threads,
            expected,
            name,
        )

    if impl.family == "skimage":
        from skimage import feature

        sk_canny: Any = feature.canny  # untyped library
        data = image if image.dtype == np.float32 else image.astype(np.float64)
        sigma = c.sigma or 0.0
        return Prepared(
            lambda: sk_canny(data, sigma=sigma, low_threshold=c.low, high_threshold=c.high, mode="mirror"),
            _nonzero,
            None,
        )

    if impl.family == "sitk":
        import SimpleITK

        sitk: Any = SimpleITK  # untyped library
        assert spacing is not None
        itk_image = sitk.GetImageFromArray(image.astype(np.float32))
        itk_image.SetSpacing(tuple(reversed(spacing)))  # ITK orders axes x, y, z
        filt = sitk.CannyEdgeDetectionImageFilter()
        filt.SetNumberOfThreads(impl.threads or 1)
        filt.SetLowerThreshold(c.low / 8.0)
        filt.SetUpperThreshold(c.high / 8.0)
        filt.SetVariance([(c.sigma or 0.0) ** 2] * 3)
        filt.SetMaximumError([0.01] * 3)
        return Prepared(
            lambda: filt.Execute(itk_image),
            lambda out: sitk.GetArrayViewFromImage(out) != 0,
            None,
        )

    raise ValueError(f"unknown implementation family {impl.family!r}")


@contextlib.contextmanager
def pinned_threads(n: int | None) -> Iterator[None]:
    """Run with medfuse's and (if imported) OpenCV's thread counts set to ``n``.

    ``None`` leaves both alone. The previous counts are restored on exit.
    """
    if n is None:
        yield
        return
    import sys

    cv2 = sys.modules.get("cv2")
    saved = get_num_threads()
    saved_cv2 = cv2.getNumThreads() if cv2 is not None else None
    set_num_threads(n)
    if cv2 is not None:
        cv2.setNumThreads(n)
    try:
        yield
    finally:
        set_num_threads(saved)
        if cv2 is not None and saved_cv2 is not None:
            cv2.setNumThreads(saved_cv2)


def time_call(
    fn: Callable[[], Any], *, budget: float = 0.25, min_runs: int = 3, max_runs: int = 200
) -> float:
    """Median wall time of ``fn()`` in seconds, after one untimed warm-up call.

    Runs at least ``min_runs`` times and stops after ``budget`` seconds or
    ``max_runs`` runs.
    """
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (len(times) < max_runs and time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
