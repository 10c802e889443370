"""Raw inputs of the deep learners: fixed-size image tensors and report tokens.

:func:`prepare_inputs` turns patients (a :class:`~medfuse.data.Cohort` or a
sequence of :class:`~medfuse.data.PatientRecord`) into a
:class:`DeepInputs`, once; folds and models then slice it. No statistic is
learned here (every array depends on its own patient only), so preparing
the whole cohort before cross-validation leaks nothing; the vocabulary is
built by the classifier on its training patients.

- X-ray: the whole radiograph, min-max scaled to [0, 1] and resized
  (antialiased bilinear) to ``xray_size`` x ``xray_size``, 1 channel.
- CT, ``ct_input="nodule"`` (2.5D): the nodule is located with
  :func:`medfuse.segment.lung_mask` and
  :func:`medfuse.segment.nodule_candidates` (best candidate); three
  orthogonal planes (axial, coronal, sagittal) through its centre,
  ``ct_patch_mm`` wide, resampled (trilinear, in mm, so any voxel spacing
  works) to ``ct_size`` x ``ct_size``: 3 channels. When no nodule is found
  (or ``ct_input="volume"``) the whole volume is downsampled instead: the
  three channels are its mean projections along z, y and x resized to
  ``ct_size``. HU are scaled by the lung window (-1000 .. 400 HU -> 0 .. 1).
- Report: :func:`medfuse.features.text.tokenize` tokens (zh + en,
  ``NEG_`` negation marks), at most ``max_tokens``.

A missing modality gives zeros plus ``present[:, m] = False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MODALITIES", "DeepInputs", "prepare_inputs"]

MODALITIES = ("ct", "xray", "report")


@dataclass
class DeepInputs:
    """Prepared inputs of n patients (see the module doc); index with an array of positions."""

    patient_ids: list[str]
    labels: npt.NDArray[Any] | None
    ct: npt.NDArray[np.float32]  # (n, 3, ct_size, ct_size)
    xray: npt.NDArray[np.float32]  # (n, 1, xray_size, xray_size)
    tokens: list[list[str]]
    present: npt.NDArray[np.bool_]  # (n, 3): ct, xray, report
    ct_nodule: npt.NDArray[np.bool_]  # (n,): CT channels are nodule planes (else the downsampled volume)
    settings: dict[str, Any]

    def __len__(self) -> int:
        return len(self.patient_ids)

    def subset(self, idx: Any) -> DeepInputs:
        ix = np.asarray(idx)
        if ix.dtype == np.bool_:
            ix = np.flatnonzero(ix)
        return DeepInputs(
            [self.patient_ids[i] for i in ix], None if self.labels is None else self.labels[ix], self.ct[ix],
            self.xray[ix], [self.tokens[i] for i in ix], self.present[ix], self.ct_nodule[ix], dict(self.settings))


def _resize2d(img: npt.NDArray[np.float32], size: int) -> npt.NDArray[np.float32]:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    out = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def _xray(img: Any, size: int) -> npt.NDArray[np.float32]:
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] in (3, 4):  # colour file: luminance
        a = a[..., :3].mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"xray must be a 2D image; got shape {a.shape}")
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return _resize2d(a, size)


def _hu(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.clip((np.nan_to_num(a, nan=-1000.0) + 1000.0) / 1400.0, 0.0, 1.0).astype(np.float32)


def _nodule_centre(vol: npt.NDArray, spacing: tuple[float, float, float]) -> tuple[float, float, float] | None:
    from ... import segment

    try:
        lungs = segment.lung_mask(vol, spacing=spacing)
        cands = segment.nodule_candidates(vol, lungs, spacing=spacing, max_candidates=1)
    except ValueError:
        return None
    if not cands:
        return None
    c = cands[0]
    return float(c.z), float(c.y), float(c.x)


def _planes(vol: npt.NDArray[np.float32], spacing: tuple[float, float, float], centre: tuple[float, float, float],
            size: int, width_mm: float) -> npt.NDArray[np.float32]:
    """Axial, coronal and sagittal planes through ``centre`` (voxel indices), trilinear."""
    import torch

    d, h, w = vol.shape
    offs = (np.arange(size, dtype=np.float64) + 0.5) / size * width_mm - width_mm / 2.0  # mm
    grids = []
    for plane in range(3):
        u, v = np.meshgrid(offs, offs, indexing="ij")
        z = np.full_like(u, centre[0])
        y = np.full_like(u, centre[1])
        x = np.full_like(u, centre[2])
        if plane == 0:  # axial: rows y, cols x
            y, x = y + u / spacing[1], x + v / spacing[2]
        elif plane == 1:  # coronal: rows z, cols x
            z, x = z + u / spacing[0], x + v / spacing[2]
        else:  # sagittal: rows z, cols y
            z, y = z + u / spacing[0], y + v / spacing[1]
        # grid_sample's normalised coordinates (align_corners=True: -1 = index 0)
        g = np.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1, 2 * z / max(d - 1, 1) - 1], axis=-1)
        grids.append(g)
    grid = torch.from_numpy(np.stack(grids)[:, None].astype(np.float32))  # (3, 1, size, size, 3)
    src = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None, None].expand(3, 1, d, h, w)
    out = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, 0, 0].numpy()


def _ct(ct: Any, size: int, mode: str, width_mm: float) -> tuple[npt.NDArray[np.float32], bool]:
    arr = getattr(ct, "array", ct)
    vol = np.asarray(arr, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"ct must be a 3D volume; got shape {vol.shape}")
    spacing = tuple(float(s) for s in getattr(ct, "spacing", (1.0, 1.0, 1.0)))
    if mode == "nodule":
        centre = _nodule_centre(vol, spacing)  # type: ignore[arg-type]
        if centre is not None:
            return _hu(_planes(vol, spacing, centre, size, width_mm)), True  # type: ignore[arg-type]
    scaled = _hu(vol)
    return np.stack([_resize2d(scaled.mean(axis=a), size) for a in range(3)]), False


def _records(X: Any) -> list[Any]:
    from ...data import Cohort

    if isinstance(X, Cohort):
        return list(X)
    if isinstance(X, (str, bytes)) or not isinstance(X, Sequence):
        raise TypeError(f"X must be a medfuse Cohort, DeepInputs or a sequence of PatientRecord; got {type(X).__name__}")
    for i, r in enumerate(X):
        if not all(hasattr(r, a) for a in ("patient_id", "ct", "xray", "report")):
            raise TypeError(f"X[{i}] is not a PatientRecord (needs patient_id, ct, xray, report); got {type(r).__name__}")
    return list(X)


def prepare_inputs(
    X: Any,
    *,
    xray_size: int = 64,
    ct_size: int = 32,
    ct_input: str = "nodule",
    ct_patch_mm: float = 48.0,
    max_tokens: int = 96,
    workers: int | None = None,
) -> DeepInputs:
    """The :class:`DeepInputs` of a Cohort or a sequence of PatientRecord (see the module doc).

    ``workers`` threads prepare patients in parallel (default
    :func:`medfuse.get_num_threads`); the result does not depend on it.
    """
    import medfuse

    if isinstance(X, DeepInputs):
        return X
    for name, val, lo in (("xray_size", xray_size, 8), ("ct_size", ct_size, 8), ("max_tokens", max_tokens, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {val!r}")
    if ct_input not in ("nodule", "volume"):
        raise ValueError(f"ct_input must be 'nodule' or 'volume'; got {ct_input!r}")
    if not (isinstance(ct_patch_mm, (int, float)) and np.isfinite(ct_patch_mm) and ct_patch_mm > 0):
        raise ValueError(f"ct_patch_mm must be a positive number; got {ct_patch_mm!r}")
    recs = _records(X)
    if not recs:
        raise ValueError("X holds no patient")
    from ...features.text import tokenize

    n = len(recs)
    ct = np.zeros((n, 3, ct_size, ct_size), np.float32)
    xr = np.zeros((n, 1, xray_size, xray_size), np.float32)
    present = np.zeros((n, 3), bool)
    nod = np.zeros(n, bool)
    tokens: list[list[str]] = [[] for _ in range(n)]

    def one(i: int) -> None:
        r = recs[i]
        try:
            if r.ct is not None:
                ct[i], nod[i] = _ct(r.ct, ct_size, ct_input, float(ct_patch_mm))
                present[i, 0] = True
            if r.xray is not None:
                xr[i, 0] = _xray(r.xray, xray_size)
                present[i, 1] = True
            if isinstance(r.report, str):
                tokens[i] = tokenize(r.report)[:max_tokens]
                present[i, 2] = len(tokens[i]) > 0
        except (ValueError, TypeError) as err:
            raise ValueError(f"patient {r.patient_id!r}: {err}") from None

    nw = medfuse.get_num_threads() if workers is None else int(workers)
    if nw > 1 and n > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(nw) as ex:
            list(ex.map(one, range(n)))
    else:
        for i in range(n):
            one(i)
    labels = [getattr(r, "label", None) for r in recs]
    lab = None if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in labels) else np.asarray(labels)
    settings = dict(xray_size=int(xray_size), ct_size=int(ct_size), ct_input=ct_input, ct_patch_mm=float(ct_patch_mm),
                    max_tokens=int(max_tokens))
    return DeepInputs([str(r.patient_id) for r in recs], lab, ct, xr, tokens, present, nod, settings)
