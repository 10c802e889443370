"""The ``medfuse`` command line.

Commands: ``demo``, ``extract``, ``train``, ``predict``, ``evaluate``,
``acquire``, ``bench``, ``info`` (``medfuse COMMAND --help`` for each).

Exit codes: 0 success; 1 failure (some patients could not be extracted, a
benchmark failed); 2 usage or input error (bad arguments, missing files,
bad manifests, unreadable feature or model files); 130 interrupted
(``extract`` keeps its checkpoint: run the same command again to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import medfuse

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

FEATURES_META_KEY = b"medfuse.extraction"


class _UsageError(Exception):
    """A bad command line or input that argparse cannot catch by itself."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _cores() -> int:
    from .kernels._threads import default_num_threads

    return default_num_threads()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medfuse",
        description="Multimodal medical image analysis with a fast C++ core.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage or input error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"medfuse {medfuse.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="synthetic cohort -> files -> features -> every model -> table and HTML report",
        description=(
            "Write a synthetic lung-nodule cohort (CT DICOM series, 16-bit PNG X-rays, report "
            "text, manifest.csv) to --out, read it back through the manifest, extract CT, "
            "X-ray and report features, cross-validate every single-modality model and the "
            "early, late and attention fusions, learn which test to order next (Q-learning, "
            "acquire/acquire.html), print the table and write report.html."
        ),
    )
    demo.add_argument("--n", type=_positive_int, default=200, help="patients (default: 200)")
    demo.add_argument("--lang", choices=("en", "zh", "mixed"), default="en", help="report language (default: en)")
    demo.add_argument("--out", type=Path, default=Path("medfuse-demo"), help="output folder (default: ./medfuse-demo)")
    demo.add_argument("--seed", type=int, default=0, help="cohort and fold seed (default: 0)")
    demo.add_argument("--workers", type=_positive_int, default=None, help="extraction workers (default: all cores)")
    demo.add_argument("--folds", type=_positive_int, default=5, help="cross-validation folds (default: 5)")
    demo.add_argument("--learner", choices=("svm", "rf", "gbdt", "logreg"), default="logreg",
                      help="learner of the single-modality, early and late models (default: logreg)")
    demo.set_defaults(handler=_cmd_demo)

    ex = sub.add_parser(
        "extract",
        help="features of every patient of a manifest -> Parquet",
        description=(
            "Read a manifest (CSV or Parquet: patient_id, label, ct, xray, report), extract "
            "CT and X-ray features (medfuse.features.ImageFeatureExtractor) and keep the "
            "report text, one row per patient, written atomically to OUTPUT. Patients that "
            "fail are reported with their error and skipped. Each finished patient is "
            "checkpointed in OUTPUT.partial/; an interrupted run resumes from there when "
            "the same command is run again (--restart discards it). The checkpoint is "
            "removed when every patient succeeded. Exit code 1 when some patient failed."
        ),
    )
    ex.add_argument("manifest", type=Path, metavar="MANIFEST", help="manifest .csv or .parquet")
    ex.add_argument("-o", "--output", type=Path, required=True, metavar="FEATURES", help="output .parquet")
    ex.add_argument("--workers", type=_positive_int, default=None,
                    help="patients extracted at once (default: all cores; each gets one kernel thread)")
    ex.add_argument("--backend", choices=("threads", "processes", "dask"), default="threads",
                    help="threads (default; the kernels release the GIL), processes, or dask")
    ex.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="Dask scheduler address (tcp://host:8786); default: a local cluster of --workers processes")
    ex.add_argument("--restart", action="store_true", help="discard a checkpoint of an earlier run and start over")
    ex.add_argument("--no-progress", action="store_true", help="no progress bar")
    ex.set_defaults(handler=_cmd_extract)

    tr = sub.add_parser("train", help="fit a fusion classifier on a feature table -> model file (joblib)",
                        description="Fit medfuse.learn.MultimodalModel on FEATURES (from `medfuse extract`) "
                        "and save it with the extractor settings, so `medfuse predict` extracts the same features.")
    tr.add_argument("features", type=Path, metavar="FEATURES", help="feature table (.parquet) with a label column")
    tr.add_argument("--fusion", choices=("early", "late", "attention"), default="late", help="fusion (default: late)")
    tr.add_argument("--learner", choices=("svm", "rf", "gbdt", "logreg"), default="logreg",
                    help="learner (default: logreg; the attention fusion has its own output layer)")
    tr.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL", help="model file to write")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tr.set_defaults(handler=_cmd_train)

    pr = sub.add_parser("predict", help="extract a manifest's features and predict with a saved model",
                        description="Extract MANIFEST's features with the settings stored in MODEL, then write "
                        "patient_id, prediction, probability (of each class) and error to a CSV. Patients "
                        "whose extraction failed are listed with their error and no prediction.")
    pr.add_argument("model", type=Path, metavar="MODEL")
    pr.add_argument("manifest", type=Path, metavar="MANIFEST")
    pr.add_argument("-o", "--output", type=Path, required=True, metavar="PREDICTIONS", help="output .csv")
    pr.add_argument("--workers", type=_positive_int, default=None, help="extraction workers (default: all cores)")
    pr.set_defaults(handler=_cmd_predict)

    ev = sub.add_parser("evaluate", help="cross-validate every modality and fusion on a feature table -> HTML report",
                        description="Stratified k-fold evaluation of each single modality and the early, late and "
                        "attention fusions (AUC, accuracy, F1, mean ± std across folds); prints the table "
                        "and writes OUT/report.html and OUT/results.csv.")
    ev.add_argument("features", type=Path, metavar="FEATURES")
    ev.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    ev.add_argument("--folds", type=_positive_int, default=5, help="folds (default: 5)")
    ev.add_argument("--seed", type=int, default=0, help="fold seed (default: 0)")
    ev.add_argument("--learner", choices=("svm", "rf", "gbdt", "logreg"), default="logreg", help="learner")
    ev.add_argument("--manifest", type=Path, default=None,
                    help="the cohort's manifest: adds example images (CT slice, X-ray, edges) to the report")
    ev.set_defaults(handler=_cmd_evaluate)

    aq = sub.add_parser(
        "acquire", help="learn which test to order next (RL) and compare with fixed policies -> HTML report",
        description="Cost-aware test ordering on a feature table: per fold, a classifier per subset of modalities "
        "and the agent (q: tabular Q-learning, pg: REINFORCE with a baseline, dqn: deep Q-network, needs torch) are "
        "trained on the training patients; the agent and the fixed policies (all tests, no test, each single test, the "
        "threshold rule 'X-ray, then CT if p in [a, b]') run on the held-out patients, for each λ (the penalty of a "
        "wrong diagnosis; a right one earns +1, each test costs its cost). Prints the table and writes OUT/results.csv, "
        "OUT/front.csv, OUT/front.png and OUT/acquire.html (table, cost-accuracy front, example acquisition paths). "
        "A decision aid on synthetic data, not a clinical tool.")
    aq.add_argument("features", type=Path, metavar="FEATURES", help="feature table (.parquet) with a label column")
    aq.add_argument("--costs", default=None, metavar="M=C,...",
                    help="cost of each modality, e.g. xray=1,ct=5,report=20 (default: those, for the table's modalities)")
    aq.add_argument("--agent", action="append", choices=("q", "pg", "dqn"), default=None,
                    help="agent (repeat for several; default: q)")
    aq.add_argument("--lams", default="30,100,300,1000,3000", metavar="L,...",
                    help="penalties of a wrong diagnosis to sweep, in cost units (default: 30,100,300,1000,3000)")
    aq.add_argument("--folds", type=_positive_int, default=5, help="folds (default: 5)")
    aq.add_argument("--seed", type=int, default=0, help="fold and agent seed (default: 0)")
    aq.add_argument("--episodes", type=_positive_int, default=None,
                    help="training episodes of q and pg (default: 30000) / environment steps of dqn (default: 20000)")
    aq.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    aq.set_defaults(handler=_cmd_acquire)

    bench = sub.add_parser(
        "bench",
        help="kernels vs their NumPy twins and OpenCV/SciPy/PyTorch: medians and ratios",
        description=(
            "With --quick: time one case of each kernel family in this process (edges, histogram, "
            "glcm, gaussian/convolve, median, conv2d, attention, label): medfuse at 1 thread and "
            "all cores vs its NumPy twin and OpenCV, SciPy, scikit-image, PyTorch where installed "
            "(under a minute). Without --quick: run the pytest-benchmark suites "
            "(`python -m pytest benchmarks --benchmark-only`; needs the source tree)."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="in-process timing table, under a minute")
    bench.add_argument("--path", type=Path, default=None,
                       help="benchmarks folder (default: ./benchmarks, else the one beside the source package)")
    bench.add_argument("--json", type=Path, default=None, help="also write pytest-benchmark JSON here")
    bench.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG",
                       help="extra pytest arguments, after `--` (e.g. -- -k u8-512)")
    bench.set_defaults(handler=_cmd_bench)

    info = sub.add_parser("info", help="print build information (SIMD paths, threads, compiler)")
    info.set_defaults(handler=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("medfuse: error: a command is required (demo, extract, train, predict, evaluate, acquire, bench, info)",
              file=sys.stderr)
        return EXIT_USAGE
    from .data.cohort import CohortError
    from .data.io import MedfuseFileNotFoundError, MedfuseIOError

    try:
        return int(args.handler(args))
    except _UsageError as err:
        print(f"medfuse {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except CohortError as err:
        print(f"medfuse {args.command}: error: bad manifest: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (MedfuseFileNotFoundError, MedfuseIOError) as err:
        print(f"medfuse {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"medfuse {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into e.g. `head`, which exited early
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return EXIT_FAILURE


# -- shared helpers -----------------------------------------------------------


def _load_manifest(path: Path) -> Any:
    from .data.cohort import Cohort

    if not path.exists():
        raise _UsageError(f"manifest {path} not found")
    if path.is_dir():
        raise _UsageError(f"manifest {path} is a folder; give the manifest file (.csv or .parquet)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Cohort.from_csv(path, cache_size=0)
    if suffix in (".parquet", ".pq"):
        return Cohort.from_parquet(path, cache_size=0)
    raise _UsageError(f"manifest {path} must be a .csv or .parquet file")


def _check_output(path: Path, what: str) -> None:
    parent = path.resolve().parent
    if not parent.is_dir():
        raise _UsageError(f"{what} {path}: folder {parent} does not exist")
    if path.is_dir():
        raise _UsageError(f"{what} {path} is a folder; give a file name")


def _write_features(frame: Any, path: Path, extraction: Any) -> None:
    """Atomically write the feature table with the extractor settings in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .data.io import _atomic_write_bytes

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[FEATURES_META_KEY] = json.dumps(extraction.settings()).encode()
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    _atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _read_features(path: Path) -> tuple[Any, Any]:
    """(DataFrame, CohortFeatures or None) of a feature table written by `extract`."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise _UsageError(f"feature table {path} not found")
    if path.is_dir():
        raise _UsageError(f"feature table {path} is a folder")
    try:
        table = pq.read_table(path)
    except Exception as err:
        raise _UsageError(f"cannot read feature table {path} as Parquet: {err}") from None
    frame = table.to_pandas()
    meta = (table.schema.metadata or {}).get(FEATURES_META_KEY)
    extraction = _extraction_from_settings(json.loads(meta)) if meta else None
    from .learn.evaluate import image_blocks

    if not image_blocks(frame) and "report" not in frame.columns:
        raise _UsageError(f"{path} holds no medfuse features (no ct__*, xray__* or report column); "
                          "make it with `medfuse extract`")
    return frame, extraction


def _extraction_from_settings(settings: dict[str, Any]) -> Any:
    from .extract import CohortFeatures
    from .features import ImageFeatureExtractor

    def build(params: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        return ImageFeatureExtractor(**kwargs)

    return CohortFeatures(ct=build(settings["ct"]), xray=build(settings["xray"]))


def _run_extraction(cohort: Any, extraction: Any, workers: int, backend: str = "threads",
                    scheduler: str | None = None, checkpoint: Path | None = None,
                    progress: bool = True) -> Any:
    from tqdm.auto import tqdm

    from .extract import extract_cohort

    def report_failure(pid: str, msg: str) -> None:
        tqdm.write(f"medfuse: patient {pid} failed, skipped: {msg}", file=sys.stderr)

    return extract_cohort(cohort, extraction, workers=workers, backend=backend, scheduler=scheduler,
                          checkpoint_dir=checkpoint, progress=progress, on_failure=report_failure)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line.rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


# -- info -------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    for key, value in medfuse.build_info().items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        print(f"{key:>20}: {value}")
    return EXIT_OK


# -- extract ------------------------------------------------------------------


def _require_modality_columns(cohort: Any, manifest: Path) -> None:
    """A manifest without any modality column has nothing to extract: say so now, not at `train`."""
    from .data.cohort import MODALITIES

    columns = [str(c) for c in cohort.frame.columns]
    if not any(m in columns for m in MODALITIES):
        raise _UsageError(
            f"{manifest} has no modality column: found {', '.join(columns)}; "
            f"expected patient_id, label and at least one of {', '.join(MODALITIES)}"
        )


def _cmd_extract(args: argparse.Namespace) -> int:
    from .extract import CohortFeatures

    if args.scheduler is not None and args.backend != "dask":
        raise _UsageError("--scheduler applies to --backend dask only")
    if args.output.suffix.lower() not in (".parquet", ".pq"):
        raise _UsageError(f"--output {args.output} must end in .parquet")
    _check_output(args.output, "--output")
    if args.backend == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise _UsageError("--backend dask needs dask.distributed: python -m pip install 'medfuse[dask]'") from None
    cohort = _load_manifest(args.manifest)
    _require_modality_columns(cohort, args.manifest)
    checkpoint = args.output.with_name(args.output.name + ".partial")
    if args.restart and checkpoint.exists():
        for p in checkpoint.iterdir():
            p.unlink()
        checkpoint.rmdir()
    extraction = CohortFeatures()
    workers = args.workers or _cores()
    print(f"extracting {len(cohort)} patients from {args.manifest} "
          f"({workers} {args.backend} worker{'s' * (workers > 1)}; checkpoint {checkpoint})", file=sys.stderr)
    try:
        res = _run_extraction(cohort, extraction, workers, args.backend, args.scheduler, checkpoint,
                              progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"medfuse extract: interrupted; finished patients are kept in {checkpoint}: "
              "run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as err:  # e.g. a checkpoint of other settings
        raise _UsageError(str(err)) from None
    if res.n_ok:
        _write_features(res.features, args.output, extraction)
    resumed = f" ({res.resumed} from the checkpoint)" if res.resumed else ""
    print(f"extracted {res.n_ok} ok{resumed}, {len(res.failures)} failed, of {len(cohort)} patients "
          f"in {res.seconds:.1f} s" + (f" -> {args.output}" if res.n_ok else ""))
    for pid, msg in res.failures.items():
        print(f"  failed: {pid}: {msg}")
    if not res.failures:
        from .extract import _Checkpoint

        _Checkpoint(checkpoint, extraction).remove()
    else:
        print(f"checkpoint kept in {checkpoint}: fix the failing files and run again to extract only those",
              file=sys.stderr)
    if not res.n_ok:
        print("medfuse extract: error: no patient could be extracted; nothing written", file=sys.stderr)
    return EXIT_OK if not res.failures else EXIT_FAILURE


# -- train / predict / evaluate -----------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    import joblib

    from .learn.evaluate import MultimodalModel

    _check_output(args.output, "--output")
    frame, extraction = _read_features(args.features)
    if "label" not in frame.columns:
        raise _UsageError(f"{args.features} has no label column: training needs labels")
    if frame["label"].isna().any():
        raise _UsageError(f"{args.features}: {int(frame['label'].isna().sum())} patients have no label")
    if frame["label"].nunique() < 2:
        raise _UsageError(f"{args.features}: label has a single class; a classifier needs two")
    t0 = time.perf_counter()
    model = MultimodalModel(args.fusion, args.learner, extraction=extraction, random_state=args.seed)
    try:
        model.fit(frame)
    except ValueError as err:
        raise _UsageError(str(err)) from None
    from .data.io import _atomic_write_bytes

    buf = __import__("io").BytesIO()
    joblib.dump({"medfuse_model": 1, "version": medfuse.__version__, "model": model}, buf)
    _atomic_write_bytes(args.output, buf.getvalue())
    blocks = ", ".join(f"{m} ({len(c)})" for m, c in model.blocks_.items())
    learner = "" if args.fusion == "attention" else f" ({args.learner})"  # attention has its own output layer
    print(f"trained {args.fusion} fusion{learner} on {len(frame)} patients, blocks {blocks}, "
          f"in {time.perf_counter() - t0:.1f} s -> {args.output}")
    return EXIT_OK


def _load_model(path: Path) -> Any:
    import joblib

    if not path.exists():
        raise _UsageError(f"model {path} not found")
    try:
        obj = joblib.load(path)
    except Exception as err:
        raise _UsageError(f"cannot read model {path}: {type(err).__name__}: {err}") from None
    if not (isinstance(obj, dict) and obj.get("medfuse_model") == 1):
        raise _UsageError(f"{path} is not a medfuse model (make one with `medfuse train`)")
    return obj["model"]


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .extract import CohortFeatures

    model = _load_model(args.model)
    _check_output(args.output, "--output")
    cohort = _load_manifest(args.manifest)
    extraction = model.extraction if model.extraction is not None else CohortFeatures()
    res = _run_extraction(cohort, extraction, args.workers or _cores(), progress=False)
    out = pd.DataFrame({"patient_id": cohort.patient_ids})
    if res.n_ok:
        proba = model.predict_proba(res.features)
        pred = pd.DataFrame({"patient_id": res.features["patient_id"].astype(str),
                             "prediction": model.classes_[np.argmax(proba, axis=1)]})
        for j, c in enumerate(model.classes_):
            pred[f"probability_{c}"] = proba[:, j]
        out = out.merge(pred, on="patient_id", how="left")
    out["error"] = [res.failures.get(str(p), "") for p in out["patient_id"]]
    from .data.io import _atomic_write_bytes

    _atomic_write_bytes(args.output, out.to_csv(index=False).encode("utf-8"))
    print(f"predicted {res.n_ok} patients, {len(res.failures)} failed -> {args.output}")
    for pid, msg in res.failures.items():
        print(f"  failed: {pid}: {msg}")
    return EXIT_OK if not res.failures else EXIT_FAILURE


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .learn.evaluate import cross_validate, example_images, write_report

    if args.out.exists() and not args.out.is_dir():
        raise _UsageError(f"--out {args.out} exists and is not a folder")
    frame, _extraction = _read_features(args.features)
    examples = []
    if args.manifest is not None:
        examples = example_images(_load_manifest(args.manifest))
    try:
        ev = cross_validate(frame, folds=args.folds, seed=args.seed, learner=args.learner)
    except ValueError as err:
        raise _UsageError(str(err)) from None
    print(ev.format_table())
    args.out.mkdir(parents=True, exist_ok=True)
    ev.table.to_csv(args.out / "results.csv", index=False)
    path = write_report(ev, args.out, examples=examples, title=f"medfuse evaluation of {args.features.name}")
    print(f"report: {path}")
    return EXIT_OK


# -- acquire ----------------------------------------------------------------


def _parse_lams(text: str) -> list[float]:
    out = []
    for item in str(text).split(","):
        if item.strip():
            try:
                out.append(float(item))
            except ValueError:
                raise _UsageError(f"--lams: {item.strip()!r} is not a number") from None
    if not out:
        raise _UsageError("--lams: give at least one λ")
    return out


def _cmd_acquire(args: argparse.Namespace) -> int:
    from .learn.acquire import evaluate_acquisition, parse_costs, write_acquisition_report

    if args.out.exists() and not args.out.is_dir():
        raise _UsageError(f"--out {args.out} exists and is not a folder")
    frame, _extraction = _read_features(args.features)
    agents = list(dict.fromkeys(args.agent or ["q"]))
    if "dqn" in agents:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise _UsageError("--agent dqn needs PyTorch: python -m pip install 'medfuse[deep]'") from None
    try:
        costs = parse_costs(args.costs) if args.costs is not None else None
        params: dict[str, dict[str, Any]] = {"dqn": {"n_threads": 1}}
        if args.episodes is not None:
            params.update(q={"episodes": args.episodes}, pg={"episodes": args.episodes},
                          dqn={"steps": args.episodes, "n_threads": 1})
        t0 = time.perf_counter()
        ev = evaluate_acquisition(frame, costs, lams=_parse_lams(args.lams), agents=agents, agent_params=params,
                                  folds=args.folds, seed=args.seed)
    except (ValueError, TypeError) as err:
        raise _UsageError(str(err)) from None
    print(ev.format_table())
    path = write_acquisition_report(ev, args.out, title=f"medfuse acquire: {args.features.name}")
    print(f"\n{len(frame)} patients, {args.folds} folds, {time.perf_counter() - t0:.1f} s; report: {path}")
    return EXIT_OK


# -- demo -------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from .data.cohort import synthetic_cohort
    from .extract import CohortFeatures
    from .learn.evaluate import cross_validate, example_images, write_report

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise _UsageError(f"--out {out} exists and is not a folder")
    if args.n < 2 * args.folds:
        raise _UsageError(f"--n {args.n} is too small for {args.folds}-fold cross-validation; use --n >= {4 * args.folds}")
    workers = args.workers or _cores()
    print(f"medfuse {medfuse.__version__} demo: {args.n} synthetic patients ({args.lang} reports), "
          f"{workers} worker(s), SIMD {medfuse.build_info().get('simd_active', '?')}")
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    data = out / "cohort"
    synthetic_cohort(args.n, seed=args.seed, lang=args.lang, out_dir=data)
    times["write cohort (DICOM, PNG, TXT)"] = time.perf_counter() - t0
    print(f"[1/6] wrote {args.n} patients to {data} ({times['write cohort (DICOM, PNG, TXT)']:.1f} s)")

    t0 = time.perf_counter()
    cohort = _load_manifest(data / "manifest.csv")
    times["read manifest"] = time.perf_counter() - t0
    print(f"[2/6] {cohort.describe()}".replace("\n", "\n      "))

    t0 = time.perf_counter()
    extraction = CohortFeatures()
    res = _run_extraction(cohort, extraction, workers, progress=True)
    if res.failures:
        raise RuntimeError(f"{len(res.failures)} demo patients failed: {res.failures}")
    features_path = out / "features.parquet"
    _write_features(res.features, features_path, extraction)
    times["read files + extract features"] = time.perf_counter() - t0
    n_feat = sum(len(v) for v in (extraction.ct.get_feature_names_out(), extraction.xray.get_feature_names_out()))
    print(f"[3/6] extracted {n_feat} image features per patient + report text -> {features_path} "
          f"({times['read files + extract features']:.1f} s, "
          f"{times['read files + extract features'] / len(cohort) * workers:.2f} s per patient per worker)")

    t0 = time.perf_counter()
    ev = cross_validate(res.features, folds=args.folds, seed=args.seed, learner=args.learner)
    times["cross-validate 6 models"] = time.perf_counter() - t0
    print(f"[4/6] {args.folds}-fold cross-validation of every modality and fusion "
          f"({times['cross-validate 6 models']:.1f} s)\n")
    print(ev.format_table())
    best_single, auc_single = ev.best("single")
    best_fused, auc_fused = ev.best("fusion")
    verdict = "above" if auc_fused > auc_single else "NOT above"
    print(f"\nbest fusion: {best_fused}, AUC {auc_fused:.3f} — {verdict} the best single modality "
          f"({best_single}, AUC {auc_single:.3f})\n")

    t0 = time.perf_counter()
    acq_note = _demo_acquire(res.features, out / "acquire", args.seed)
    times["which test next (RL)"] = time.perf_counter() - t0
    print(f"      ({times['which test next (RL)']:.1f} s)\n")

    t0 = time.perf_counter()
    ev.table.to_csv(out / "results.csv", index=False)
    report = write_report(ev, out, examples=example_images(cohort), timings=times,
                          title=f"medfuse demo: {args.n} synthetic patients",
                          notes=[(f"best fusion {best_fused} AUC {auc_fused:.3f} vs best single modality "
                                  f"{best_single} AUC {auc_single:.3f}"), acq_note])
    times["HTML report"] = time.perf_counter() - t0
    print(f"[6/6] report: {report} ({times['HTML report']:.1f} s)")
    total = time.perf_counter() - t_all
    print("\nstage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) + f"; total {total:.1f} s")
    return EXIT_OK


def _demo_acquire(features: Any, out: Path, seed: int) -> str:
    """The demo's test-ordering section: Q-learning vs fixed policies at one λ, 3 folds; returns a one-line summary."""
    from .learn.acquire import DEFAULT_COSTS, evaluate_acquisition, write_acquisition_report
    from .learn.acquire.problem import table_modalities

    mods = [m for m in table_modalities(features) if m in DEFAULT_COSTS]
    costs = {m: DEFAULT_COSTS[m] for m in mods}
    lam = 300.0
    ev = evaluate_acquisition(features, costs, lams=(lam,), agents=("q",), agent_params={"q": {"episodes": 10000}},
                              folds=3, inner_folds=3, seed=seed, n_paths=8)
    t = ev.table.set_index("policy")
    q, allt = t.loc["q"], t.loc["all tests"]
    path = write_acquisition_report(ev, out, title="medfuse demo: which test to order next")
    line = (f"which test next (Q-learning, costs {', '.join(f'{m}={c:g}' for m, c in costs.items())}, wrong diagnosis "
            f"= -{lam:g}, 3 folds): AUC {q['auc']:.3f} at mean cost {q['mean_cost']:.1f} vs all tests AUC "
            f"{allt['auc']:.3f} at {allt['mean_cost']:.1f} ({q['mean_cost'] / allt['mean_cost']:.0%} of the cost)")
    print(f"[5/6] {line}; {path}")
    return line


# -- bench ------------------------------------------------------------------


def _find_benchmarks(path: Path | None) -> Path:
    if path is not None:
        if not path.is_dir():
            raise _UsageError(f"--path {path} is not a folder")
        return path.resolve()
    candidates = [Path.cwd() / "benchmarks", Path(__file__).resolve().parents[2] / "benchmarks"]
    for c in candidates:
        if (c / "bench_edges.py").is_file():
            return c
    raise _UsageError(
        "benchmarks/ not found (it lives in the source tree, not in the installed package); "
        "run from the repository root, pass --path, or use --quick"
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.quick:
        if args.json is not None or args.pytest_args:
            raise _UsageError("--json and pytest arguments apply only without --quick")
        from .bench.quick import run_quick

        run_quick(_print_table)
        return EXIT_OK
    folder = _find_benchmarks(args.path)
    cmd = [sys.executable, "-m", "pytest", str(folder), "--benchmark-only"]
    if args.json is not None:
        cmd.append(f"--benchmark-json={args.json.resolve()}")
    cmd += list(args.pytest_args)
    print("$ " + " ".join(cmd), flush=True)
    # Run from the repository root so pytest picks up its configuration.
    code = subprocess.call(cmd, cwd=folder.parent)
    if code == 0 and args.json is not None:
        print(f"\nMarkdown tables: python {folder / 'report.py'} {args.json} -o BENCHMARKS.md")
    return EXIT_OK if code == 0 else EXIT_FAILURE
