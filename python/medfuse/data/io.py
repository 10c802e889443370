"""Reading CT volumes, X-rays and report text into NumPy arrays and strings.

Orientation convention (shared with :mod:`medfuse.data.phantoms` and the
kernels): a CT volume is indexed ``(z, y, x)`` with

- z from the head (index 0, superior) to the feet (inferior),
- y from anterior (index 0) to posterior,
- x from the patient's right (index 0, image left, radiological display)
  to the patient's left,

which is the order of a standard axial DICOM series (rows run along +y,
columns along +x of the LPS patient frame) read superior slice first.
``spacing`` is ``(dz, dy, dx)`` in mm and ``origin`` is the LPS position
(x, y, z) in mm of voxel ``[0, 0, 0]``.

Every reading problem raises :class:`MedfuseIOError` (a ``ValueError``) or
:class:`MedfuseFileNotFoundError` (a ``FileNotFoundError``), both carrying
the offending ``path``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt

__all__ = [
    "AUDIO_EXTENSIONS",
    "CT_EXTENSIONS",
    "REPORT_EXTENSIONS",
    "XRAY_EXTENSIONS",
    "MedfuseFileNotFoundError",
    "MedfuseIOError",
    "Volume",
    "read_audio",
    "read_ct",
    "read_report",
    "read_xray",
]

PathLike = Union[str, "os.PathLike[str]"]

# File suffixes each reader accepts (a CT may also be a folder of DICOM files).
CT_EXTENSIONS = (".nii", ".nii.gz", ".npy", ".npz", ".dcm")
XRAY_EXTENSIONS = (".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")
REPORT_EXTENSIONS = (".txt",)
AUDIO_EXTENSIONS = (".wav", ".flac")

_INT16_MIN, _INT16_MAX = -32768, 32767


class MedfuseIOError(ValueError):
    """A file exists but cannot be read as asked; ``path`` names it."""

    def __init__(self, message: str, path: PathLike | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(message if path is None else f"{message} [{self.path}]")


class MedfuseFileNotFoundError(FileNotFoundError):
    """A path given to a reader does not exist; ``path`` names it."""

    def __init__(self, message: str, path: PathLike) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{message} [{self.path}]")


@dataclass
class Volume:
    """A CT volume in HU with its geometry.

    ``array`` is int16 HU, (z, y, x) as in the module docstring; ``spacing``
    is (dz, dy, dx) mm; ``origin`` the LPS position (x, y, z) mm of voxel
    [0, 0, 0] (None when the source has no geometry); ``metadata`` holds
    what matters downstream: ``modality``, ``series_uid``, ``patient_id``,
    ``slice_thickness``, ``source`` (path), ``format``.

    ``affine`` (4 x 4 float64) maps a voxel index ``(z, y, x, 1)`` of
    ``array`` to LPS patient coordinates ``(x, y, z, 1)`` in mm. Readers
    set it from the file's geometry (DICOM: ImagePositionPatient,
    ImageOrientationPatient, PixelSpacing and the slice order, so oblique
    and flipped series are exact; NIfTI: the header affine); when it is not
    given it is built from ``spacing`` and ``origin`` (zero when None) with
    medfuse's axes: z runs superior -> inferior, y anterior -> posterior,
    x right -> left. :func:`medfuse.data.io.write_nifti` uses it, so masks
    written for a volume overlay it in any viewer.
    """

    array: npt.NDArray[np.int16]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    affine: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        if self.affine is None:
            self.affine = axis_affine(self.spacing, self.origin)
        else:
            a = np.asarray(self.affine, dtype=np.float64)
            if a.shape != (4, 4) or not np.all(np.isfinite(a)):
                raise ValueError(f"affine must be a finite 4 x 4 matrix; got shape {a.shape}")
            self.affine = a

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self.array.shape
        return (int(s[0]), int(s[1]), int(s[2]))


def axis_affine(
    spacing: Sequence[float], origin: Sequence[float] | None = None
) -> npt.NDArray[np.float64]:
    """Index (z, y, x, 1) -> LPS (x, y, z, 1) mm for medfuse's axis convention."""
    dz, dy, dx = (float(v) for v in spacing)
    ox, oy, oz = (0.0, 0.0, 0.0) if origin is None else (float(v) for v in origin)
    return np.array(
        [[0.0, 0.0, dx, ox], [0.0, dy, 0.0, oy], [-dz, 0.0, 0.0, oz], [0.0, 0.0, 0.0, 1.0]], dtype=np.float64
    )


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _exists(path: Path, what: str) -> None:
    if not path.exists():
        raise MedfuseFileNotFoundError(f"{what} not found", path)


def _guarded(read: Any, path: Path, what: str) -> Any:
    """Run ``read()``; any exception a malformed file provokes in pydicom,
    nibabel, cv2 or NumPy (AttributeError for a missing DICOM element,
    TypeError/KeyError/IndexError/struct.error for a corrupt header, ...)
    becomes a MedfuseIOError naming ``path``. Our own errors pass through."""
    try:
        return read()
    except (MedfuseIOError, MedfuseFileNotFoundError):
        raise
    except MemoryError as err:
        raise MedfuseIOError(f"not enough memory to read this {what} (corrupt size fields?)", path) from err
    except Exception as err:
        raise MedfuseIOError(f"malformed {what}: {type(err).__name__}: {err}", path) from err


# --------------------------------------------------------------------------- CT


def read_ct(
    path: PathLike,
    *,
    spacing: tuple[float, float, float] | None = None,
    allow_gaps: bool = False,
    allow_non_ct: bool = False,
) -> Volume:
    """Read a CT volume as int16 HU, (z, y, x), head first.

    ``path`` may be:

    - a folder holding one DICOM series (every regular file in it is read;
      files that are not DICOM are an error), or a single ``.dcm`` file: a
      one-slice image, or an enhanced (multi-frame) CT whose frames become
      the slices. Slices and frames are ordered by their position
      (ImagePositionPatient; for an enhanced CT each frame's
      PlanePositionSequence) projected on the slice normal (the cross
      product of the two ImageOrientationPatient directions), superior first
      for an axial series, never by file name or frame number.
      RescaleSlope/RescaleIntercept are applied (for an enhanced CT from the
      PixelValueTransformationSequence, per frame or shared); HU outside
      int16 are refused (no silent clipping). Several SeriesInstanceUIDs in
      one folder are an error naming them.

      Spacing: dy, dx from PixelSpacing (for an enhanced CT, the
      PixelMeasuresSequence), which must be present and positive. dz, first
      rule that applies wins:

      1. two or more slices: the step between the slice positions, which
         must be even. SpacingBetweenSlices and SliceThickness are ignored
         (thickness is not spacing when slices overlap or have gaps). A
         missing slice is an error naming the positions around the gap
         unless ``allow_gaps=True`` (then dz is the smallest step and the
         gap is recorded in ``metadata['gaps_mm']``).
      2. one slice: SpacingBetweenSlices when positive,
      3. else SliceThickness when positive,
      4. else an error (pass ``spacing=``).

      ``metadata['spacing_source']`` says which rule gave dz.
      The Modality must be CT: a radiograph (CR, DX), MR, PET... is refused
      unless ``allow_non_ct=True`` (the values are then the rescaled stored
      values, not HU).
    - a NIfTI file (``.nii``, ``.nii.gz``): reoriented with
      ``nibabel.as_closest_canonical`` (RAS+) and then flipped/transposed
      to medfuse's (z, y, x) = (S->I, A->P, R->L); spacing from the header
      zooms. Oblique affines are snapped to the closest axes.
    - ``.npy`` (a 3D array, already (z, y, x)); ``.npz`` with a ``volume``
      (or ``array``, or single) array and optional ``spacing`` and
      ``origin`` arrays. ``spacing=`` overrides; without either the spacing
      is (1, 1, 1) and ``metadata['spacing_source']`` says it was assumed.

    ``spacing=(dz, dy, dx)`` overrides what the file says, for every format.
    Float arrays are rounded to the nearest HU; NaN/inf and values outside
    int16 raise :class:`MedfuseIOError`.
    """
    p = Path(os.fspath(path))
    _exists(p, "CT path")
    if spacing is not None:
        spacing = _check_spacing(spacing)  # a bad argument is a ValueError, not a file error
    return _guarded(lambda: _read_ct(p, spacing, allow_gaps, bool(allow_non_ct)), p, "CT file")  # type: ignore[no-any-return]


def _read_ct(p: Path, spacing: tuple[float, float, float] | None, allow_gaps: bool, allow_non_ct: bool) -> Volume:
    if p.is_dir():
        return _read_dicom_files(_dicom_files(p), p, allow_gaps=allow_gaps, spacing=spacing, allow_non_ct=allow_non_ct)
    suffix = _suffix(p)
    if suffix == ".dcm":
        return _read_dicom_files([p], p, allow_gaps=allow_gaps, spacing=spacing, allow_non_ct=allow_non_ct)
    if suffix in (".nii", ".nii.gz"):
        return _read_nifti(p, spacing)
    if suffix in (".npy", ".npz"):
        return _read_numpy_ct(p, spacing)
    raise MedfuseIOError(
        f"unsupported CT file type {suffix or '(no suffix)'!r}; expected a DICOM series folder "
        f"or one of {', '.join(CT_EXTENSIONS)}",
        p,
    )


def _to_hu_int16(values: npt.NDArray[Any], path: Path) -> npt.NDArray[np.int16]:
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise MedfuseIOError("CT contains NaN or infinite values", path)
        arr = np.rint(arr)
    elif arr.dtype.kind not in "iub":
        raise MedfuseIOError(f"CT array has non-numeric dtype {arr.dtype}", path)
    if arr.size:
        lo, hi = float(arr.min()), float(arr.max())
        if lo < _INT16_MIN or hi > _INT16_MAX:
            raise MedfuseIOError(
                f"CT values span [{lo:g}, {hi:g}] HU, outside int16 [{_INT16_MIN}, {_INT16_MAX}]; "
                "refusing to clip (check RescaleSlope/RescaleIntercept)",
                path,
            )
    return np.ascontiguousarray(arr.astype(np.int16))


def _check_spacing(spacing: object, name: str = "spacing") -> tuple[float, float, float]:
    try:
        vals = tuple(float(s) for s in np.asarray(spacing, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be three positive numbers (dz, dy, dx) in mm; got {spacing!r}") from None
    if len(vals) != 3 or not all(np.isfinite(v) and v > 0 for v in vals):
        raise ValueError(f"{name} must be three positive numbers (dz, dy, dx) in mm; got {spacing!r}")
    return (vals[0], vals[1], vals[2])


def _read_numpy_ct(p: Path, spacing: tuple[float, float, float] | None) -> Volume:
    origin: tuple[float, float, float] | None = None
    stored_spacing = None
    try:
        # our own handle: np.load(path) leaks its file when a corrupt .npz
        # fails inside NpzFile (ResourceWarning), found by tests/fuzz
        with open(p, "rb") as fh:
            if _suffix(p) == ".npy":
                arr = np.load(fh, allow_pickle=False)
            else:
                with np.load(fh, allow_pickle=False) as z:
                    keys = list(z.keys())
                    key = next((k for k in ("volume", "array", "ct") if k in keys), None)
                    if key is None:
                        data_keys = [k for k in keys if k not in ("spacing", "origin")]
                        if len(data_keys) != 1:
                            raise MedfuseIOError(
                                f"npz holds arrays {keys}; expected 'volume' (or one array) "
                                "plus optional 'spacing' and 'origin'",
                                p,
                            )
                        key = data_keys[0]
                    arr = z[key]
                    if "spacing" in keys:
                        stored_spacing = z["spacing"]
                    if "origin" in keys:
                        o = [float(v) for v in z["origin"].ravel()[:3]]
                        if len(o) != 3:
                            raise MedfuseIOError(f"stored origin must have 3 values; got {o}", p)
                        origin = (o[0], o[1], o[2])
    except MedfuseIOError:
        raise
    except Exception as err:  # numpy raises several types for corrupt files
        raise MedfuseIOError(f"cannot read NumPy file: {err}", p) from err
    if arr.ndim != 3:
        raise MedfuseIOError(f"CT array must be 3D (z, y, x); got shape {arr.shape}", p)
    meta: dict[str, Any] = {"source": os.fspath(p), "format": _suffix(p).lstrip(".")}
    if spacing is not None:
        sp = _check_spacing(spacing)
        meta["spacing_source"] = "argument"
    elif stored_spacing is not None:
        try:
            sp = _check_spacing(stored_spacing)
        except ValueError as err:
            raise MedfuseIOError(f"stored {err}", p) from None
        meta["spacing_source"] = "file"
    else:
        sp = (1.0, 1.0, 1.0)
        meta["spacing_source"] = "assumed (1, 1, 1) mm: the file stores no spacing"
    return Volume(_to_hu_int16(arr, p), sp, origin, meta)


def _read_nifti(p: Path, spacing: tuple[float, float, float] | None) -> Volume:
    import nibabel as nib

    try:
        img = nib.load(os.fspath(p))
        canon = nib.as_closest_canonical(img)  # type: ignore[no-untyped-call]
        data = np.asanyarray(canon.dataobj)
        zooms = canon.header.get_zooms()[:3]
        affine = canon.affine
    except Exception as err:
        raise MedfuseIOError(f"cannot read NIfTI file: {err}", p) from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MedfuseIOError(f"NIfTI image must be 3D; got shape {data.shape}", p)
    # Canonical axes (i, j, k) point to R, A, S; medfuse wants (S->I, A->P, R->L).
    out = data[::-1, ::-1, ::-1].transpose(2, 1, 0)
    ni, nj, nk = data.shape
    corner_ras = affine @ np.array([ni - 1, nj - 1, nk - 1, 1.0])
    origin = (float(-corner_ras[0]), float(-corner_ras[1]), float(corner_ras[2]))  # RAS -> LPS
    sp = _check_spacing(spacing) if spacing is not None else (float(zooms[2]), float(zooms[1]), float(zooms[0]))
    meta = {"source": os.fspath(p), "format": "nifti", "modality": "CT"}
    # out[z, y, x] = data[ni-1-x, nj-1-y, nk-1-z]; RAS -> LPS flips the first two axes.
    index_to_ijk = np.array(
        [[0.0, 0.0, -1.0, ni - 1], [0.0, -1.0, 0.0, nj - 1], [-1.0, 0.0, 0.0, nk - 1], [0.0, 0.0, 0.0, 1.0]]
    )
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64) @ index_to_ijk
    if spacing is not None:  # the caller's spacing overrides the header: keep the directions, rescale
        lps = _rescaled(lps, sp)
    return Volume(_to_hu_int16(out, p), sp, origin, meta, lps)


def _rescaled(affine: npt.NDArray[np.float64], spacing: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    """The affine with its column lengths (voxel sizes along z, y, x) set to ``spacing``."""
    out = affine.copy()
    for col, step in enumerate(spacing):
        norm = float(np.linalg.norm(out[:3, col]))
        out[:3, col] = out[:3, col] / norm * step if norm > 0 else 0.0
    return out


def _dicom_files(folder: Path) -> list[Path]:
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        raise MedfuseIOError("DICOM series folder is empty", folder)
    return files


def _dcmread(f: Path, *, header_only: bool = False) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(f, stop_before_pixels=header_only)
    except InvalidDicomError as err:
        raise MedfuseIOError(f"not a DICOM file ({err})", f) from err
    except Exception as err:
        raise MedfuseIOError(f"cannot read DICOM file: {err}", f) from err


# Uncompressed little-endian transfer syntaxes: implicit and explicit VR.
_NATIVE_LE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
_NATIVE_DTYPES: dict[tuple[int, int], np.dtype[Any]] = {
    (8, 0): np.dtype(np.uint8), (8, 1): np.dtype(np.int8), (16, 0): np.dtype("<u2"), (16, 1): np.dtype("<i2")}


def _pixels(ds: Any) -> npt.NDArray[Any]:
    """``ds.pixel_array``, with uncompressed little-endian single-frame grayscale
    (every CT and most X-ray files) read straight from PixelData: the same
    values as pydicom (unused high bits shifted out, sign-extended when
    signed), without its decoder pipeline (a third of read_ct's time)."""
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts in _NATIVE_LE and "PixelData" in ds:
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            allocated, stored = int(ds.BitsAllocated), int(ds.get("BitsStored", ds.BitsAllocated))
            key = (allocated, int(ds.PixelRepresentation))
            simple = (int(ds.get("SamplesPerPixel", 1) or 1) == 1 and int(ds.get("NumberOfFrames", 1) or 1) == 1
                      and key in _NATIVE_DTYPES and 0 < stored <= allocated and rows > 0 and cols > 0)
        except (AttributeError, TypeError, ValueError):
            simple = False
        if simple:
            raw = ds.PixelData
            dt = _NATIVE_DTYPES[key]
            if isinstance(raw, bytes) and len(raw) >= rows * cols * dt.itemsize:
                px = np.frombuffer(raw, dt, count=rows * cols).reshape(rows, cols).astype(dt.newbyteorder("="))
                shift = allocated - stored
                if shift:  # as pydicom: drop the unused high bits (arithmetic shift when signed)
                    np.left_shift(px, shift, out=px)
                    np.right_shift(px, shift, out=px)
                return px
    return ds.pixel_array


@dataclass
class _Plane:
    """One 2D image of a DICOM CT: a single-frame file or one frame of an enhanced (multi-frame) file."""

    source: Path
    ds: Any
    frame: int | None  # index in a multi-frame file; None for a single-frame file
    position: npt.NDArray[np.float64] | None
    orientation: npt.NDArray[np.float64] | None
    pixel_spacing: Any  # the PixelSpacing element's value (or None)
    slice_thickness: float | None
    spacing_between: float | None
    slope: float
    intercept: float


def _positive(value: Any) -> float | None:
    """A DICOM numeric value as a positive float, or None when absent, empty, zero or not a number."""
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _floats(value: Any, n: int) -> npt.NDArray[np.float64] | None:
    if value is None:
        return None
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.isfinite(out).all() else None


def _group_item(ds: Any, frame: int, sequence: str) -> Any:
    """Functional group ``sequence``'s item for ``frame``: the per-frame group wins over the shared one."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        seq = per_frame[frame].get(sequence)
        if seq:
            return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(sequence)
        if seq:
            return seq[0]
    return None


def _number_text(ds: Any, keyword: str) -> Any:
    """``ds.get(keyword)`` for a DS/IS element, parsed straight from its raw
    bytes while pydicom has not decoded it (its DS conversion was a quarter of
    read_ct's time on a 48-slice series): a float, a list of floats, '' when
    empty, None when absent. Anything else (another VR, text that is not a
    number) goes through pydicom, as before."""
    from pydicom.dataelem import RawDataElement

    elem = ds.get_item(keyword)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and elem.VR in ("DS", "IS", None) and isinstance(elem.value, bytes):
        try:
            text = elem.value.decode("ascii").strip(" \0")
            if not text:
                return ""
            vals = [float(part) for part in text.split("\\")]
        except (UnicodeDecodeError, ValueError):
            return ds.get(keyword)
        return vals[0] if len(vals) == 1 else vals
    return ds.get(keyword)


def _planes_of(f: Path, ds: Any) -> list[_Plane]:
    """The planes of one DICOM file: itself, or each frame of an enhanced multi-frame file."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        return [
            _Plane(
                f, ds, None,
                _floats(_number_text(ds, "ImagePositionPatient"), 3),
                _floats(_number_text(ds, "ImageOrientationPatient"), 6),
                _number_text(ds, "PixelSpacing"),
                _positive(_number_text(ds, "SliceThickness")),
                _positive(_number_text(ds, "SpacingBetweenSlices")),
                float(_number_text(ds, "RescaleSlope") or 1.0),
                float(_number_text(ds, "RescaleIntercept") or 0.0),
            )
        ]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != n_frames:
        have = "no" if per_frame is None else f"{len(per_frame)}"
        raise MedfuseIOError(
            f"multi-frame DICOM with {n_frames} frames has {have} PerFrameFunctionalGroupsSequence items; "
            "cannot place its frames",
            f,
        )
    planes = []
    for k in range(n_frames):
        position = _group_item(ds, k, "PlanePositionSequence")
        orientation = _group_item(ds, k, "PlaneOrientationSequence")
        measures = _group_item(ds, k, "PixelMeasuresSequence")
        rescale = _group_item(ds, k, "PixelValueTransformationSequence")
        if position is None or _floats(position.get("ImagePositionPatient"), 3) is None:
            raise MedfuseIOError(f"frame {k + 1} of {n_frames} has no PlanePositionSequence position; cannot place it", f)

        def field(item: Any, name: str, default: Any = None) -> Any:
            return item.get(name, default) if item is not None else default

        planes.append(
            _Plane(
                f, ds, k,
                _floats(position.get("ImagePositionPatient"), 3),
                _floats(field(orientation, "ImageOrientationPatient", ds.get("ImageOrientationPatient")), 6),
                field(measures, "PixelSpacing", ds.get("PixelSpacing")),
                _positive(field(measures, "SliceThickness", ds.get("SliceThickness"))),
                _positive(field(measures, "SpacingBetweenSlices", ds.get("SpacingBetweenSlices"))),
                float(field(rescale, "RescaleSlope", ds.get("RescaleSlope", 1.0)) or 1.0),
                float(field(rescale, "RescaleIntercept", ds.get("RescaleIntercept", 0.0)) or 0.0),
            )
        )
    return planes


def _order_planes(
    planes: list[_Plane], where: Path
) -> tuple[list[tuple[float, npt.NDArray[np.float64], _Plane]], npt.NDArray[np.float64], npt.NDArray[np.float64],
           npt.NDArray[np.float64]]:
    """Planes sorted along the slice normal, superior first: (position on the normal, position, plane) each, the
    projections, the steps between them and the normal. Refused: missing orientation or position (with more than one plane),
    two planes at one position, steps that are not whole multiples of the smallest (gaps are the caller's)."""
    iop = planes[0].orientation
    if iop is not None:
        normal = np.cross(iop[:3], iop[3:])
    elif len(planes) > 1:
        raise MedfuseIOError("DICOM slices lack ImageOrientationPatient; cannot order them", where)
    else:
        normal = np.array([0.0, 0.0, 1.0])
    if len(planes) > 1 and any(pl.position is None for pl in planes):
        bad = next(pl for pl in planes if pl.position is None)
        raise MedfuseIOError("DICOM slice lacks ImagePositionPatient; cannot order it", bad.source)
    keyed = []
    for pl in planes:
        pos = pl.position if pl.position is not None else np.zeros(3)
        keyed.append((float(pos @ normal), pos, pl))
    # Superior first: descending along the normal when it points up (+z in LPS).
    descending = normal[2] >= 0
    keyed.sort(key=lambda s: -s[0] if descending else s[0])
    proj = np.array([s[0] for s in keyed])
    steps = np.abs(np.diff(proj))
    if steps.size:
        if np.any(steps < 1e-3):
            dup = [float(proj[i]) for i in np.nonzero(steps < 1e-3)[0]]
            raise MedfuseIOError(f"several slices share a position along the slice normal: {dup} mm", where)
        ratios = steps / float(np.min(steps))
        if np.any(np.abs(ratios - np.rint(ratios)) > 0.05):
            raise MedfuseIOError(
                f"slice positions are not evenly spaced (steps {np.unique(np.round(steps, 3)).tolist()} mm)", where
            )
    return keyed, proj, steps, normal


# Projection radiography modalities (DICOM PS3.3 C.7.3.1.1.1): 2D images, not volumes.
_RADIOGRAPHY = frozenset({"CR", "DX", "MG", "RF", "XA", "PX", "IO", "RG"})


def _check_modality(ds: Any, where: Path, allow_non_ct: bool) -> str:
    modality = str(ds.get("Modality", "") or "").strip()
    if modality != "CT" and not allow_non_ct:
        sop = ds.get("SOPClassUID")
        name = str(getattr(sop, "name", "") or "") if sop is not None else ""
        kind = f" ({name})" if name else ""
        found = f"Modality {modality!r}" if modality else "no Modality (0008,0060)"
        hint = "an X-ray belongs in read_xray / the manifest's xray column; " if modality in _RADIOGRAPHY else ""
        raise MedfuseIOError(
            f"DICOM has {found}{kind}, not CT; read_ct reads CT only "
            f"({hint}pass allow_non_ct=True to read it as a volume anyway)",
            where,
        )
    return modality


def _read_dicom_files(
    files: list[Path],
    where: Path,
    *,
    allow_gaps: bool,
    spacing: tuple[float, float, float] | None,
    allow_non_ct: bool = False,
) -> Volume:
    headers = [(f, _dcmread(f)) for f in files]
    series: dict[str, list[Path]] = {}
    for f, ds in headers:
        series.setdefault(str(getattr(ds, "SeriesInstanceUID", "<no SeriesInstanceUID>")), []).append(f)
    if len(series) > 1:
        listing = "; ".join(f"{uid} ({len(fs)} files, e.g. {fs[0].name})" for uid, fs in sorted(series.items()))
        raise MedfuseIOError(
            f"folder mixes {len(series)} DICOM series; keep one series per folder: {listing}", where
        )
    first = headers[0][1]
    modality = _check_modality(first, headers[0][0] if len(headers) == 1 else where, allow_non_ct)
    planes = [pl for f, ds in headers for pl in _planes_of(f, ds)]
    rows_cols = {(int(ds.Rows), int(ds.Columns)) for _, ds in headers}
    if len(rows_cols) > 1:
        raise MedfuseIOError(f"slices have different sizes {sorted(rows_cols)}", where)
    keyed, proj, steps, normal = _order_planes(planes, where)
    iop = planes[0].orientation
    descending = normal[2] >= 0  # superior first (as _order_planes sorts)
    meta: dict[str, Any] = {
        "source": os.fspath(where),
        "format": "dicom",
        "modality": modality,
        "series_uid": str(getattr(first, "SeriesInstanceUID", "")),
        "patient_id": str(getattr(first, "PatientID", "")),
        "slice_thickness": planes[0].slice_thickness,
        "n_slices": len(keyed),
    }
    if len(headers) == 1 and len(planes) > 1:
        meta["n_frames"] = len(planes)
    ps = _floats(planes[0].pixel_spacing, 2)
    if spacing is None and (ps is None or not (ps > 0).all()):
        # the element as pydicom decodes it (its text, for the message); frames carry their decoded item value
        raw = planes[0].pixel_spacing if planes[0].frame is not None else planes[0].ds.get("PixelSpacing")
        found = "no PixelSpacing" if raw is None else f"PixelSpacing {[str(v) for v in raw]}"
        raise MedfuseIOError(
            f"DICOM has {found}: the in-plane pixel size must be positive (pass spacing=(dz, dy, dx) if you know it)",
            where,
        )
    if steps.size:
        dz = float(np.min(steps))
        gaps = [(float(proj[i]), float(proj[i + 1])) for i in np.nonzero(np.rint(steps / dz) > 1)[0]]
        if gaps:
            if not allow_gaps:
                listing = ", ".join(f"between {a:g} and {b:g} mm" for a, b in gaps)
                raise MedfuseIOError(
                    f"missing slices in the series (step {dz:g} mm): gap {listing}; "
                    "pass allow_gaps=True to read it anyway",
                    where,
                )
            meta["gaps_mm"] = gaps
        dz_source = "slice positions"
    elif planes[0].spacing_between is not None:
        dz, dz_source = planes[0].spacing_between, "SpacingBetweenSlices"
    elif planes[0].slice_thickness is not None:
        dz, dz_source = planes[0].slice_thickness, "SliceThickness"
    elif spacing is not None:
        dz, dz_source = spacing[0], "argument"
    else:
        raise MedfuseIOError(
            "one-slice DICOM without a positive SpacingBetweenSlices or SliceThickness: the slice spacing "
            "is unknown; pass spacing=(dz, dy, dx)",
            where,
        )
    if spacing is not None:
        sp = spacing
        meta["spacing_source"] = "argument"
    else:
        assert ps is not None
        sp = (dz, float(ps[0]), float(ps[1]))
        meta["spacing_source"] = f"dz from {dz_source}; dy, dx from PixelSpacing"
    decoded: dict[int, npt.NDArray[Any]] = {}
    out = []
    for _, _, pl in keyed:
        key = id(pl.ds)
        if key not in decoded:
            try:
                decoded[key] = _pixels(pl.ds)
            except Exception as err:
                raise MedfuseIOError(f"cannot decode DICOM pixel data: {err}", pl.source) from err
        px = decoded[key]
        if pl.frame is None:
            if px.ndim != 2:
                raise MedfuseIOError(f"expected a single-frame 2D slice; got pixel shape {px.shape}", pl.source)
        else:
            n = int(pl.ds.get("NumberOfFrames", 1) or 1)
            if px.ndim == 2 and n == 1:
                px = px[None]
            if px.ndim != 3 or px.shape[0] != n:
                raise MedfuseIOError(f"expected {n} grayscale frames; got pixel shape {px.shape}", pl.source)
            px = px[pl.frame]
        out.append(px.astype(np.float64) * pl.slope + pl.intercept)
    vol = _to_hu_int16(np.stack(out), where)
    first_pos = keyed[0][1]
    # Index (z, y, x): x runs along a row (ImageOrientationPatient[:3]), y down
    # the columns (IOP[3:]), z from the first slice (superior) to the next.
    if len(keyed) > 1:
        step = keyed[1][1] - first_pos
        step_dir = step / max(float(np.linalg.norm(step)), 1e-12)
    else:
        step_dir = -normal if descending else normal
    if iop is not None:
        row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    else:
        row_dir, col_dir = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    affine = np.eye(4)
    affine[:3, 0] = step_dir * sp[0]
    affine[:3, 1] = col_dir * sp[1]
    affine[:3, 2] = row_dir * sp[2]
    affine[:3, 3] = first_pos
    return Volume(vol, sp, (float(first_pos[0]), float(first_pos[1]), float(first_pos[2])), meta, affine)


# ------------------------------------------------------------------------ X-ray


def read_xray(path: PathLike, *, apply_voi: bool = False, orient: bool = False) -> npt.NDArray[Any]:
    """Read a 2D X-ray image.

    - DICOM: the stored pixel values (uint8/uint16 usually); MONOCHROME1
      images are inverted (``2**BitsStored - 1 - value``) so that high
      values are always bright (dense). With ``apply_voi=True`` the VOI LUT
      or window (``pydicom.pixels.apply_voi_lut``) is applied as well and a
      float32 array is returned. With ``orient=True`` a frontal chest
      radiograph whose PatientOrientation is not the standard display
      (``L``, ``F``: the patient's left on the image right, feet down) is
      flipped/transposed to it (``R`` -> flip left-right, ``H`` -> flip
      up-down, rows along head-feet -> transpose); lateral views (A/P) and
      files without the element are returned as stored. Off by default:
      the pixels are returned in stored order (extremity views, e.g.
      pydicom-data's RG3 with ``R``, ``F``, follow other display rules).
    - PNG/JPEG/TIFF, 8- or 16-bit grayscale, read by ``cv2.imread`` with
      ``IMREAD_UNCHANGED`` (dtype preserved). Colour files whose channels
      are all equal (grey saved as RGB) are accepted as grey; true colour
      images are refused (an X-ray has one channel; a colour file is most
      likely a screenshot or annotated export).
    - ``.npy`` holding a 2D numeric array.
    """
    p = Path(os.fspath(path))
    _exists(p, "X-ray file")
    return _guarded(lambda: _read_xray(p, apply_voi, bool(orient)), p, "X-ray file")  # type: ignore[no-any-return]


def _read_xray(p: Path, apply_voi: bool, orient: bool = True) -> npt.NDArray[Any]:
    if p.is_dir():
        raise MedfuseIOError("X-ray path is a folder; expected one image file", p)
    suffix = _suffix(p)
    if suffix == ".dcm":
        return _read_dicom_xray(p, apply_voi, orient)
    if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        return _read_image_xray(p)
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as err:
            raise MedfuseIOError(f"cannot read NumPy file: {err}", p) from err
        if arr.ndim != 2 or arr.dtype.kind not in "uif":
            raise MedfuseIOError(f"X-ray array must be 2D numeric; got {arr.dtype} shape {arr.shape}", p)
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    raise MedfuseIOError(
        f"unsupported X-ray file type {suffix or '(no suffix)'!r}; expected one of {', '.join(XRAY_EXTENSIONS)}",
        p,
    )


def _read_dicom_xray(p: Path, apply_voi: bool, orient: bool = True) -> npt.NDArray[Any]:
    ds = _dcmread(p)
    px = _dicom_xray_pixels(ds, p, apply_voi)
    return _oriented(px, ds) if orient else px


def _oriented(px: npt.NDArray[Any], ds: Any) -> npt.NDArray[Any]:
    """A frontal radiograph turned to the standard display by its PatientOrientation (0020,0020).

    PatientOrientation names the patient directions of the rows (increasing
    column index) and of the columns (increasing row index). The standard
    frontal display is ``L`` (patient's left on the image right) and ``F``
    (feet down): ``R`` flips left-right, ``H`` up-down, a head/feet row
    direction transposes. Other values (lateral views: A/P) and a missing
    or malformed element leave the image as stored.
    """
    po = ds.get("PatientOrientation")
    try:
        row, col = (str(v).strip().upper()[:1] for v in po)  # "LF" compound values: the main direction
    except (TypeError, ValueError):
        return px
    if row in "HF" and col in "LR" and row and col:
        px, row, col = px.T, col, row
    if not (row in ("L", "R") and col in ("H", "F")):
        return px
    if row == "R":
        px = px[:, ::-1]
    if col == "H":
        px = px[::-1, :]
    return np.ascontiguousarray(px)


def _dicom_xray_pixels(ds: Any, p: Path, apply_voi: bool) -> npt.NDArray[Any]:
    try:
        px = _pixels(ds)
    except Exception as err:
        raise MedfuseIOError(f"cannot decode DICOM pixel data: {err}", p) from err
    if px.ndim != 2:
        raise MedfuseIOError(f"expected a single-frame grayscale X-ray; got pixel shape {px.shape}", p)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if not photometric.startswith("MONOCHROME"):
        raise MedfuseIOError(f"X-ray must be grayscale; PhotometricInterpretation is {photometric}", p)
    if apply_voi:
        from pydicom.pixels import apply_voi_lut  # type: ignore[attr-defined]

        out = np.asarray(apply_voi_lut(px, ds), dtype=np.float32)
        if photometric == "MONOCHROME1":
            # Invert within the output range of the window/LUT (the stored bit range).
            bits = int(ds.get("BitsStored", px.dtype.itemsize * 8))
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if px.dtype.kind == "i" else (0, 2**bits - 1)
            out = np.float32(lo + hi) - out
        return np.ascontiguousarray(out)
    if photometric == "MONOCHROME1":
        if px.dtype.kind == "u":
            bits = int(ds.get("BitsStored", px.dtype.itemsize * 8))
            px = (np.array((1 << bits) - 1, dtype=px.dtype) - px).astype(px.dtype)
        else:
            px = (px.max() + px.min() - px).astype(px.dtype)
    return np.ascontiguousarray(px)


def _read_image_xray(p: Path) -> npt.NDArray[Any]:
    import cv2

    img = cv2.imread(os.fspath(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MedfuseIOError("cv2 cannot decode this image (corrupt or unsupported)", p)
    if img.ndim == 3:
        colour = img[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise MedfuseIOError(
                f"X-ray image has {img.shape[2]} colour channels with different values; "
                "expected a grayscale image (convert it explicitly if the colour is meaningless)",
                p,
            )
        img = np.ascontiguousarray(colour[..., 0])
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise MedfuseIOError(f"unsupported X-ray pixel type {img.dtype}; expected 8- or 16-bit", p)
    return img


# ----------------------------------------------------------------------- reports

_WS = re.compile(r"[ \t\f\v\u00a0\u3000\u2000-\u200b\u202f\u205f]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Characters plausible in Chinese text decoded from GB18030/GBK besides ASCII.
_PLAUSIBLE_ZH = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef\u00b0-\u00b7\u00d7\u2010-\u2027\u2030-\u2040"
    r"\u2150-\u218f\u2460-\u24ff\u2190-\u21ff\u2200-\u22ff\u0391-\u03c9\u0401-\u0451\u00e0-\u00fc]"
)


def _normalise_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_WS.sub(" ", line).strip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and text.strip().lower().endswith(REPORT_EXTENSIONS) and len(text) < 4096


def read_report(path_or_text: PathLike, *, encoding: str | None = None) -> str:
    """Return a report's text with normalised whitespace.

    What is a path: an ``os.PathLike`` always; a ``str`` when it names an
    existing file. A ``str`` that does not name a file is inline report text,
    except when it looks like a path (one line ending in ``.txt``): then it
    is a :class:`MedfuseFileNotFoundError`, never silently used as text.

    Decoding (unless ``encoding`` is given): UTF-8, with or without BOM;
    otherwise GB18030 (a superset of GBK/GB2312) if the result is plausible
    Chinese text (it contains CJK characters and no characters outside the
    scripts GB18030 files hold). Anything else, or a file with NUL bytes
    (binary), raises :class:`MedfuseIOError` naming the path.

    Normalisation: line ends become ``\\n``, runs of spaces/tabs (incl.
    no-break and ideographic spaces) one space, lines stripped, runs of
    blank lines one blank line, no leading/trailing blank lines. Chinese
    full-width punctuation is kept as is.
    """
    if isinstance(path_or_text, os.PathLike):
        p = Path(os.fspath(path_or_text))
    elif isinstance(path_or_text, str):
        text = path_or_text
        is_file = False
        if "\n" not in text and 0 < len(text) < 4096 and "\x00" not in text:
            try:
                is_file = os.path.isfile(text)
            except (OSError, ValueError):
                is_file = False
        if not is_file:
            if _looks_like_path(text):
                raise MedfuseFileNotFoundError("report file not found (a one-line string ending in .txt is taken as a path)", text)
            return _normalise_whitespace(text)
        p = Path(text)
    else:
        raise TypeError(f"path_or_text must be a str or os.PathLike; got {type(path_or_text).__name__}")
    _exists(p, "report file")
    if p.is_dir():
        raise MedfuseIOError("report path is a folder; expected a text file", p)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise MedfuseIOError(f"cannot read report file: {err}", p) from err
    return _normalise_whitespace(_decode_report(raw, p, encoding))


def _decode_report(raw: bytes, p: Path, encoding: str | None) -> str:
    if encoding is not None:
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as err:
            raise MedfuseIOError(f"report is not valid {encoding}: {err}", p) from err
    if b"\x00" in raw:
        raise MedfuseIOError("report file contains NUL bytes: binary, or UTF-16/32 (pass encoding=)", p)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_err:
        first_error = utf8_err
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError as err:
        raise MedfuseIOError(
            f"report is neither UTF-8 ({first_error.reason} at byte {first_error.start}) "
            f"nor GB18030 ({err.reason} at byte {err.start}); pass encoding= if you know it",
            p,
        ) from err
    non_ascii = [c for c in text if ord(c) > 127]
    implausible = [c for c in non_ascii if not _PLAUSIBLE_ZH.match(c)]
    # Mis-decoded Latin-1/CP1252 gives isolated CJK glued to Latin letters
    # ("l\u959fsion"); real Chinese has CJK runs.
    cjk = [m.start() for m in _CJK.finditer(text)]
    glued = sum(
        1
        for i in cjk
        if (i > 0 and text[i - 1].isascii() and text[i - 1].isalpha())
        or (i + 1 < len(text) and text[i + 1].isascii() and text[i + 1].isalpha())
    )
    if not cjk or implausible or glued * 2 > len(cjk):
        raise MedfuseIOError(
            f"report is not UTF-8 ({first_error.reason} at byte {first_error.start}) and does not decode "
            "to plausible Chinese text as GB18030; refusing to guess (pass encoding=)",
            p,
        )
    return text


# ------------------------------------------------------------------ NIfTI out


def write_nifti(array: npt.ArrayLike, reference: Volume, path: PathLike) -> Path:
    """Write a (z, y, x) array (a mask, a label map) as NIfTI aligned with ``reference``.

    The file's affine is ``reference.affine`` turned into NIfTI's RAS+
    convention with the voxel axes in (x, y, z) order, so the array
    overlays the CT it was computed from in 3D Slicer, ITK-SNAP or
    nibabel (world coordinates equal). Booleans are stored as uint8; the
    dtype is kept otherwise (integers and floats). ``path`` must end in
    ``.nii`` or ``.nii.gz``; written atomically.
    """
    import nibabel as nib

    if not isinstance(reference, Volume):
        raise TypeError(f"reference must be a medfuse Volume (from read_ct); got {type(reference).__name__}")
    arr = np.asarray(array)
    if arr.shape != reference.shape:
        raise ValueError(f"array has shape {arr.shape}; it must match the reference volume's {reference.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "uif":
        raise ValueError(f"array must be boolean or numeric; got dtype {arr.dtype}")
    p = Path(os.fspath(path))
    if not p.name.lower().endswith((".nii", ".nii.gz")):
        raise ValueError(f"path must end in .nii or .nii.gz; got {p.name!r}")
    if not p.parent.is_dir():
        raise MedfuseFileNotFoundError("output folder does not exist", p.parent)
    assert reference.affine is not None
    # NIfTI voxel (i, j, k) = medfuse (x, y, z); RAS = diag(-1, -1, 1) LPS.
    ijk_to_index = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ reference.affine @ ijk_to_index
    img = nib.Nifti1Image(np.ascontiguousarray(arr.transpose(2, 1, 0)), ras)
    img.set_qform(ras, code=1)  # scanner coordinates
    img.set_sform(ras, code=1)
    img.header.set_xyzt_units("mm")
    _atomic_write_bytes(p, img.to_bytes() if p.name.lower().endswith(".nii") else _gzip(img.to_bytes()))
    return p


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6, mtime=0)


# ---- atomic writes (shared by extract, the CLI and the HTML report) ----

def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask.

    ``tempfile.mkstemp`` creates files readable by the owner only; an output
    renamed from one must not end up more private than a plainly written file.
    The umask is read from /proc (no global state changed, so thread-safe);
    where that is unavailable the usual 0o022 is assumed.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------ audio

# 2**30 samples (4 GiB as float32; over 3 h of 96 kHz stereo): a header that
# claims more is treated as corrupt rather than allocated.
MAX_AUDIO_SAMPLES = 1 << 30
MAX_SAMPLE_RATE = 1_000_000
_WAV_TRUNCATED = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")


def read_audio(path: PathLike, *, sr: int | None = None) -> tuple[npt.NDArray[np.float32], int]:
    """Read a WAV or FLAC recording as mono float32 samples and its sample rate.

    - Formats: WAV (8-bit unsigned, 16/24/32-bit integer, 32/64-bit float)
      and FLAC (8/16/24-bit), read by ``soundfile`` (libsndfile). Integer
      samples are scaled to [-1, 1) as soundfile does (``x / 2**(bits-1)``).
    - Several channels are mixed down to their mean (a stethoscope with two
      capsules, or a stereo export, becomes one signal).
    - ``sr``: resample to this rate with ``scipy.signal.resample_poly``
      (polyphase, Kaiser-windowed FIR) when the file's rate differs; the
      returned rate is then ``sr``.

    Returns ``(samples, rate)``: a 1D C-contiguous float32 array and an int.
    Refused with :class:`MedfuseIOError` naming the file: unreadable or
    corrupt files, truncated WAV data chunks, zero-length audio, a sample
    rate of 0, headers claiming more than 2**30 samples, NaN/inf samples.
    """
    if sr is not None:
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)):
            raise TypeError(f"sr must be an integer sample rate in Hz or None, got {sr!r}")
        if not 1 <= int(sr) <= MAX_SAMPLE_RATE:
            raise ValueError(f"sr must be between 1 and {MAX_SAMPLE_RATE} Hz, got {sr}")
    p = Path(os.fspath(path))
    _exists(p, "audio file")
    return _guarded(lambda: _read_audio(p, None if sr is None else int(sr)), p, "audio file")  # type: ignore[no-any-return]


def _read_audio(p: Path, sr: int | None) -> tuple[npt.NDArray[np.float32], int]:
    if p.is_dir():
        raise MedfuseIOError("audio path is a folder; expected one WAV or FLAC file", p)
    suffix = _suffix(p)
    if suffix not in AUDIO_EXTENSIONS:
        raise MedfuseIOError(
            f"unsupported audio file type {suffix or '(no suffix)'!r}; expected one of {', '.join(AUDIO_EXTENSIONS)}", p
        )
    import soundfile as sf

    try:
        info = sf.info(str(p))
    except Exception as err:
        raise MedfuseIOError(f"cannot read audio file: {err}", p) from err
    if info.format not in ("WAV", "WAVEX", "RF64", "FLAC"):
        raise MedfuseIOError(f"not a WAV or FLAC file (libsndfile sees {info.format})", p)
    if info.samplerate <= 0:
        raise MedfuseIOError(f"audio sample rate is {info.samplerate}; must be > 0", p)
    if info.channels < 1:
        raise MedfuseIOError(f"audio file has {info.channels} channels", p)
    if info.frames <= 0:
        raise MedfuseIOError("audio file holds no samples (zero length)", p)
    if info.frames * info.channels > MAX_AUDIO_SAMPLES:
        raise MedfuseIOError(
            f"audio header claims {info.frames} frames x {info.channels} channels (> 2**30 samples; corrupt size fields?)",
            p,
        )
    trunc = _WAV_TRUNCATED.search(info.extra_info or "")
    if trunc and int(trunc.group(2)) < int(trunc.group(1)):
        raise MedfuseIOError(
            f"truncated WAV: the data chunk declares {trunc.group(1)} bytes, the file holds {trunc.group(2)}", p
        )
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as err:
        raise MedfuseIOError(f"cannot decode audio samples: {err}", p) from err
    if data.shape[0] == 0:
        raise MedfuseIOError("audio file holds no samples (zero length)", p)
    if not np.isfinite(data).all():
        raise MedfuseIOError("audio contains NaN or infinite samples", p)
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64)
    rate = int(rate)
    if sr is not None and sr != rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sr, rate)
        mono = resample_poly(np.asarray(mono, dtype=np.float64), sr // g, rate // g)
        if mono.size == 0:
            raise MedfuseIOError(f"audio too short to resample from {rate} Hz to {sr} Hz", p)
        rate = sr
    return np.ascontiguousarray(mono, dtype=np.float32), rate
