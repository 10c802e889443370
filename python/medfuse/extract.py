"""Batch feature extraction over a cohort: one row of features per patient.

:class:`CohortFeatures` holds the extractor settings (one
:class:`~medfuse.features.ImageFeatureExtractor` for CT volumes, one for
X-rays); :func:`extract_cohort` runs them over every patient of a
:class:`~medfuse.data.Cohort` with threads (default), processes or a Dask
cluster, and returns a table with one row per patient:

- ``patient_id``, ``label`` (when the manifest has one);
- ``ct__<feature>`` and ``xray__<feature>`` (float64; all NaN when the
  patient has no such image);
- ``report``: the report text (None when missing). Report features are
  learned from the training corpus (:class:`~medfuse.features.ReportVectorizer`),
  so they are computed when a model is fitted, not here.

Failures: a patient whose files cannot be read or whose features cannot be
computed is reported (``failures``: patient_id -> error text) and left out;
it is never silently lost. KeyboardInterrupt / SystemExit abort the run.

Checkpoints and resume (``checkpoint_dir``): each finished patient's row is
written at once, atomically, to ``checkpoint_dir/<n>.pkl`` (a small pickle;
the directory also holds ``settings.json``, the extractor settings).
Running again with the same directory skips every patient already there, so
an interrupted or crashed run resumes without redoing finished patients.
A directory made with other settings is refused (delete it to start over).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
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

    # Lung window; every feature over the nodule found by medfuse.segment (the lungs when none is found).
    return ImageFeatureExtractor(window=(-600.0, 1500.0), log_sigmas=(1.0, 2.0), laws_vectors=("L5", "E5"), roi="nodule")


def _default_xray() -> Any:
    from .features import ImageFeatureExtractor

    return ImageFeatureExtractor(window="auto")


@dataclass
class CohortFeatures:
    """Extractor settings for every image modality of a cohort.

    ``ct`` and ``xray`` are unfitted or fitted
    :class:`~medfuse.features.ImageFeatureExtractor` instances (defaults:
    lung window (-600, 1500) HU and ``roi="nodule"`` for CT: features of the
    nodule that :mod:`medfuse.segment` finds, or of the lungs when it finds
    none; "auto" window over the whole image for X-rays).
    """

    ct: Any = field(default_factory=_default_ct)
    xray: Any = field(default_factory=_default_xray)

    def __post_init__(self) -> None:
        from sklearn.base import clone

        self.ct = clone(self.ct)
        self.xray = clone(self.xray)
        # fit() only records the dimensionality (and checks the parameters).
        self.ct.fit([np.zeros((4, 8, 8), np.int16)])
        self.xray.fit([np.zeros((8, 8), np.uint16)])

    @property
    def columns(self) -> list[str]:
        """Feature columns in output order (without patient_id, label, report)."""
        return [f"ct{SEP}{n}" for n in self.ct.get_feature_names_out()] + [
            f"xray{SEP}{n}" for n in self.xray.get_feature_names_out()
        ]

    def settings(self) -> dict[str, Any]:
        """The extractor parameters (JSON-safe), which fix what the features mean."""

        def params(e: Any) -> dict[str, Any]:
            return {k: _jsonable(v) for k, v in sorted(e.get_params().items())}

        return {"ct": params(self.ct), "xray": params(self.xray), "columns": self.columns}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]

    def patient_row(self, patient_id: str, label: Any, ct: Any, xray: Any, report: Any) -> dict[str, Any]:
        """Features of one patient's loaded data (a row of the output table)."""
        row: dict[str, Any] = {"patient_id": patient_id}
        if label is not None:
            row["label"] = label
        for name, ext, item in (("ct", self.ct, ct), ("xray", self.xray, xray)):
            names = ext.get_feature_names_out()
            vals = ext.transform([item])[0] if item is not None else np.full(len(names), np.nan)
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
            )
        )
    return out


def _native(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def run_task(features: CohortFeatures, task: _Task) -> dict[str, Any]:
    """Load one patient's files (medfuse.data.io) and compute its row."""
    from .data.cohort import _load

    ct = _load("ct", task.ct)
    xray = _load("xray", task.xray)
    report = _load("report", task.report)
    return features.patient_row(task.patient_id, task.label, ct, xray, report)


def _process_init() -> None:  # each process worker: one kernel thread
    os.environ["MEDFUSE_NUM_THREADS"] = "1"
    from . import set_num_threads

    set_num_threads(1)


def _run_task_single_thread(features: CohortFeatures, task: _Task) -> dict[str, Any]:
    from . import get_num_threads, set_num_threads

    if get_num_threads() != 1:  # a Dask worker process: the cluster runs several tasks at once
        set_num_threads(1)
    return run_task(features, task)


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
        return self.folder / f"{task.index:06d}_{h}.pkl"

    def load(self, task: _Task) -> dict[str, Any] | None:
        p = self._path(task)
        if not p.exists():
            return None
        try:
            with open(p, "rb") as f:
                row = pickle.load(f)
        except Exception:
            return None
        return row if isinstance(row, dict) and row.get("patient_id") == task.patient_id else None

    def save(self, task: _Task, row: dict[str, Any]) -> None:
        _atomic_write_bytes(self._path(task), pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL))

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
    ``failures``: patient_id -> error text; ``resumed``: patients taken from
    the checkpoint; ``seconds``: wall time."""

    features: Any
    failures: dict[str, str]
    resumed: int
    seconds: float

    @property
    def n_ok(self) -> int:
        return len(self.features)


def _executor(backend: str, workers: int, scheduler: str | None) -> tuple[Any, Callable[[], None]]:
    if backend == "threads":
        ex: Executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medfuse-extract")
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
) -> ExtractionResult:
    """Features of every patient of ``cohort``; see the module docstring.

    ``workers`` patients run at once. ``backend``: "threads" (default; the
    kernels release the GIL, and each worker gets one kernel thread when
    ``workers > 1``), "processes" (one kernel thread each) or "dask" (a
    ``distributed.Client`` on ``scheduler``, or a local cluster of
    ``workers`` processes when ``scheduler`` is None). ``progress`` shows a
    tqdm bar on stderr. ``on_failure(patient_id, error)`` is called for
    each failing patient as it happens.
    """
    import pandas as pd

    from . import get_num_threads, set_num_threads

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
            rows[t.index] = row
            if ckpt is not None:
                ckpt.save(t, row)
        bar.update(1)

    saved_threads = get_num_threads()
    try:
        if workers == 1 and backend == "threads":
            for t in todo:
                try:
                    row = run_task(features, t)
                except Exception as err:
                    finish(t, None, err)
                else:
                    finish(t, row, None)
        else:
            _run_parallel(features, todo, workers, backend, scheduler, finish)
    finally:
        set_num_threads(saved_threads)
        bar.close()
    ordered = [rows[i] for i in sorted(rows)]
    frame = pd.DataFrame(ordered) if ordered else pd.DataFrame(columns=["patient_id", *features.columns, "report"])
    return ExtractionResult(frame, failures, resumed, time.perf_counter() - t0)


def _run_parallel(
    features: CohortFeatures,
    todo: Sequence[_Task],
    workers: int,
    backend: str,
    scheduler: str | None,
    finish: Callable[[_Task, Any, Any], None],
) -> None:
    from . import set_num_threads

    if backend == "threads":
        set_num_threads(1)  # process-wide: each of the `workers` threads runs single-threaded kernels
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

            fut_task = {pool.submit(_run_task_single_thread, features, t, pure=False): t for t in todo}
            for fut in as_completed(list(fut_task)):
                settle(fut, fut_task[fut])
            return
        pending: set[Future[Any]] = set()
        fut_of: dict[Future[Any], _Task] = {}
        it: Iterable[_Task] = iter(todo)
        # Keep at most 2 x workers tasks queued, so an interrupt loses little work.
        for t in it:
            f = pool.submit(run_task, features, t)
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
                    nf = pool.submit(run_task, features, nxt)
                    fut_of[nf] = nxt
                    pending.add(nf)
    finally:
        close()
