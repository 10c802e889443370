"""Batch feature extraction over a cohort: one row of features per patient.

:class:`CohortFeatures` holds the extractor settings (one
:class:`~medfuse.features.ImageFeatureExtractor` for CT volumes, one for
X-rays); :func:`extract_cohort` runs them over every patient of a
:class:`~medfuse.data.Cohort` with threads (default), processes or a Dask
cluster, and returns a table with one row per patient:

- ``patient_id``, ``label`` (when the manifest has one);
- ``ct__<feature>``, ``xray__<feature>`` and ``audio__<feature>`` (float64;
  all NaN when the patient has no such image or recording);
- ``report``: the report text (None when missing). Report features are
  learned from the training corpus (:class:`~medfuse.features.ReportVectorizer`),
  so they are computed when a model is fitted, not here.

Failures: one modality that cannot be read or whose features cannot be
computed (a corrupt X-ray PNG) makes that modality missing for that patient
— the others are still extracted — and is reported
(``modality_failures``: patient_id -> {modality: error text}). With
``strict=True`` it fails the whole patient instead. A patient none of whose
modalities could be used fails: it is reported (``failures``: patient_id ->
error text) and left out. Nothing is lost silently. KeyboardInterrupt /
SystemExit abort the run.

Checkpoints and resume (``checkpoint_dir``): each finished patient's row is
written at once, atomically, to ``checkpoint_dir/<n>.row.json`` (JSON, never a
pickle: a checkpoint directory can be planted or shared like any other
input, and reading it must not run code; the directory also holds
``settings.json``, the extractor settings).
Running again with the same directory skips every patient already there, so
an interrupted or crashed run resumes without redoing finished patients.
Patients with a failed modality are not checkpointed: a run after fixing
their files extracts them again.
A directory made with other settings is refused (delete it to start over).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.io import _atomic_write_bytes, _new_file_mode

__all__ = [
    "BACKENDS",
    "CohortFeatures",
    "ExtractionResult",
    "atomic_write_parquet",
    "extract_cohort",
]

BACKENDS = ("threads", "processes", "dask")
SEP = "__"  # modality prefix separator in column names: ct__fo_Mean
DASK_CONNECT_TIMEOUT = "10s"  # how long to wait for a --scheduler address


def _default_ct() -> Any:
    from .features import ImageFeatureExtractor

    # Lung window; every feature over the nodule found by medfuse.segment (the lungs when none is found),
    # and the whole scan's disease findings (cavities, fibrosis extent per zone, lung volume).
    return ImageFeatureExtractor(window=(-600.0, 1500.0), log_sigmas=(1.0, 2.0), laws_vectors=("L5", "E5"), roi="nodule",
                                 groups=("first_order", "histogram", "edges", "glcm", "filters", "findings"))


def _default_xray() -> Any:
    from .features import ImageFeatureExtractor

    # A radiograph (616 x 512 for the synthetic cohort, 2-3k px a side for real ones) is reduced to <= 128 px a
    # side first: the features' cost grows with the pixels, and at 0.7 mm their texture is mostly quantum noise.
    return ImageFeatureExtractor(window="auto", max_side=128)


def _default_audio() -> Any:
    from .features import AudioFeatureExtractor

    return AudioFeatureExtractor()


@dataclass
class CohortFeatures:
    """Extractor settings for every image modality of a cohort.

    ``ct`` and ``xray`` are unfitted or fitted
    :class:`~medfuse.features.ImageFeatureExtractor` instances (defaults:
    lung window (-600, 1500) HU and ``roi="nodule"`` for CT: features of the
    nodule that :mod:`medfuse.segment` finds, or of the lungs when it finds
    none, plus the scan's disease findings (group "findings": cavities,
    fibrosis extent per zone, lung volume); "auto" window over the whole image for X-rays). ``audio``: an
    :class:`~medfuse.features.AudioFeatureExtractor` for the lung sounds.
    """

    ct: Any = field(default_factory=_default_ct)
    xray: Any = field(default_factory=_default_xray)
    audio: Any = field(default_factory=_default_audio)

    def __post_init__(self) -> None:
        from sklearn.base import clone

        self.ct = clone(self.ct)
        self.xray = clone(self.xray)
        self.audio = clone(self.audio)
        # fit() only records the dimensionality (and checks the parameters).
        self.ct.fit([np.zeros((4, 8, 8), np.int16)])
        self.xray.fit([np.zeros((8, 8), np.uint16)])
        self.audio.fit([None])

    @property
    def columns(self) -> list[str]:
        """Feature columns in output order (without patient_id, label, report)."""
        return (
            [f"ct{SEP}{n}" for n in self.ct.get_feature_names_out()]
            + [f"xray{SEP}{n}" for n in self.xray.get_feature_names_out()]
            + [f"audio{SEP}{n}" for n in self.audio.get_feature_names_out()]
        )

    def settings(self) -> dict[str, Any]:
        """The extractor parameters (JSON-safe), which fix what the features mean."""

        def params(e: Any) -> dict[str, Any]:
            return {k: _jsonable(v) for k, v in sorted(e.get_params().items())}

        return {"ct": params(self.ct), "xray": params(self.xray), "audio": params(self.audio), "columns": self.columns}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]

    def patient_row(
        self,
        patient_id: str,
        label: Any,
        ct: Any,
        xray: Any,
        report: Any,
        audio: Any = None,
        *,
        errors: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Features of one patient's loaded data (a row of the output table).

        With ``errors`` (a dict), a modality whose features cannot be computed
        is recorded there (modality -> error text) and its columns are NaN;
        without it the error propagates.
        """
        row: dict[str, Any] = {"patient_id": patient_id}
        if label is not None:
            row["label"] = label
        for name, ext, item in (("ct", self.ct, ct), ("xray", self.xray, xray), ("audio", self.audio, audio)):
            names = ext.get_feature_names_out()
            vals = np.full(len(names), np.nan)
            if item is not None:
                try:
                    vals = ext.transform([item])[0]
                except Exception as err:
                    if errors is None:
                        raise
                    errors[name] = f"features failed: {type(err).__name__}: {err}"
            row.update({f"{name}{SEP}{n}": float(v) for n, v in zip(names, vals)})
        row["report"] = report
        return row


def _jsonable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return repr(v)


# ------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class _Task:
    index: int
    patient_id: str
    label: Any
    ct: Any
    xray: Any
    report: Any
    audio: Any = None


def _tasks(cohort: Any) -> list[_Task]:
    frame = cohort.frame
    has_label = "label" in frame.columns
    out = []
    for i, row in enumerate(frame.to_dict("records")):
        out.append(
            _Task(
                i,
                str(row["patient_id"]),
                _native(row["label"]) if has_label else None,
                row.get("ct"),
                row.get("xray"),
                row.get("report"),
                row.get("audio"),
            )
        )
    return out


def _native(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


ERRORS_KEY = "_medfuse_modality_errors"  # in a task's row: modality -> error text (taken out of the table)


class PatientFailed(Exception):
    """No modality of a patient could be used; the message lists each one's error."""


def run_task(features: CohortFeatures, task: _Task, strict: bool = False) -> dict[str, Any]:
    """Load one patient's files (medfuse.data.io) and compute its row.

    A modality that fails to load or to give features is missing in the row
    and its error is under ``row[ERRORS_KEY]`` (``strict``: the error is
    raised instead). When every modality the patient has fails, the patient
    fails (:class:`PatientFailed`).
    """
    from .data.cohort import _is_missing, _load

    loaded: dict[str, Any] = {}
    errors: dict[str, str] = {}
    given = {
        m: v
        for m, v in (("ct", task.ct), ("xray", task.xray), ("report", task.report), ("audio", task.audio))
        if not _is_missing(v)
    }
    for modality in ("ct", "xray", "report", "audio"):
        try:
            loaded[modality] = _load(modality, given.get(modality))
        except Exception as err:
            if strict:
                raise
            loaded[modality] = None
            errors[modality] = f"{type(err).__name__}: {err}"
    row = features.patient_row(
        task.patient_id,
        task.label,
        loaded["ct"],
        loaded["xray"],
        loaded["report"],
        loaded["audio"],
        errors=None if strict else errors,
    )
    if given and len(errors) == len(given):
        raise PatientFailed("; ".join(f"{m}: {e}" for m, e in errors.items()))
    if errors:
        row[ERRORS_KEY] = errors
    return row


_worker_limits: list[Any] = []  # the threadpoolctl limiter of a worker process, kept alive


def _process_init() -> None:
    """Each process worker: one kernel thread and one BLAS/OpenMP thread, for good."""
    from .kernels._threads import single_thread_environment

    _worker_limits.append(single_thread_environment())


def _thread_init() -> None:
    """Each worker thread: one OpenMP thread. The BLAS pools are limited to one thread for the whole run
    (process-wide) by the caller; OpenMP settings are per thread, so each worker thread sets its own (the
    thread ends with the run, nothing to restore)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")


def _run_task_single_thread(features: CohortFeatures, task: _Task, strict: bool = False) -> dict[str, Any]:
    """A task on a Dask worker (the cluster runs several at once): one kernel and one BLAS/OpenMP thread."""
    from .kernels._threads import get_num_threads, library_threads, single_thread_environment

    if get_num_threads() != 1 or not _worker_limits:
        _worker_limits.append(single_thread_environment())
    with library_threads(1):  # pools loaded since, too
        return run_task(features, task, strict)


# ------------------------------------------------------------------ checkpoints


class _Checkpoint:
    """Per-patient results in a directory; every file is written atomically."""

    def __init__(self, folder: Path, features: CohortFeatures) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        settings = folder / "settings.json"
        fp = features.fingerprint()
        if settings.exists():
            try:
                old = json.loads(settings.read_text())["fingerprint"]
            except (OSError, ValueError, KeyError, TypeError):
                old = None
            if old != fp:
                raise ValueError(
                    f"checkpoint directory {folder} holds results of other extractor settings "
                    "(or is damaged); delete it to start over"
                )
        else:
            _atomic_write_bytes(
                settings, json.dumps({"fingerprint": fp, **features.settings()}, indent=1).encode()
            )

    def _path(self, task: _Task) -> Path:
        h = hashlib.sha1(task.patient_id.encode()).hexdigest()[:12]
        return self.folder / f"{task.index:06d}_{h}.row.json"

    def load(self, task: _Task) -> dict[str, Any] | None:
        """The saved row of a patient, or None (absent, damaged, or another patient's): then it is redone."""
        p = self._path(task)
        if not p.exists():
            return None
        try:
            row = json.loads(p.read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return row if isinstance(row, dict) and row.get("patient_id") == task.patient_id else None

    def save(self, task: _Task, row: dict[str, Any]) -> None:
        try:
            data = json.dumps(row, allow_nan=True).encode("utf-8")
        except (TypeError, ValueError):  # a label JSON cannot hold: not checkpointed, redone on resume
            return
        _atomic_write_bytes(self._path(task), data)

    def remove(self) -> None:
        for p in self.folder.iterdir():
            p.unlink()
        self.folder.rmdir()


def atomic_write_parquet(frame: Any, path: str | os.PathLike[str]) -> None:
    """Write a DataFrame as Parquet to a temp file beside ``path``, then rename it.

    Readers see either the old file or the complete new one, never a
    half-written Parquet (``os.replace`` is atomic within a filesystem).
    """
    p = Path(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _new_file_mode())
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ run


@dataclass
class ExtractionResult:
    """``features``: one row per extracted patient (manifest order);
    ``failures``: patient_id -> error text (patients left out);
    ``modality_failures``: patient_id -> {modality: error text} (patients
    extracted without that modality); ``resumed``: patients taken from the
    checkpoint; ``seconds``: wall time."""

    features: Any
    failures: dict[str, str]
    resumed: int
    seconds: float
    modality_failures: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def n_ok(self) -> int:
        return len(self.features)


def _executor(backend: str, workers: int, scheduler: str | None) -> tuple[Any, Callable[[], None]]:
    if backend == "threads":
        ex: Executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medfuse-extract", initializer=_thread_init)
        return ex, lambda: ex.shutdown(wait=True, cancel_futures=True)
    if backend == "processes":
        # spawn, not Linux's default fork: forking a process that has other
        # threads (a Dask event loop, pyarrow's pools, a notebook's threads)
        # copies locks they hold into a child that can never release them.
        ex = ProcessPoolExecutor(max_workers=workers, initializer=_process_init,
                                 mp_context=multiprocessing.get_context("spawn"))
        return ex, lambda: ex.shutdown(wait=True, cancel_futures=True)
    if backend == "dask":
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(
                "the dask backend needs dask.distributed: python -m pip install 'medfuse[dask]'"
            ) from None
        if scheduler:
            try:
                client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as err:
                raise ValueError(f"cannot connect to the Dask scheduler at {scheduler}: {err}") from None
        else:
            # ":0": any free port (the default 8787 collides with any other Dask on the machine)
            client = Client(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        return client, client.close
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")


def extract_cohort(
    cohort: Any,
    features: CohortFeatures | None = None,
    *,
    workers: int = 1,
    backend: str = "threads",
    scheduler: str | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    on_failure: Callable[[str, str], None] | None = None,
    strict: bool = False,
    on_modality_failure: Callable[[str, str, str], None] | None = None,
) -> ExtractionResult:
    """Features of every patient of ``cohort``; see the module docstring.

    ``workers`` patients run at once. ``backend``: "threads" (default; the
    kernels release the GIL, and each worker gets one kernel thread and one
    BLAS/OpenMP thread when ``workers > 1``; a single worker uses
    ``medfuse.get_num_threads()`` of each), "processes" (one kernel and one
    BLAS/OpenMP thread each) or "dask" (a
    ``distributed.Client`` on ``scheduler``, or a local cluster of
    ``workers`` processes when ``scheduler`` is None). ``progress`` shows a
    tqdm bar on stderr. ``on_failure(patient_id, error)`` is called for
    each failing patient as it happens, ``on_modality_failure(patient_id,
    modality, error)`` for each modality extracted as missing because it
    failed. ``strict=True``: a failing modality fails its patient.
    """
    import pandas as pd

    from .kernels._threads import get_num_threads, library_threads, set_num_threads

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer; got {workers!r}")
    if scheduler is not None and backend != "dask":
        raise ValueError("scheduler applies to backend='dask' only")
    features = features if features is not None else CohortFeatures()
    t0 = time.perf_counter()
    tasks = _tasks(cohort)
    ckpt = _Checkpoint(Path(os.fspath(checkpoint_dir)), features) if checkpoint_dir is not None else None
    rows: dict[int, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    modality_failures: dict[str, dict[str, str]] = {}
    todo: list[_Task] = []
    for t in tasks:
        done = ckpt.load(t) if ckpt is not None else None
        if done is not None:
            rows[t.index] = done
        else:
            todo.append(t)
    resumed = len(rows)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), initial=resumed, unit="patient", desc="extract", disable=not progress, leave=True)

    def finish(t: _Task, row: dict[str, Any] | None, err: BaseException | None) -> None:
        if err is not None:
            msg = f"{type(err).__name__}: {err}"
            failures[t.patient_id] = msg
            if on_failure is not None:
                on_failure(t.patient_id, msg)
        else:
            assert row is not None
            errors = row.pop(ERRORS_KEY, None)
            rows[t.index] = row
            if errors:
                modality_failures[t.patient_id] = errors
                if on_modality_failure is not None:
                    for m, msg in errors.items():
                        on_modality_failure(t.patient_id, m, msg)
            elif ckpt is not None:  # a patient with a failed modality is redone on the next run
                ckpt.save(t, row)
        bar.update(1)

    saved_threads = get_num_threads()
    try:
        if workers == 1 and backend == "threads":
            with library_threads(saved_threads):  # BLAS/OpenMP: as many threads as the kernels
                for t in todo:
                    try:
                        row = run_task(features, t, strict)
                    except Exception as err:
                        finish(t, None, err)
                    else:
                        finish(t, row, None)
        else:
            _run_parallel(features, todo, workers, backend, scheduler, finish, strict)
    finally:
        set_num_threads(saved_threads)
        bar.close()
    ordered = [rows[i] for i in sorted(rows)]
    frame = pd.DataFrame(ordered) if ordered else pd.DataFrame(columns=["patient_id", *features.columns, "report"])
    return ExtractionResult(frame, failures, resumed, time.perf_counter() - t0, modality_failures)


def _run_parallel(
    features: CohortFeatures,
    todo: Sequence[_Task],
    workers: int,
    backend: str,
    scheduler: str | None,
    finish: Callable[[_Task, Any, Any], None],
    strict: bool = False,
) -> None:
    from contextlib import nullcontext

    from .kernels._threads import library_threads, set_num_threads

    limit: Any = nullcontext()
    if backend == "threads":
        set_num_threads(1)  # process-wide: each of the `workers` threads runs single-threaded kernels
        limit = library_threads(1)  # and single-threaded BLAS/OpenMP (their pools are process-wide too)
    with limit:
        _run_pool(features, todo, workers, backend, scheduler, finish, strict)


def _run_pool(
    features: CohortFeatures,
    todo: Sequence[_Task],
    workers: int,
    backend: str,
    scheduler: str | None,
    finish: Callable[[_Task, Any, Any], None],
    strict: bool,
) -> None:
    pool, close = _executor(backend, workers, scheduler)

    def settle(fut: Any, t: _Task) -> None:
        try:
            row = fut.result()
        except Exception as err:
            finish(t, None, err)
        else:
            finish(t, row, None)

    try:
        if backend == "dask":
            from distributed import as_completed

            fut_task = {pool.submit(_run_task_single_thread, features, t, strict, pure=False): t for t in todo}
            for fut in as_completed(list(fut_task)):
                settle(fut, fut_task[fut])
            return
        pending: set[Future[Any]] = set()
        fut_of: dict[Future[Any], _Task] = {}
        it: Iterable[_Task] = iter(todo)
        # Keep at most 2 x workers tasks queued, so an interrupt loses little work.
        for t in it:
            f = pool.submit(run_task, features, t, strict)
            fut_of[f] = t
            pending.add(f)
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                settle(f, fut_of.pop(f))
                nxt = next(it, None)  # type: ignore[call-overload]
                if nxt is not None:
                    nf = pool.submit(run_task, features, nxt, strict)
                    fut_of[nf] = nxt
                    pending.add(nf)
    finally:
        close()
