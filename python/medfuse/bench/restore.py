"""Restoration on files (``medfuse enhance``) and the restoration benchmark (``medfuse restore-bench``).

``enhance_path`` processes a DICOM file, a PNG/JPEG/TIFF image, or a folder of
them (a DICOM series is a folder of slices): each 2D image is denoised or
enhanced and written in the same format, atomically (a temporary file in the
output folder, renamed when complete). DICOM files keep every data element;
the pixels are converted to HU (Rescale Slope/Intercept), processed in HU,
and stored back with the same slope, intercept and pixel type. A file that
fails leaves no output and the rest of the folder is still processed.

With ``z_weight`` (a denoiser only) the DICOM files are restored as volumes
by :func:`medfuse.restore.denoise_volume`: grouped by SeriesInstanceUID,
ordered by ImagePositionPatient along the slice normal, each slice denoised
and blended with its neighbours. A series whose slices differ in size or
orientation, lack a position, or are not evenly spaced (a gap would blend
slices that are not neighbours) fails as a whole, with every file listed.

``restore_bench`` degrades held-out phantom slices at each dose with
:func:`medfuse.restore.low_dose_ct`, tunes each classical method's strength
on a separate tuning slice (a small grid, best PSNR), and reports PSNR, SSIM
and time per method per dose, plus an HTML page of before/after crops.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import restore as R

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
DENOISERS = ("gaussian", "median", "bilateral", "nlm", "dncnn")
ENHANCERS = ("clahe", "unsharp", "window")
METHODS = DENOISERS + ENHANCERS


class EnhanceUsageError(ValueError):
    """Bad arguments or inputs that stop the whole run (exit 2)."""


@dataclass
class EnhanceReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _is_dicom(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _kind(p: Path) -> str | None:
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    if p.suffix.lower() in (".dcm", ".dicom", "") and _is_dicom(p):
        return "dicom"
    return None


def _z_weight(method: str, params: dict[str, Any]) -> float | None:
    """Pop and check ``z_weight`` (volume restoration of DICOM series); None when absent."""
    if "z_weight" not in params:
        return None
    w = params.pop("z_weight")
    if method not in DENOISERS:
        raise EnhanceUsageError(f"z_weight applies to the denoisers ({', '.join(DENOISERS)}), not {method}")
    try:
        R.denoise_volume(np.zeros((2, 4, 4), np.float32), lambda a: a, z_weight=w)
    except (TypeError, ValueError) as err:
        raise EnhanceUsageError(f"--param z_weight: {err}") from err
    return float(w)


def _processor(method: str, params: dict[str, Any]) -> Callable[[npt.NDArray[Any]], npt.NDArray[Any]]:
    if method not in METHODS:
        raise EnhanceUsageError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "dncnn":
        weights = params.pop("weights", None)
        which = params.pop("kind", "general")
        smooth = params.pop("smooth", None)
        if params:
            raise EnhanceUsageError("dncnn takes only weights=PATH or kind=general|lesion|lowdose, and smooth=PIXELS; "
                                    f"got {', '.join(params)}")
        try:
            from ..nn.denoiser import load_denoiser
        except ImportError as err:
            raise EnhanceUsageError(f"--method dncnn needs PyTorch: {err}") from err
        try:
            den = load_denoiser(weights, kind=which, smooth=smooth)
        except (OSError, ValueError) as err:
            raise EnhanceUsageError(str(err)) from err
        return lambda img: R.denoise(img, den)
    fn = R.denoise if method in DENOISERS else R.enhance
    probe = np.zeros((16, 16), np.uint8)  # check the parameters once, before any file
    try:
        fn(probe, method, **params)
    except (TypeError, ValueError) as err:
        raise EnhanceUsageError(f"--method {method}: {err}") from err
    return lambda img: fn(img, method, **params)


def _write_atomic(path: Path, data: bytes) -> None:
    from ..data.io import _atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, data)


def _process_image(src: Path, dst: Path, proc: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]) -> None:
    import cv2

    raw = np.fromfile(src, np.uint8)
    img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("not a readable image")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if not (np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 1], img[:, :, 2])):
            raise ValueError("colour images are not supported (a radiograph is single-channel)")
        img = np.ascontiguousarray(img[:, :, 0])
    out = proc(img)
    if out.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"the method produced {out.dtype}, which {src.suffix} cannot store")
    ok, enc = cv2.imencode(dst.suffix.lower() if dst.suffix else ".png", out)
    if not ok:
        raise ValueError("could not encode the result")
    _write_atomic(dst, enc.tobytes())


@dataclass
class _DicomSlice:
    ds: Any
    arr: npt.NDArray[Any]
    slope: float
    intercept: float

    @property
    def hu(self) -> npt.NDArray[np.float32]:
        return self.arr.astype(np.float32) * np.float32(self.slope) + np.float32(self.intercept)


def _read_dicom(src: Path, method: str) -> _DicomSlice:
    import pydicom

    ds = pydicom.dcmread(src)
    if "PixelData" not in ds:
        raise ValueError("DICOM file has no pixel data")
    if method in ("clahe", "window"):
        raise ValueError(f"--method {method} changes the value scale; DICOM output keeps HU (use PNG)")
    arr = ds.pixel_array
    if arr.ndim != 2:
        raise ValueError(f"only single-frame greyscale DICOM is supported; pixel array shape {arr.shape}")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return _DicomSlice(ds, arr, slope, intercept)


def _process_dicom(src: Path, dst: Path, proc: Callable[[npt.NDArray[Any]], npt.NDArray[Any]],
                   method: str) -> None:
    sl = _read_dicom(src, method)
    _write_dicom(dst, sl, proc(sl.hu))


def _write_dicom(dst: Path, sl: _DicomSlice, out: npt.NDArray[Any]) -> None:
    ds, arr, slope, intercept = sl.ds, sl.arr, sl.slope, sl.intercept
    stored = (np.asarray(out, np.float64) - intercept) / slope
    info = np.iinfo(arr.dtype)
    new = np.clip(np.rint(stored), info.min, info.max).astype(arr.dtype)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    ds.PixelData = new.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    _write_atomic(dst, buf.getvalue())


def enhance_path(inp: Path, out: Path, method: str, params: dict[str, Any],
                 log: Callable[[str], None] = print) -> EnhanceReport:
    """Process ``inp`` (file or folder) into ``out``; see the module doc."""
    params = dict(params)
    z_weight = _z_weight(method, params) if method in METHODS else None
    proc = _processor(method, params)
    inp, out = Path(inp), Path(out)
    if not inp.exists():
        raise EnhanceUsageError(f"input {inp} not found")
    report = EnhanceReport()
    if inp.is_file():
        kind = _kind(inp)
        if kind is None:
            raise EnhanceUsageError(f"{inp} is not a DICOM file or a PNG/JPEG/TIFF image")
        if out.exists() and out.is_dir():
            out = out / inp.name
        if out.resolve() == inp.resolve():
            raise EnhanceUsageError("output must differ from the input (files are never overwritten in place)")
        jobs = [(inp, out, kind)]
    else:
        ri, ro = inp.resolve(), out.resolve()
        if ro == ri or ri in ro.parents:
            raise EnhanceUsageError(f"output {out} must not be inside the input folder {inp}")
        if out.exists() and not out.is_dir():
            raise EnhanceUsageError(f"output {out} must be a folder when the input is a folder")
        files = sorted(p for p in inp.rglob("*") if p.is_file() and not p.name.startswith("."))
        jobs = []
        for p in files:
            kind = _kind(p)
            if kind is None:
                report.failed.append((p, "not a DICOM file or a PNG/JPEG/TIFF image"))
            else:
                jobs.append((p, out / p.relative_to(inp), kind))
        kinds = {k for _, _, k in jobs}
        if len(kinds) > 1:
            raise EnhanceUsageError(f"{inp} mixes DICOM files and PNG/JPEG images; process them separately")
        if not jobs:
            raise EnhanceUsageError(f"{inp} holds no DICOM files or PNG/JPEG/TIFF images")
    if z_weight is not None:
        if any(k != "dicom" for _, _, k in jobs):
            raise EnhanceUsageError("z_weight restores DICOM series (volumes); the input holds PNG/JPEG images")
        for series in _series(jobs, method, report):
            _process_series(series, proc, z_weight, report, log)
        return report
    for src, dst, kind in jobs:
        try:
            if kind == "dicom":
                _process_dicom(src, dst, proc, method)
            else:
                _process_image(src, dst, proc)
            report.written.append(dst)
            log(f"{src} -> {dst}")
        except Exception as err:  # one bad file must not stop the folder: listed, exit 1
            report.failed.append((src, f"{type(err).__name__}: {err}"))
    return report


def _series(jobs: list[tuple[Path, Path, str]], method: str,
            report: EnhanceReport) -> list[list[tuple[Path, Path, _DicomSlice]]]:
    """DICOM jobs grouped by SeriesInstanceUID, each ordered along its slice normal (see the module doc)."""
    groups: dict[str, list[tuple[Path, Path, _DicomSlice]]] = {}
    for src, dst, _ in jobs:
        try:
            sl = _read_dicom(src, method)
        except Exception as err:  # listed; the rest of the folder goes on
            report.failed.append((src, f"{type(err).__name__}: {err}"))
            continue
        uid = str(sl.ds.get("SeriesInstanceUID", "") or "")
        groups.setdefault(uid, []).append((src, dst, sl))
    out = []
    for uid, members in sorted(groups.items()):
        try:
            out.append(_ordered(members))
        except Exception as err:  # a header that cannot be ordered fails its series, not the run
            for src, _, _ in members:
                report.failed.append((src, f"series {uid or '(no SeriesInstanceUID)'}: {err}"))
    return out


def _ordered(members: list[tuple[Path, Path, _DicomSlice]]) -> list[tuple[Path, Path, _DicomSlice]]:
    """One series in slice order, by read_ct's rules (positions along the normal, evenly spaced), and no gap."""
    if len({m[2].arr.shape for m in members}) > 1:
        raise ValueError(f"slices have different sizes {sorted({m[2].arr.shape for m in members})}")
    if len(members) == 1:
        return members
    from ..data.io import _order_planes, _planes_of

    planes = [_planes_of(m[0], m[2].ds)[0] for m in members]  # single-frame: _read_dicom refused the others
    ori0 = planes[0].orientation
    if ori0 is None or any(pl.orientation is None or not np.allclose(pl.orientation, ori0, atol=1e-4)
                           for pl in planes):
        raise ValueError("slices lack ImageOrientationPatient or have different ones; cannot order them")
    keyed, _, steps, _ = _order_planes(planes, members[0][0].parent)
    if np.any(np.rint(steps / steps.min()) > 1):
        raise ValueError(f"missing slices (steps {np.unique(np.round(steps, 3)).tolist()} mm): "
                         "a gap would blend slices that are not neighbours")
    by_plane = {id(m[2].ds): m for m in members}
    return [by_plane[id(k[2].ds)] for k in keyed]


def _process_series(series: list[tuple[Path, Path, _DicomSlice]], proc: Callable[[npt.NDArray[Any]], npt.NDArray[Any]],
                    z_weight: float, report: EnhanceReport, log: Callable[[str], None]) -> None:
    try:
        vol = R.denoise_volume(np.stack([m[2].hu for m in series]), proc, z_weight=z_weight)
    except Exception as err:  # the whole series fails, listed file by file
        for src, _, _ in series:
            report.failed.append((src, f"{type(err).__name__}: {err}"))
        return
    for k, (src, dst, sl) in enumerate(series):
        try:
            _write_dicom(dst, sl, vol[k])
            report.written.append(dst)
            log(f"{src} -> {dst}")
        except Exception as err:
            report.failed.append((src, f"{type(err).__name__}: {err}"))


# ---- restore-bench -----------------------------------------------------------

GRIDS: dict[str, list[dict[str, Any]]] = {
    "gaussian": [{"sigma": s} for s in (0.5, 0.8, 1.2, 1.8)],
    "median": [{"size": s} for s in (3, 5)],
    "bilateral": [{"sigma_color": c, "sigma_space": s} for c in (40.0, 60.0, 90.0, 130.0, 180.0, 250.0)
                  for s in (1.5, 2.0)],
    # cv2's weight (sigma 0) and scikit-image's (the noise variance subtracted from patch distances)
    "nlm": [{"h": h} for h in (25.0, 40.0, 60.0, 85.0, 110.0)]
           + [{"h": h, "sigma": s} for h in (40.0, 60.0) for s in (40.0, 70.0)],
}


@dataclass
class BenchRow:
    dose: float
    method: str
    params: str
    psnr: float
    ssim: float
    ms: float


def _slices(n: int, size: int, seed0: int) -> list[tuple[npt.NDArray[np.float32], float]]:
    from ..data.phantoms import nodule_ct_phantom

    out = []
    for i in range(n):
        ph = nodule_ct_phantom((12, size, size), seed=seed0 + i)
        out.append((ph.volume[round(ph.nodule_center[0])].astype(np.float32), ph.spacing[1]))
    return out


def restore_bench(
    doses: Sequence[float] = (0.25, 0.1),
    *,
    size: int = 128,
    slices: int = 2,
    seed: int = 0,
    learned: bool = True,
    html_path: Path | None = None,
) -> list[BenchRow]:
    """PSNR/SSIM/time per method per dose on held-out phantom slices (see the module doc)."""
    dr = 1500.0  # the lung window's width: PSNR/SSIM data range in HU
    tune = _slices(1, size, 10_000 + seed)
    test = _slices(slices, size, 20_000 + seed)
    den = None
    if learned:
        try:
            from ..nn.denoiser import load_denoiser

            den = load_denoiser()
        except ImportError:
            den = None
    rows: list[BenchRow] = []
    crops: list[tuple[float, str, npt.NDArray[np.float32]]] = []
    for dose in doses:
        pairs = []
        for k, (sl, px) in enumerate(test):
            pairs.append((R.low_dose_ct(sl, None, pixel_mm=px), R.low_dose_ct(sl, dose, pixel_mm=px, seed=seed + k)))
        t_sl, t_px = tune[0]
        t_ref = R.low_dose_ct(t_sl, None, pixel_mm=t_px)
        t_low = R.low_dose_ct(t_sl, dose, pixel_mm=t_px, seed=seed + 99)
        methods: list[tuple[str, str, Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]]]] = [
            ("low dose", "", lambda x: x)]
        for name, grid in GRIDS.items():
            best = max(grid, key=lambda p: R.psnr(t_ref, R.denoise(t_low, name, **p), data_range=dr))
            label = ", ".join(f"{k}={v:g}" for k, v in best.items())
            methods.append((name, label, functools.partial(R.denoise, method=name, **best)))
        if den is not None:
            methods.append(("dncnn", "shipped weights", functools.partial(R.denoise, method=den)))
        for name, label, fn in methods:
            fn(t_low)  # warm-up outside the timing (first torch call loads the operators)
            ps, ss, ts = [], [], []
            for k, (ref, low) in enumerate(pairs):
                t0 = time.perf_counter()
                res = fn(low)
                ts.append(time.perf_counter() - t0)
                ps.append(R.psnr(ref, res, data_range=dr))
                sv = R.ssim(ref, res, data_range=dr)
                ss.append(sv if isinstance(sv, float) else sv[0])
                if k == 0:
                    crops.append((dose, name, np.asarray(res, np.float32)))
            rows.append(BenchRow(dose, name, label, float(np.mean(ps)), float(np.mean(ss)), 1000 * float(np.median(ts))))
        crops.append((dose, "normal dose", pairs[0][0]))
    if html_path is not None:
        _write_html(Path(html_path), rows, crops, size)
    return rows


def format_rows(rows: Sequence[BenchRow]) -> str:
    lines = [f"{'dose':>6}  {'method':<10} {'PSNR dB':>8} {'SSIM':>7} {'ms':>8}  parameters (tuned on a separate slice)"]
    for r in rows:
        lines.append(f"{r.dose:>6g}  {r.method:<10} {r.psnr:>8.2f} {r.ssim:>7.4f} {r.ms:>8.1f}  {r.params}")
    return "\n".join(lines)


def _png_b64(img: npt.NDArray[np.float32]) -> str:
    import cv2

    from ..kernels.histogram import window

    ok, enc = cv2.imencode(".png", window(img, -600.0, 1500.0))
    return base64.b64encode(enc.tobytes()).decode("ascii") if ok else ""


def _write_html(path: Path, rows: Sequence[BenchRow], crops: Sequence[tuple[float, str, npt.NDArray[np.float32]]],
                size: int) -> None:
    c = size // 2
    h = size // 4
    parts = ["<!doctype html><meta charset='utf-8'><title>medfuse restore-bench</title>",
             "<h1>Low-dose CT restoration</h1><table border=1 cellpadding=4>",
             "<tr><th>dose</th><th>method</th><th>PSNR (dB)</th><th>SSIM</th><th>ms</th><th>parameters</th></tr>"]
    for r in rows:
        parts.append(f"<tr><td>{r.dose:g}</td><td>{html.escape(r.method)}</td><td>{r.psnr:.2f}</td>"
                     f"<td>{r.ssim:.4f}</td><td>{r.ms:.1f}</td><td>{html.escape(r.params)}</td></tr>")
    parts.append("</table><h2>Crops (lung window)</h2>")
    for dose in sorted({d for d, _, _ in crops}, reverse=True):
        parts.append(f"<h3>dose {dose:g}</h3><div style='display:flex;flex-wrap:wrap'>")
        for d, name, img in crops:
            if d != dose:
                continue
            crop = img[max(0, c - h): c + h, max(0, c - h): c + h]
            parts.append(f"<figure><img width=192 src='data:image/png;base64,{_png_b64(crop)}'>"
                         f"<figcaption>{html.escape(name)}</figcaption></figure>")
        parts.append("</div>")
    from ..data.io import _atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))
