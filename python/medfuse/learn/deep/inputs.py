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
- Lung sounds: ``log10`` of :func:`medfuse.mel_spectrogram` (``audio_mels``
  bands up to 2 kHz, 64 ms windows, 32 ms hop), ``audio_frames`` frames
  (about 8 s at the default 256: a shorter recording repeats, a longer one
  is cut), 1 channel.
- Hand-made features (optional ``features=``, the extracted feature table):
  its ct__*, xray__* and audio__* columns as ``table`` (NaN = missing).
  They are per-patient values; the classifier standardises them on its
  training patients.

A missing modality gives zeros plus ``present[:, m] = False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._columns import image_blocks

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
    audio: npt.NDArray[np.float32] | None = None  # (n, 1, audio_mels, audio_frames) log-mel; None: no audio input
    audio_present: npt.NDArray[np.bool_] | None = None  # (n,)
    table: npt.NDArray[np.float32] | None = None  # (n, columns) hand-made features, NaN = missing
    table_columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.patient_ids)

    def subset(self, idx: Any) -> DeepInputs:
        ix = np.asarray(idx)
        if ix.dtype == np.bool_:
            ix = np.flatnonzero(ix)
        return DeepInputs(
            [self.patient_ids[i] for i in ix], None if self.labels is None else self.labels[ix], self.ct[ix],
            self.xray[ix], [self.tokens[i] for i in ix], self.present[ix], self.ct_nodule[ix], dict(self.settings),
            None if self.audio is None else self.audio[ix],
            None if self.audio_present is None else self.audio_present[ix],
            None if self.table is None else self.table[ix], list(self.table_columns))


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


def _log_mel(audio: Any, mels: int, frames: int) -> npt.NDArray[np.float32]:
    """log10 mel power of a (samples, rate) recording: 64 ms windows, 32 ms hop, up to 2 kHz; ``frames`` long
    (a shorter recording repeats, a longer one is cut)."""
    import medfuse

    if not (isinstance(audio, tuple) and len(audio) == 2):
        raise ValueError(f"audio must be a (samples, sample rate) pair; got {type(audio).__name__}")
    y = np.nan_to_num(np.asarray(audio[0], dtype=np.float32).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
    sr = float(audio[1])
    if not (np.isfinite(sr) and sr > 0):
        raise ValueError(f"audio sample rate must be positive; got {audio[1]!r}")
    n_fft = 1 << max(5, int(np.ceil(np.log2(0.064 * sr))))
    hop = max(1, round(0.032 * sr))
    if y.size < n_fft:
        y = np.resize(y, n_fft) if y.size else np.zeros(n_fft, np.float32)
    m = np.asarray(medfuse.mel_spectrogram(y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=mels,
                                           fmax=min(2000.0, sr / 2)), dtype=np.float32)
    logm = np.log10(m + 1e-8).astype(np.float32)
    reps = -(-frames // logm.shape[1])
    return np.tile(logm, (1, reps))[:, :frames]


def _feature_table(features: Any, ids: list[str]) -> tuple[npt.NDArray[np.float32], list[str]]:
    """The numeric hand-made feature columns (ct__*, xray__*, audio__*) of a feature table, in ``ids`` order."""
    import pandas as pd

    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame (a medfuse feature table); got {type(features).__name__}")
    if "patient_id" not in features.columns:
        raise ValueError("features has no patient_id column to match the patients")
    cols = [c for block in image_blocks(features).values() for c in block]
    if not cols:
        raise ValueError("features has no feature column (ct__*, xray__*, audio__*)")
    frame = features.assign(patient_id=features["patient_id"].astype(str)).drop_duplicates("patient_id")
    frame = frame.set_index("patient_id")
    absent = [p for p in ids if p not in frame.index]
    if absent:
        raise ValueError(f"features lacks {len(absent)} patient(s), e.g. {absent[0]!r}")
    table = np.array(frame.loc[ids, cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32))
    table[~np.isfinite(table)] = np.nan
    return table, cols


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
    audio_mels: int = 32,
    audio_frames: int = 256,
    features: Any = None,
    workers: int | None = None,
) -> DeepInputs:
    """The :class:`DeepInputs` of a Cohort or a sequence of PatientRecord (see the module doc).

    ``features``: the feature table extracted from these patients
    (``medfuse extract`` / :func:`medfuse.extract.extract_cohort`; matched
    by ``patient_id``): its ct__*, xray__* and audio__* columns become
    ``table``, read by the classifier's feature-block tokens.

    ``workers`` threads prepare patients in parallel (default
    :func:`medfuse.get_num_threads`); the result does not depend on it.
    """
    import medfuse

    if isinstance(X, DeepInputs):
        return X
    for name, val, lo in (("xray_size", xray_size, 8), ("ct_size", ct_size, 8), ("max_tokens", max_tokens, 1),
                          ("audio_mels", audio_mels, 8), ("audio_frames", audio_frames, 8)):
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
    au = np.zeros((n, 1, audio_mels, audio_frames), np.float32)
    au_present = np.zeros(n, bool)
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
            if getattr(r, "audio", None) is not None:
                au[i, 0] = _log_mel(r.audio, audio_mels, audio_frames)
                au_present[i] = True
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
                    max_tokens=int(max_tokens), audio_mels=int(audio_mels), audio_frames=int(audio_frames))
    ids = [str(r.patient_id) for r in recs]
    table, columns = (None, []) if features is None else _feature_table(features, ids)
    return DeepInputs(ids, lab, ct, xr, tokens, present, nod, settings, au, au_present, table, columns)
