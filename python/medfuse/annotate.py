"""Annotation: finding labels read out of reports, and masks for viewers.

- :func:`label_reports` (and :func:`keyword_labels`, :func:`score_labels`,
  :class:`ReportLabeler`): the report labeler of
  :mod:`medfuse.data.annotate` (it lives in ``data`` so that
  :meth:`medfuse.data.Cohort.with_report_labels` can use it).
- :func:`write_masks`: :mod:`medfuse.segment`'s lung and nodule masks (and,
  on request, cavity and fibrosis masks) of a CT written as NIfTI files with the CT's own affine, so 3D Slicer or
  ITK-SNAP overlay them on the source series for checking.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data.annotate import (
    CHEXPERT_FINDINGS,
    DEFAULT_FINDINGS,
    DictionaryError,
    ReportLabeler,
    keyword_labels,
    label_reports,
    load_dictionary,
    mesh_truth,
    score_assertions,
    score_labels,
    stated_labels,
    synthetic_truth,
)
from .data.io import PathLike, Volume, read_ct, write_nifti

__all__ = [
    "CHEXPERT_FINDINGS",
    "DEFAULT_FINDINGS",
    "DictionaryError",
    "ReportLabeler",
    "keyword_labels",
    "label_reports",
    "load_dictionary",
    "mesh_truth",
    "score_assertions",
    "score_labels",
    "stated_labels",
    "synthetic_truth",
    "write_masks",
]


def write_masks(
    ct: Volume | PathLike,
    out_dir: PathLike,
    *,
    name: str | None = None,
    nodules: bool = True,
    max_nodules: int = 5,
    findings: bool = False,
    compress: bool = True,
) -> dict[str, Path]:
    """Segment a CT and write its masks as NIfTI aligned with it.

    Parameters
    ----------
    ct : a :class:`~medfuse.data.Volume` or anything :func:`~medfuse.data.read_ct`
        reads (DICOM series folder, NIfTI, .npy/.npz); its ``affine`` places
        the masks.
    out_dir : existing folder for the files.
    name : file name stem (default: the volume's ``patient_id`` metadata,
        else ``"ct"``).
    nodules : also detect nodules (:func:`medfuse.segment.nodule_candidates`
        inside the lungs, each grown with :func:`medfuse.segment.nodule_mask`).
    max_nodules : at most this many nodule candidates, best first.
    findings : also write the disease findings: ``<name>_cavities`` (k = 1,
        2, ... for the k-th :func:`medfuse.segment.cavity_candidates`
        cavity: the lung voxels within its air radius plus 3 mm (wall) of
        its centre) and ``<name>_fibrosis`` (1 where
        :func:`medfuse.segment.fibrosis_mask` finds fibrotic texture).
    compress : ``.nii.gz`` (default) or ``.nii``.

    Returns ``{"lungs": path, "nodules": path}`` (plus ``"cavities"`` and
    ``"fibrosis"`` with ``findings=True``): ``<name>_lungs`` holds
    0 background, 1 right lung, 2 left lung; ``<name>_nodules`` holds 0 and
    k = 1, 2, ... for the k-th candidate (uint8).
    """
    from . import segment

    volume = ct if isinstance(ct, Volume) else read_ct(ct)
    out = Path(os.fspath(out_dir))
    if not out.is_dir():
        raise FileNotFoundError(f"out_dir {out} is not an existing folder")
    if isinstance(max_nodules, bool) or not isinstance(max_nodules, (int, np.integer)) or max_nodules < 1:
        raise ValueError(f"max_nodules must be a positive integer; got {max_nodules!r}")
    stem = name if name is not None else str(volume.metadata.get("patient_id") or "ct")
    if not stem or any(c in stem for c in "/\\\0") or stem in (".", ".."):
        raise ValueError(f"name must be a plain file name stem; got {stem!r}")
    ext = ".nii.gz" if compress else ".nii"
    lungs = segment.lung_mask(volume.array, spacing=volume.spacing)
    written = {"lungs": write_nifti(lungs.astype(np.uint8), volume, out / f"{stem}_lungs{ext}")}
    if nodules:
        labels = np.zeros(volume.shape, dtype=np.uint8)
        if lungs.any():
            cands = segment.nodule_candidates(
                volume.array, lungs, spacing=volume.spacing, max_candidates=int(max_nodules)
            )
            for k, cand in enumerate(cands, 1):
                m = segment.nodule_mask(volume.array, cand, spacing=volume.spacing, lung_mask=lungs)
                labels[m & (labels == 0)] = k
        written["nodules"] = write_nifti(labels, volume, out / f"{stem}_nodules{ext}")
    if findings:
        lung = lungs > 0
        cav = np.zeros(volume.shape, dtype=np.uint8)
        fib = np.zeros(volume.shape, dtype=np.uint8)
        if lung.any():
            sp = volume.spacing
            grid = np.ogrid[tuple(slice(0, n) for n in volume.shape)]
            for k, c in enumerate(segment.cavity_candidates(volume.array, lung, spacing=sp), 1):
                r = c.radius_mm + 3.0
                d2 = sum(((g - cc) * s) ** 2 for g, cc, s in zip(grid, c.center_voxel, sp))
                cav[(d2 <= r * r) & lung & (cav == 0)] = k
            fib[segment.fibrosis_mask(volume.array, lung, spacing=sp)] = 1
        written["cavities"] = write_nifti(cav, volume, out / f"{stem}_cavities{ext}")
        written["fibrosis"] = write_nifti(fib, volume, out / f"{stem}_fibrosis{ext}")
    return written

