"""A patient cohort: CT, X-ray, report and lung sounds per patient, joined by patient_id.

A manifest is a table with a ``patient_id`` column, an optional ``label``
column and any of ``ct``, ``xray``, ``report``, ``audio``:

- ``ct``: a DICOM series folder, a NIfTI/.npy/.npz/.dcm file (see
  :func:`medfuse.data.read_ct`), or in memory a :class:`~medfuse.data.Volume`;
- ``xray``: a DICOM/PNG/JPEG/TIFF/.npy file, or in memory a 2D array;
- ``report``: a ``.txt`` file or the report text itself (the rule of
  :func:`medfuse.data.read_report`);
- ``audio``: a WAV/FLAC auscultation recording (see
  :func:`medfuse.data.read_audio`), or in memory a ``(samples, rate)`` tuple.

Other columns are kept but unused: each is reported once per manifest by a
:class:`ManifestWarning` naming the known columns and, for a near miss
(``xray_path``, ``X-ray``, ``CT``), the column it probably means — a
misspelled modality column would otherwise make that modality silently
missing for every patient.

Relative paths are resolved against the manifest's folder (a DataFrame's
``base_dir``, default the current directory). Empty cells mean the modality
is missing for that patient: allowed, and counted by :meth:`Cohort.summary`.
Nothing is dropped silently: every problem found (duplicate ids, missing
files, unsupported file types, labels that are not a clean class column,
conflicting values when joining manifests) is collected and raised together
in one :class:`CohortError`.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from . import io as mio
from .io import Volume

__all__ = ["KNOWN_COLUMNS", "MODALITIES", "Cohort", "CohortError", "ManifestWarning", "PatientRecord", "synthetic_cohort"]

MODALITIES = ("ct", "xray", "report", "audio")
PathLike = Union[str, "os.PathLike[str]"]


def _known_columns() -> tuple[str, ...]:
    return ("patient_id", "label", *MODALITIES)


KNOWN_COLUMNS = _known_columns()  # what a manifest's columns may be; anything else is reported


class ManifestWarning(UserWarning):
    """A manifest has columns medfuse does not use (e.g. a misspelled modality)."""


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def suggest_column(name: str, known: Sequence[str] | None = None) -> str | None:
    """The known column ``name`` most probably means (``xray_path`` -> ``xray``), or None."""
    known = tuple(known) if known is not None else _known_columns()
    by_norm = {_normalised(k): k for k in known}
    norm = _normalised(name)
    if norm in by_norm:
        return by_norm[norm]
    for token in re.split(r"[^a-z0-9]+", name.lower()):  # ct_folder, xray_path, report_file
        if token in by_norm:
            return by_norm[token]
    for probe in (norm, name.lower()):
        match = difflib.get_close_matches(probe, list(by_norm), n=1, cutoff=0.6)
        if match:
            return by_norm[match[0]]
    return None


def unknown_columns_message(columns: Sequence[Any], source: str = "manifest") -> str | None:
    """A report of the columns of a manifest that medfuse does not use (None when all are known)."""
    known = _known_columns()
    unknown = [str(c) for c in columns if str(c) not in known]
    if not unknown:
        return None
    parts = []
    for c in unknown:
        hint = suggest_column(c, known)
        parts.append(f"{c!r} (did you mean {hint!r}?)" if hint is not None and hint not in map(str, columns) else repr(c))
    return (
        f"{source}: column(s) {', '.join(parts)} not used by medfuse and ignored; "
        f"known columns: {', '.join(known)}"
    )


class CohortError(ValueError):
    """Problems found in a manifest; ``problems`` lists every one of them."""

    def __init__(self, problems: Sequence[str], source: str = "manifest") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")


@dataclass(frozen=True)
class PatientRecord:
    """One patient's data; a modality is None when the manifest has none."""

    patient_id: str
    label: Any
    ct: Volume | None
    xray: npt.NDArray[Any] | None
    report: str | None
    audio: tuple[npt.NDArray[np.float32], int] | None = None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


class Cohort:
    """Patients with their modalities, validated, loaded lazily and cached.

    Build with :meth:`from_csv`, :meth:`from_parquet` or
    :meth:`from_dataframe` (each accepts several manifests, joined by
    patient_id). ``len(cohort)``, ``cohort["P001"]`` (a
    :class:`PatientRecord`), ``for record in cohort`` (manifest order),
    ``cohort.patient_ids``, ``cohort.labels``, ``cohort.frame`` (the
    resolved manifest), ``cohort.summary()``. ``cohort.truth`` is the
    latent ground-truth table for synthetic cohorts, None otherwise.
    Construction checks existence and file types; :meth:`validate` with
    ``deep=True`` also opens every file.
    """

    def __init__(
        self, frame: Any, *, cache_size: int = 32, truth: Any = None, source: str = "manifest", _checked: bool = False
    ) -> None:
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"frame must be a pandas DataFrame; got {type(frame).__name__}")
        if int(cache_size) < 0:
            raise ValueError(f"cache_size must be >= 0; got {cache_size}")
        self._source = source
        problems = [] if _checked else _check_frame(frame)
        if problems:
            raise CohortError(problems, source)
        self._frame = frame.set_index("patient_id", drop=False)
        self._cache: OrderedDict[str, PatientRecord] = OrderedDict()
        self._lock = threading.Lock()  # the cache may be shared by threads
        self._cache_size = int(cache_size)
        self.truth = truth
        self.unlabelled: list[str] = []  # set by with_report_labels(label=...)

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_dataframe(
        cls,
        frames: Any,
        *,
        base_dir: PathLike | Sequence[PathLike] | None = None,
        cache_size: int = 32,
    ) -> Cohort:
        """From one DataFrame or a list of them (joined by patient_id).

        ``base_dir`` (one, or one per frame) resolves relative paths;
        default the current directory.
        """
        import pandas as pd

        if isinstance(frames, pd.DataFrame):
            frames = [frames]
        frames = list(frames)
        if not frames:
            raise ValueError("frames must hold at least one DataFrame")
        if base_dir is None or isinstance(base_dir, (str, os.PathLike)):
            bases = [Path(os.fspath(base_dir)) if base_dir is not None else Path.cwd()] * len(frames)
        else:
            bases = [Path(os.fspath(b)) for b in base_dir]
            if len(bases) != len(frames):
                raise ValueError(f"base_dir has {len(bases)} entries for {len(frames)} frames")
        names = [f"manifest {i + 1}" for i in range(len(frames))] if len(frames) > 1 else ["manifest"]
        return cls._build(frames, bases, names, cache_size)

    @classmethod
    def from_csv(cls, paths: PathLike | Sequence[PathLike], *, cache_size: int = 32) -> Cohort:
        """From one or several CSV manifests (paths relative to each file's folder)."""
        import pandas as pd

        return cls._from_files(paths, lambda p: pd.read_csv(p, dtype={"patient_id": str}, keep_default_na=True), cache_size)

    @classmethod
    def from_parquet(cls, paths: PathLike | Sequence[PathLike], *, cache_size: int = 32) -> Cohort:
        """From one or several Parquet manifests (needs pyarrow)."""
        import pandas as pd

        return cls._from_files(paths, pd.read_parquet, cache_size)

    @classmethod
    def _from_files(cls, paths: Any, reader: Any, cache_size: int) -> Cohort:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        files = [Path(os.fspath(p)) for p in paths]
        frames = []
        for f in files:
            if not f.is_file():
                raise mio.MedfuseFileNotFoundError("manifest not found", f)
            try:
                frames.append(reader(f))
            except Exception as err:
                raise mio.MedfuseIOError(f"cannot read manifest: {err}", f) from err
        return cls._build(frames, [f.resolve().parent for f in files], [os.fspath(f) for f in files], cache_size)

    @classmethod
    def _build(cls, frames: list[Any], bases: list[Path], names: list[str], cache_size: int) -> Cohort:
        import pandas as pd

        problems: list[str] = []
        resolved = []
        for frame, base, name in zip(frames, bases, names):
            r, probs = _resolve_frame(frame, base, name)
            problems.extend(probs)
            if r is not None:
                resolved.append((r, name))
        source = names[0] if len(names) == 1 else f"{len(names)} manifests"
        if len(resolved) < len(frames):  # a manifest without patient_id: nothing more to check
            raise CohortError(problems, source)
        joined, probs = _join(resolved)
        problems.extend(probs)
        problems.extend(_check_frame(joined, duplicates=False))
        if problems:
            raise CohortError(problems, source)
        assert isinstance(joined, pd.DataFrame)
        return cls(joined, cache_size=cache_size, source=source, _checked=True)

    # ------------------------------------------------------------------ access

    @property
    def frame(self) -> Any:
        """The resolved manifest (absolute paths, in-memory objects); a copy."""
        return self._frame.reset_index(drop=True).copy()

    @property
    def patient_ids(self) -> list[str]:
        return [str(p) for p in self._frame["patient_id"]]

    @property
    def labels(self) -> Any:
        """Labels as a Series indexed by patient_id (None if no label column)."""
        if "label" not in self._frame.columns:
            return None
        return self._frame["label"].copy()

    def __len__(self) -> int:
        return len(self._frame)

    def __contains__(self, patient_id: object) -> bool:
        return str(patient_id) in self._frame.index

    def __iter__(self) -> Iterator[PatientRecord]:
        for pid in self.patient_ids:
            yield self[pid]

    def __getitem__(self, patient_id: str) -> PatientRecord:
        key = str(patient_id)
        if key not in self._frame.index:
            raise KeyError(f"no patient {patient_id!r} in the cohort")
        with self._lock:
            rec = self._cache.get(key)
            if rec is not None:
                self._cache.move_to_end(key)
                return rec
        row = self._frame.loc[key]
        rec = PatientRecord(
            patient_id=key,
            label=_native(row["label"]) if "label" in row.index else None,
            ct=_load("ct", row.get("ct")),
            xray=_load("xray", row.get("xray")),
            report=_load("report", row.get("report")),
            audio=_load("audio", row.get("audio")),
        )
        if self._cache_size:
            with self._lock:
                self._cache[key] = rec
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return rec

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def has(self, modality: str) -> Any:
        """Boolean Series (by patient_id): does each patient have ``modality``?"""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}; got {modality!r}")
        if modality not in self._frame.columns:
            import pandas as pd

            return pd.Series(False, index=self._frame.index, name=modality)
        return self._frame[modality].map(lambda v: not _is_missing(v)).astype(bool).rename(modality)

    # -------------------------------------------------------------- reporting

    def summary(self) -> Any:
        """DataFrame, one row per modality: n_present, n_missing, missing_ids.

        The ``all`` row counts patients with every modality the manifest has
        a column for (a manifest without an ``audio`` column is not missing it).
        """
        import pandas as pd

        rows = []
        for m in MODALITIES:
            has = self.has(m)
            missing = [str(p) for p in has.index[~has.to_numpy()]]
            rows.append({"modality": m, "n_present": int(has.sum()), "n_missing": len(missing), "missing_ids": missing})
        used = [m for m in MODALITIES if m in self._frame.columns] or list(MODALITIES)
        complete = np.logical_and.reduce([self.has(m).to_numpy() for m in used])
        rows.append(
            {
                "modality": "all",
                "n_present": int(complete.sum()),
                "n_missing": int((~complete).sum()),
                "missing_ids": [str(p) for p in self._frame.index[~complete]],
            }
        )
        return pd.DataFrame(rows).set_index("modality")

    def describe(self) -> str:
        """A short human-readable summary (patients, labels, missing modalities)."""
        s = self.summary()
        lines = [f"Cohort of {len(self)} patients from {self._source}"]
        if "label" in self._frame.columns:
            counts = self._frame["label"].value_counts().sort_index()
            lines.append("labels: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
        for m in MODALITIES:
            r = s.loc[m]
            ids = r["missing_ids"]
            more = f" ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})" if ids else ""
            lines.append(f"{m}: {r['n_present']} present, {r['n_missing']} missing{more}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Cohort: {len(self)} patients from {self._source}>"

    def with_report_labels(
        self,
        findings: Sequence[str] | None = None,
        *,
        lang: str = "auto",
        dictionaries: Any = None,
        uncertain: str = "keep",
        prefix: str = "",
        label: str | None = None,
    ) -> Cohort:
        """A new cohort whose frame has finding columns read from the reports.

        Each patient's report is labelled with
        :func:`medfuse.annotate.label_reports` (``findings``, ``lang``,
        ``dictionaries`` as there): one float column per finding named
        ``prefix + finding``, 1 present, 0 absent, -1 uncertain, NaN not
        mentioned or no report. ``uncertain`` maps -1 for training:
        "keep", "ones" (-1 -> 1, CheXpert's U-Ones), "zeros" (U-Zeros) or
        "nan". ``label``: a finding whose column also becomes the cohort's
        ``label`` (NaN -> 0: a finding the report does not mention counts
        as absent), for weak supervision of image models; ``uncertain``
        must then not be "keep", and patients without a report are left
        out of the returned cohort (their ids are in its ``unlabelled``
        attribute) rather than given a label the report never stated.

        A report that cannot be read or is empty raises :class:`CohortError`
        listing every such patient; a column that already exists raises
        ValueError. The original cohort is not changed.
        """
        import pandas as pd

        from .annotate import _labeler, label_reports

        if uncertain not in ("keep", "ones", "zeros", "nan"):
            raise ValueError(f"uncertain must be 'keep', 'ones', 'zeros' or 'nan'; got {uncertain!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str; got {type(prefix).__name__}")
        labeler = _labeler(dictionaries)
        names = labeler.check_findings(findings)
        if label is not None:
            from .annotate import normalise_name

            label = normalise_name(label)
            if label not in names:
                raise ValueError(f"label {label!r} must be one of the findings {names}")
            if uncertain == "keep":
                raise ValueError("label= needs uncertain='ones', 'zeros' or 'nan' (a class column has no -1)")
        clash = [prefix + n for n in names if prefix + n in self._frame.columns]
        if clash:
            raise ValueError(f"columns {clash} already exist in the cohort; pass prefix= to name them apart")
        texts: dict[str, str] = {}
        problems = []
        column = self._frame["report"] if "report" in self._frame.columns else pd.Series(dtype=object)
        for pid, value in column.items():
            if _is_missing(value):
                continue
            try:
                text = _load("report", value)
            except (mio.MedfuseIOError, FileNotFoundError) as err:
                problems.append(f"patient {pid}: report unreadable: {err}")
                continue
            if not text.strip():
                problems.append(f"patient {pid}: report is empty")
                continue
            texts[str(pid)] = text
        if problems:
            raise CohortError(problems, self._source)
        labels = label_reports(pd.Series(texts, dtype=object), names, lang, dictionaries=labeler) if texts else None
        frame = self._frame.reset_index(drop=True).copy()
        for n in names:
            values = labels[n] if labels is not None else pd.Series(dtype=float)
            col = frame["patient_id"].astype(str).map(values).astype(float)
            if uncertain != "keep":
                col = col.replace(-1.0, {"ones": 1.0, "zeros": 0.0, "nan": np.nan}[uncertain])
            frame[prefix + n] = col
        unlabelled: list[str] = []
        if label is not None:
            has_report = frame["patient_id"].astype(str).isin(list(texts))
            unlabelled = [str(p) for p in frame.loc[~has_report, "patient_id"]]
            frame = frame.loc[has_report].reset_index(drop=True)
            frame["label"] = frame[prefix + label].fillna(0.0).astype(int)
        out = Cohort(frame, cache_size=self._cache_size, truth=self.truth, source=self._source)
        out.unlabelled = unlabelled
        return out

    def validate(self, deep: bool = True) -> None:
        """Re-check the manifest; with ``deep`` also read every file.

        Raises one :class:`CohortError` listing every problem.
        """
        problems = _check_frame(self._frame.reset_index(drop=True), check_files=True)
        if deep and not problems:
            for pid, row in self._frame.iterrows():
                for m in MODALITIES:
                    v = row.get(m)
                    if _is_missing(v) or not isinstance(v, Path):
                        continue
                    try:
                        _load(m, v)
                    except (mio.MedfuseIOError, FileNotFoundError) as err:
                        problems.append(f"patient {pid}: {m} unreadable: {err}")
        if problems:
            raise CohortError(problems, self._source)


def _native(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _load(modality: str, value: Any) -> Any:
    if _is_missing(value):
        return None
    if modality == "ct":
        return value if isinstance(value, Volume) else mio.read_ct(value)
    if modality == "xray":
        return value if isinstance(value, np.ndarray) else mio.read_xray(value)
    if modality == "audio":
        return value if isinstance(value, tuple) else mio.read_audio(value)
    if isinstance(value, Path):
        return mio.read_report(value)
    return mio.read_report(str(value)) if not isinstance(value, str) else mio._normalise_whitespace(value)


_EXTS = {
    "ct": mio.CT_EXTENSIONS,
    "xray": mio.XRAY_EXTENSIONS,
    "report": mio.REPORT_EXTENSIONS,
    "audio": mio.AUDIO_EXTENSIONS,
}


def _suffix(p: Path) -> str:
    return ".nii.gz" if p.name.lower().endswith(".nii.gz") else p.suffix.lower()


def _resolve_frame(frame: Any, base: Path, name: str) -> tuple[Any, list[str]]:
    """Check columns and ids, resolve paths; returns (frame or None, problems)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        return None, [f"{name}: expected a DataFrame; got {type(frame).__name__}"]
    problems: list[str] = []
    if "patient_id" not in frame.columns:
        return None, [f"{name}: no 'patient_id' column (columns: {', '.join(map(str, frame.columns))})"]
    message = unknown_columns_message(list(frame.columns), name)
    if message is not None:
        warnings.warn(message, ManifestWarning, stacklevel=5)
    present = [m for m in MODALITIES if m in frame.columns]
    if not present and "label" not in frame.columns:
        problems.append(f"{name}: none of the columns label, {', '.join(MODALITIES)}")
    out = frame.copy()
    ids: list[str | None] = []
    for i, v in enumerate(out["patient_id"]):
        if _is_missing(v):
            problems.append(f"{name}: row {i + 2 if name.endswith('.csv') else i}: empty patient_id")
            ids.append(None)
        else:
            ids.append(str(v).strip())
    out["patient_id"] = ids
    counts = pd.Series([i for i in ids if i is not None]).value_counts()
    for pid, c in counts[counts > 1].items():
        problems.append(f"{name}: duplicate patient_id {pid!r} ({c} rows)")
    for m in present:
        values: list[Any] = []
        for pid, v in zip(ids, out[m]):
            if _is_missing(v):
                values.append(None)
                continue
            if (
                (m == "ct" and isinstance(v, Volume))
                or (m == "xray" and isinstance(v, np.ndarray))
                or (m == "audio" and _is_audio_tuple(v))
            ):
                values.append(v)
                continue
            if not isinstance(v, (str, os.PathLike)):
                problems.append(f"{name}: patient {pid}: {m} must be a path; got {type(v).__name__}")
                values.append(None)
                continue
            text = os.fspath(v)
            if m == "report" and not isinstance(v, os.PathLike):
                candidate = base / text.strip() if "\n" not in text and len(text) < 4096 else None
                if candidate is not None and os.path.isfile(candidate):
                    values.append(candidate)
                elif mio._looks_like_path(text):
                    problems.append(f"{name}: patient {pid}: report file not found: {candidate}")
                    values.append(None)
                else:
                    values.append(text)
                continue
            p = Path(text.strip()).expanduser()
            p = p if p.is_absolute() else base / p
            values.append(p)
        out[m] = pd.Series(values, index=out.index, dtype=object)
    return out, problems


def _is_audio_tuple(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], np.ndarray) and isinstance(v[1], (int, np.integer))


def _check_frame(frame: Any, check_files: bool = True, duplicates: bool = True) -> list[str]:
    """Problems in a resolved frame: ids, labels, files (existence and type)."""
    import pandas as pd

    problems: list[str] = []
    if "patient_id" not in frame.columns:
        return ["no 'patient_id' column"]
    ids = frame["patient_id"]
    if duplicates:
        dup = ids[ids.duplicated(keep=False)]
        for pid in pd.unique(dup):
            problems.append(f"duplicate patient_id {pid!r} ({int((ids == pid).sum())} rows)")
    if "label" in frame.columns:
        problems.extend(_label_problems(frame))
    if check_files:
        for m in MODALITIES:
            if m not in frame.columns:
                continue
            for pid, v in zip(ids, frame[m]):
                if not isinstance(v, Path):
                    continue
                if not v.exists():
                    problems.append(f"patient {pid}: {m} file not found: {v}")
                elif m == "ct" and v.is_dir():
                    if not any(f.is_file() for f in v.iterdir()):
                        problems.append(f"patient {pid}: ct folder is empty: {v}")
                elif v.is_dir():
                    problems.append(f"patient {pid}: {m} is a folder, expected a file: {v}")
                elif _suffix(v) not in _EXTS[m]:
                    problems.append(
                        f"patient {pid}: {m} has unsupported type {_suffix(v) or '(none)'!r} "
                        f"(expected {', '.join(_EXTS[m])}): {v}"
                    )
    return problems


def _label_problems(frame: Any) -> list[str]:
    problems = []
    labels = frame["label"]
    missing = [str(pid) for pid, v in zip(frame["patient_id"], labels) if _is_missing(v)]
    if missing:
        problems.append(f"label missing for {len(missing)} patient(s): {', '.join(missing[:20])}")
    values = [v for v in labels if not _is_missing(v)]
    kinds = {("number" if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) else type(v).__name__) for v in values}
    if len(kinds) > 1:
        problems.append(f"labels mix types ({', '.join(sorted(kinds))}); use one type for the class column")
    numbers = [float(v) for v in values if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)]
    fractional = sorted({v for v in numbers if not float(v).is_integer()})
    if fractional:
        problems.append(
            f"labels are not class values: non-integer numbers {fractional[:5]} (a continuous column?)"
        )
    strings = [v for v in values if isinstance(v, str)]
    if strings:
        stripped = {s: s.strip() for s in strings}
        padded = sorted({s for s, t in stripped.items() if s != t})
        if padded:
            problems.append(f"labels with leading/trailing spaces: {padded[:5]}")
        by_fold: dict[str, set[str]] = {}
        for t in stripped.values():
            by_fold.setdefault(t.casefold(), set()).add(t)
        clashes = [sorted(v) for v in by_fold.values() if len(v) > 1]
        if clashes:
            problems.append(f"labels differ only in case: {clashes[:5]}")
    n_classes = len({str(v).strip().casefold() if isinstance(v, str) else float(v) for v in values})
    if values and n_classes > max(20, len(values) // 2):
        problems.append(f"label has {n_classes} distinct values for {len(values)} patients: not a class column")
    return problems


def _join(resolved: list[tuple[Any, str]]) -> tuple[Any, list[str]]:
    """Outer-join resolved frames on patient_id; conflicting values are problems."""
    import pandas as pd

    if len(resolved) == 1:
        return resolved[0][0], []
    problems: list[str] = []
    order: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    for frame, name in resolved:
        for rec in frame.to_dict("records"):
            pid = rec["patient_id"]
            if pid is None:
                continue
            if pid not in rows:
                rows[pid] = {"patient_id": pid}
                order.append(pid)
            target = rows[pid]
            for col, v in rec.items():
                if col == "patient_id" or _is_missing(v):
                    continue
                if col in target and not _same(target[col], v):
                    problems.append(
                        f"patient {pid}: {col} differs between {origin[(pid, col)]} ({_short(target[col])}) "
                        f"and {name} ({_short(v)})"
                    )
                    continue
                target[col] = v
                origin[(pid, col)] = name
    cols = ["patient_id"] + sorted({c for r in rows.values() for c in r} - {"patient_id"}, key=_col_order)
    frame = pd.DataFrame([rows[p] for p in order], columns=cols)
    return frame.astype({c: object for c in cols if c in MODALITIES}), problems


def _col_order(c: str) -> tuple[int, str]:
    order = {"label": 0, "ct": 1, "xray": 2, "report": 3, "audio": 4}
    return (order.get(c, 9), c)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (np.ndarray, Volume, tuple)) or isinstance(b, (np.ndarray, Volume, tuple)):
        return a is b
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # pragma: no cover - exotic cell values
        return False


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 60 else s[:57] + "..."


# ------------------------------------------------------------------- synthetic


def synthetic_cohort(
    n: int,
    *,
    task: str = "malignancy",
    seed: int = 0,
    lang: str = "en",
    missing: float = 0.1,
    out_dir: PathLike | None = None,
    shape: tuple[int, int, int] = (48, 128, 128),
    cache_size: int = 32,
) -> Cohort:
    """A synthetic lung-nodule cohort: CT, X-ray, report and lung sounds per patient.

    The generative model (latent factors, label, what each modality sees)
    is documented in :mod:`medfuse.data.synthetic`; ``cohort.truth`` is the
    latent table (one row per patient: diameter_mm, density, calcified,
    nodule_hu, spiculation, margin, growth, lobe, lang, malignancy_logit,
    label, which modalities were dropped, and the nodule's centre in voxel
    indices ``nodule_z, nodule_y, nodule_x`` with ``nodule_radius_mm``
    — the nominal sphere; lobulated and spiculated margins extend it —
    for scoring detection). ``label`` is 1 for
    malignant, 0 for benign.

    ``lang`` is "en", "zh" or "mixed" (each case English or Chinese at
    random). Each modality is dropped independently with probability
    ``missing`` (a patient keeps at least one). Deterministic in ``seed``.

    Without ``out_dir`` everything is generated now and kept in memory
    (about 1.6 MB a patient at the default shape). With ``out_dir`` the
    cohort is written there and read back through the real I/O path:
    ``manifest.csv`` (relative paths; missing modalities are empty cells),
    ``<id>/ct/slice_###.dcm`` (a CT DICOM series: ImagePositionPatient,
    PixelSpacing, RescaleSlope 1 / RescaleIntercept -1024 over uint16
    pixels), ``<id>/xray.png`` (16-bit PNG; the PA chest radiograph of
    :func:`medfuse.data.radiograph.pa_radiograph`: 616 x 512 pixels of 0.7 mm,
    12 bits, the whole chest with the patient's CT findings projected) and ``<id>/report.txt``
    (UTF-8; every third Chinese report is written in GB18030 to exercise
    the fallback), ``<id>/audio.wav`` (16-bit PCM, 4 kHz, 10-30 s of
    auscultation from :func:`medfuse.data.auscultation.auscultation`, its
    findings tied to the case's latent factors; in memory a ``(samples,
    rate)`` tuple). The audio is dropped with probability ``missing`` too,
    drawn from its own stream (the other modalities' drops do not change).
    ``truth`` adds ``has_audio`` and the recording's event counts
    ``audio_fine_crackles``, ``audio_coarse_crackles``, ``audio_wheezes``,
    ``audio_breaths``.

    ``task``: "malignancy" (the lung-nodule model above; ``label`` 1/0) or
    "disease" (the disease model of :mod:`medfuse.data.synthetic`:
    ``label`` is one of ``DISEASE_CLASSES`` = "normal", "lung_cancer",
    "tuberculosis", "fibrosis"). With "disease", ``truth`` has ``disease``
    (= label) and ``severity``, the oracle's Bayes-optimal ``p_normal``,
    ``p_lung_cancer``, ``p_tuberculosis``, ``p_fibrosis`` (rows sum to 1),
    the latent findings (``nodule``, ``n_cavities``, ``tree_in_bud``,
    ``consolidation``, ``n_granulomas``, ``effusion``, ``active_infection``,
    ``airway_narrowing``, ``fibrosis`` extent parameter, ``honeycombing``,
    ``traction_bronchiectasis``, ``volume_loss``), the lesions as painted:
    ``cavities`` (JSON list of [z, y, x, outer_radius_mm, inner_radius_mm],
    voxel indices), ``fibrosis_<zone>`` (fibrotic fraction of the lung per
    zone RU, RM, RL, LU, LM, LL: right/left x upper/middle/lower third of
    the slices), ``fibrosis_extent`` (fraction of the whole lung), the
    nodule centre as above (NaN without a nodule), and finding flags named
    like :mod:`medfuse.data.annotate`'s findings (``cavity``,
    ``calcified_granuloma``, ``reticulation``, ``pleural_effusion``), and
    what the report *states* per finding, ``stated_<finding>`` for each of
    ``synthetic.STATED_FINDINGS`` (1 present, 0 negated, -1 hedged, NaN not
    mentioned; see :func:`medfuse.data.synthetic.disease_report`): the
    target of a report labeler, unlike the latent findings, which the
    reports miss, hedge or invent on purpose.
    """
    import pandas as pd

    from . import auscultation, phantoms, radiograph, synthetic

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if lang not in ("en", "zh", "mixed"):
        raise ValueError(f"lang must be 'en', 'zh' or 'mixed'; got {lang!r}")
    if not 0.0 <= float(missing) < 1.0:
        raise ValueError(f"missing must be in [0, 1); got {missing!r}")
    if task not in ("malignancy", "disease"):
        raise ValueError(f"task must be 'malignancy' or 'disease'; got {task!r}")
    disease = task == "disease"
    cases: Sequence[Any] = (
        synthetic.draw_disease_cases(int(n), int(seed), lang) if disease else synthetic.draw_cases(int(n), int(seed), lang)
    )
    drop_rng = np.random.default_rng([int(seed), 2])
    audio_drop_rng = np.random.default_rng([int(seed), 5])
    rows = []
    truth = []
    out = Path(os.fspath(out_dir)) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    n_zh = 0
    for case in cases:
        drop = drop_rng.random(3) < float(missing)
        if drop.all():
            drop[int(drop_rng.integers(3))] = False
        lesion_truth: dict[str, Any] = {}
        if disease:
            ph, report, rec, lesion_truth = _disease_case(case, shape)
        else:
            ph = phantoms.nodule_ct_phantom(
                shape,
                seed=case.seed,
                diameter_mm=case.diameter_mm,
                nodule_hu=case.nodule_hu,
                spiculation=case.spiculation if case.margin == "spiculated" else 0.0,
                lobulation=min(1.0, 2 * case.spiculation) if case.margin != "smooth" else 0.0,
                lobe=case.lobe,
                offset_mm=tuple(np.random.default_rng([case.seed, 3]).uniform(-8.0, 8.0, 3)),
            )
            report = synthetic.write_report(case)
            rec = auscultation.auscultation(case.__dict__, case.seed)
        xray = radiograph.pa_radiograph(ph.volume, bits=12, seed=case.seed)
        drop_audio = bool(audio_drop_rng.random() < float(missing))
        volume = Volume(
            ph.volume,
            ph.spacing,
            (0.0, 0.0, 0.0),
            {"modality": "CT", "patient_id": case.patient_id, "source": "synthetic", "format": "synthetic"},
        )
        row: dict[str, Any] = {"patient_id": case.patient_id, "label": case.label}
        if out is None:
            row["ct"] = None if drop[0] else volume
            row["xray"] = None if drop[1] else xray
            row["report"] = None if drop[2] else report
            row["audio"] = None if drop_audio else (rec.samples, rec.rate)
        else:
            pdir = out / case.patient_id
            pdir.mkdir(exist_ok=True)
            row["ct"] = row["xray"] = row["report"] = row["audio"] = ""
            if not drop[0]:
                _write_ct_series(pdir / "ct", ph.volume, ph.spacing, case.patient_id, case.seed)
                row["ct"] = f"{case.patient_id}/ct"
            if not drop[1]:
                import cv2

                if not cv2.imwrite(os.fspath(pdir / "xray.png"), xray):
                    raise mio.MedfuseIOError("cv2 could not write the X-ray PNG", pdir / "xray.png")
                row["xray"] = f"{case.patient_id}/xray.png"
            if not drop[2]:
                encoding = "utf-8"
                if case.lang == "zh":
                    n_zh += 1
                    encoding = "gb18030" if n_zh % 3 == 0 else "utf-8"
                (pdir / "report.txt").write_bytes(report.encode(encoding))
                row["report"] = f"{case.patient_id}/report.txt"
            if not drop_audio:
                import soundfile as sf

                sf.write(os.fspath(pdir / "audio.wav"), rec.samples, rec.rate, subtype="PCM_16", format="WAV")
                row["audio"] = f"{case.patient_id}/audio.wav"
        rows.append(row)
        t = {k: v for k, v in case.__dict__.items() if k not in ("seed", "oracle")}
        if disease:
            t["label"] = case.disease
            t.update(zip(("p_" + c for c in synthetic.DISEASE_CLASSES), case.oracle))
        t.update({"has_ct": not drop[0], "has_xray": not drop[1], "has_report": not drop[2], "has_audio": not drop_audio})
        t.update({"audio_fine_crackles": rec.count("fine_crackle"), "audio_coarse_crackles": rec.count("coarse_crackle"),
                  "audio_wheezes": rec.count("wheeze"), "audio_breaths": len(rec.breaths)})
        # Where the nodule is (voxel indices, fractional) and its radius: for detection scoring.
        centre = ph.nodule_center if ph.nodule_center is not None else (np.nan, np.nan, np.nan)
        t.update({"nodule_z": centre[0], "nodule_y": centre[1], "nodule_x": centre[2],
                  "nodule_radius_mm": ph.nodule_radius_mm})
        t.update(lesion_truth)
        truth.append(t)
    truth_df = pd.DataFrame(truth).set_index("patient_id", drop=False)
    truth_df.index.name = None  # the ids are also the patient_id column
    if out is None:
        frame = pd.DataFrame(rows, columns=["patient_id", "label", *MODALITIES])
        frame = frame.astype({m: object for m in MODALITIES})
        cohort = Cohort._build([frame], [Path.cwd()], ["synthetic cohort"], cache_size)
    else:
        manifest = out / "manifest.csv"
        pd.DataFrame(rows, columns=["patient_id", "label", *MODALITIES]).to_csv(manifest, index=False)
        truth_df.to_csv(out / "truth.csv", index=False)
        cohort = Cohort.from_csv(manifest, cache_size=cache_size)
    cohort.truth = truth_df
    return cohort


def _disease_case(case: Any, shape: tuple[int, int, int]) -> tuple[Any, str, Any, dict[str, Any]]:
    """CT phantom, report, recording and lesion truth of one disease-model case."""
    import json

    from . import auscultation, synthetic

    ph = synthetic.disease_phantom(case, shape)
    report, stated = synthetic.disease_report(case)
    rec = auscultation.auscultation(synthetic.disease_sound_factors(case), case.seed)
    lung_voxels = int(np.count_nonzero(ph.lung))
    truth: dict[str, Any] = {
        "cavities": json.dumps(
            [[round(float(v), 3) for v in (*c.center, c.outer_radius_mm, c.inner_radius_mm)] for c in ph.cavities]
        ),
        "n_cavities": len(ph.cavities),
        "cavity": len(ph.cavities) > 0,
        "calcified_granuloma": case.n_granulomas > 0,
        "reticulation": case.fibrosis > 0,
        "pleural_effusion": case.effusion,
        "fibrosis_extent": float(np.count_nonzero(ph.fibrosis_mask) / lung_voxels) if lung_voxels else 0.0,
    }
    truth.update({f"fibrosis_{k}": v for k, v in ph.zone_extent().items()})
    # what the report states per finding (1 / 0 / -1 / NaN not mentioned): the report labeler's target
    truth.update({f"stated_{f}": stated.get(f, np.nan) for f in synthetic.STATED_FINDINGS})
    return ph, report, rec, truth


def _uid(root_rng: np.random.Generator) -> str:
    # A deterministic UID under the UUID-derived root 2.25 (DICOM PS3.5 B.2).
    return "2.25." + str(int(root_rng.integers(1, 2**62)) * 2**64 + int(root_rng.integers(0, 2**62)))


def _write_ct_series(
    folder: Path, volume: npt.NDArray[np.int16], spacing: tuple[float, float, float], patient_id: str, seed: int
) -> None:
    """Write a (z, y, x) HU volume as an axial CT DICOM series, head first."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        UID,
        CTImageStorage,
        ExplicitVRLittleEndian,
    )

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 11])
    study_uid, series_uid, frame_uid = _uid(rng), _uid(rng), _uid(rng)
    dz, dy, dx = spacing
    nz, ny, nx = volume.shape
    stored = (volume.astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.Modality = "CT"
    ds.PatientID = patient_id
    ds.PatientName = f"Synthetic^{patient_id}"
    ds.SeriesNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [round(dy, 6), round(dx, 6)]
    ds.SliceThickness = round(dz, 6)
    ds.Rows, ds.Columns = ny, nx
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.RescaleType = "HU"
    for k in range(nz):  # one dataset, updated per slice (building 48 datasets is slower)
        sop_uid = UID(_uid(rng))
        meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, round(-k * dz, 4)]
        ds.PixelData = stored[k].tobytes()
        # Shuffled-looking file names: order must come from the positions.
        ds.save_as(folder / f"slice_{(k * 37) % nz:03d}_{k:03d}.dcm", enforce_file_format=True)
