"""The ``medfuse`` command line.

Commands: ``demo``, ``extract``, ``train``, ``predict``, ``evaluate``,
``annotate``, ``acquire``, ``bench``, ``info`` (``medfuse COMMAND --help`` for each).

Exit codes: 0 success; 1 failure (some patients or some of their files
could not be extracted or annotated, a benchmark failed); 2 usage or input error (bad arguments, missing files,
bad manifests, unreadable feature or model files); 130 interrupted
(``extract`` keeps its checkpoint: run the same command again to resume).
"""

from __future__ import annotations

import argparse
import json
import math
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
TRUST_PICKLE_HELP = ("also accept an old pickle/joblib model file. Unpickling runs any code the file holds: "
                     "only for a file you made yourself or fully trust (SECURITY.md)")


class _UsageError(Exception):
    """A bad command line or input that argparse cannot catch by itself."""


# The demo's synthetic tasks. The default is "disease", the mission's classification task (normal, lung cancer,
# tuberculosis, fibrosis): it exercises the multi-class path end to end (macro AUC, per-class AUC, confusion
# matrices, the Bayes oracle); "malignancy" is the older binary nodule task.
DEMO_TASKS = ("disease", "malignancy")


def _demo_task(requested: str | None) -> tuple[str, dict[str, Any], str]:
    """(task, keyword arguments for synthetic_cohort, note) of `demo --task` (default "disease")."""
    task = requested or "disease"
    if task not in DEMO_TASKS:
        raise _UsageError(f"--task must be one of {', '.join(DEMO_TASKS)}; got {task!r}")
    return task, {"task": task}, ""


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
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="threads of the kernels, and the most BLAS/OpenMP threads any step uses "
                        "(default: MEDFUSE_NUM_THREADS or all cores; learners use 1, extraction workers 1 each)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="synthetic cohort -> files -> features -> every model -> table and HTML report",
        description=(
            "Write a synthetic cohort (CT DICOM series, 16-bit PNG X-rays, report text, lung "
            "sounds, manifest.csv) to --out: --task disease (normal, lung cancer, tuberculosis, "
            "fibrosis; the default) or malignancy (malignant vs benign nodule). Read it back "
            "through the manifest, extract CT, "
            "X-ray and report features, cross-validate every single-modality model and the "
            "early, late and attention fusions, learn which test to order next (Q-learning, "
            "acquire/acquire.html), print the table and write report.html."
        ),
    )
    demo.add_argument("--n", type=_positive_int, default=None, help="patients (default: 200)")
    demo.add_argument("--lang", choices=("en", "zh", "mixed"), default="en", help="report language (default: en)")
    demo.add_argument("--task", choices=DEMO_TASKS, default=None,
                      help="disease: four classes (normal, lung_cancer, tuberculosis, fibrosis); malignancy: "
                           "malignant vs benign nodule (default: disease)")
    demo.add_argument("--out", type=Path, default=Path("medfuse-demo"), help="output folder (default: ./medfuse-demo)")
    demo.add_argument("--seed", type=int, default=0, help="cohort and fold seed (default: 0)")
    demo.add_argument("--workers", type=_positive_int, default=None, help="extraction workers (default: all cores)")
    demo.add_argument("--folds", type=_positive_int, default=5, help="cross-validation folds (default: 5)")
    demo.add_argument("--learner", choices=("svm", "rf", "gbdt", "logreg"), default="logreg",
                      help="learner of the single-modality, early and late models (default: logreg)")
    demo.add_argument("--open-i", type=Path, default=None, metavar="PATH",
                      help="run on your Open-I / Indiana University download instead of synthetic data: "
                      "NLMCXR_reports.tgz, its unpacked folder, or a folder holding it (and NLMCXR_png/ "
                      "for the X-rays); --n then samples that many reports (default: all)")
    demo.add_argument("--images", type=Path, default=None, metavar="DIR",
                      help="with --open-i: the unpacked NLMCXR_png folder, when not beside the reports")
    demo.set_defaults(handler=_cmd_demo)

    ex = sub.add_parser(
        "extract",
        help="features of every patient of a manifest -> Parquet",
        description=(
            "Read a manifest (CSV or Parquet: patient_id, label, ct, xray, report), extract "
            "CT and X-ray features (medfuse.features.ImageFeatureExtractor) and keep the "
            "report text, one row per patient, written atomically to OUTPUT. A file that "
            "fails (a corrupt X-ray) makes that modality missing for its patient, whose other "
            "modalities are still extracted (--strict: the patient fails); a patient with no "
            "usable modality is reported with its error and skipped. Each finished patient is "
            "checkpointed in OUTPUT.partial/; an interrupted run resumes from there when "
            "the same command is run again (--restart discards it). The checkpoint is "
            "removed when every patient succeeded. Exit code 1 when a patient or a file failed."
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
    ex.add_argument("--strict", action="store_true",
                    help="a file that fails fails its whole patient (default: that modality becomes missing)")
    ex.add_argument("--no-progress", action="store_true", help="no progress bar")
    ex.set_defaults(handler=_cmd_extract)

    tr = sub.add_parser("train", help="fit a fusion classifier on a feature table -> model file (.medfuse)",
                        description="Fit medfuse.learn.MultimodalModel on FEATURES (from `medfuse extract`) "
                        "and save it with the extractor settings, so `medfuse predict` extracts the same features. "
                        "The model file is a zip of JSON, skops and safetensors parts: loading it runs no code "
                        "(SECURITY.md). It carries a model card (`medfuse info MODEL`).")
    tr.add_argument("features", type=Path, metavar="FEATURES", help="feature table (.parquet) with a label column")
    tr.add_argument("--fusion", choices=("early", "late", "attention", "deep"), default="late",
                    help="fusion (default: late); deep: medfuse.learn.deep.DeepFusionClassifier on the raw images "
                    "and reports of --manifest (needs the deep extra)")
    tr.add_argument("--manifest", type=Path, default=None, metavar="MANIFEST",
                    help="the cohort FEATURES was extracted from (required by --fusion deep)")
    tr.add_argument("--epochs", type=_positive_int, default=40, help="--fusion deep: most training epochs (default: 40)")
    tr.add_argument("--learner", choices=("svm", "rf", "gbdt", "logreg"), default="logreg",
                    help="learner (default: logreg; the attention fusion has its own output layer)")
    tr.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL",
                    help="model file to write (any name; .medfuse by convention)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tr.add_argument("--cv", type=int, default=0, metavar="FOLDS",
                    help="also cross-validate these settings with FOLDS stratified folds (>= 2) and store "
                    "AUC, accuracy and F1 in the model card (default: 0, none)")
    tr.set_defaults(handler=_cmd_train)

    pr = sub.add_parser("predict", help="extract a manifest's features and predict with a saved model",
                        description="Extract MANIFEST's features with the settings stored in MODEL, then write "
                        "patient_id, prediction, probability (of each class), error and missing_after_error to a CSV. "
                        "Patients whose extraction failed are listed with their error and no prediction; a "
                        "patient with a file that failed is predicted from its other modalities and the "
                        "failure is in missing_after_error. Exit code 1 when a patient or a file failed.")
    pr.add_argument("model", type=Path, metavar="MODEL")
    pr.add_argument("manifest", type=Path, metavar="MANIFEST")
    pr.add_argument("-o", "--output", type=Path, required=True, metavar="PREDICTIONS", help="output .csv")
    pr.add_argument("--workers", type=_positive_int, default=None, help="extraction workers (default: all cores)")
    pr.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
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

    an = sub.add_parser(
        "annotate",
        help="finding labels from each patient's report -> CSV; segmentation masks -> NIfTI",
        description=(
            "Label every report of MANIFEST with medfuse.annotate.label_reports (1 present, 0 absent, "
            "-1 uncertain, empty = not mentioned; English and Chinese) and write patient_id, one column "
            "per finding and an error column to OUTPUT (CSV, written atomically). With --masks DIR, also "
            "segment each patient's CT and write DIR/<patient_id>_lungs.nii.gz and _nodules.nii.gz with "
            "the CT's affine (they overlay the CT in 3D Slicer or ITK-SNAP). Every report or CT that "
            "could not be read is listed; exit code 1 when any failed."
        ),
    )
    an.add_argument("manifest", type=Path, metavar="MANIFEST", help="manifest .csv or .parquet")
    an.add_argument("-o", "--output", type=Path, default=None, metavar="LABELS", help="output .csv")
    an.add_argument("--findings", default=None, metavar="NAMES",
                    help="comma-separated findings (default: all; e.g. nodule,pleural_effusion,no_finding)")
    an.add_argument("--lang", choices=("auto", "en", "zh"), default="auto", help="report language (default: auto)")
    an.add_argument("--dictionary", type=Path, action="append", default=[], metavar="FILE",
                    help="extra finding dictionary (format of medfuse/resources/report_findings.txt); repeatable")
    an.add_argument("--masks", type=Path, default=None, metavar="DIR", help="also write CT masks as NIfTI here")
    an.add_argument("--no-progress", action="store_true", help="no progress bar")
    an.set_defaults(handler=_cmd_annotate)
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
    aq.add_argument("--lams", default="30,100,300,500,1000,3000", metavar="L,...",
                    help="penalties of a wrong diagnosis to sweep, in cost units (default: 30,100,300,500,1000,3000)")
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

    _add_restore_parsers(sub)

    info = sub.add_parser("info", help="print build information, or a model file's card",
                          description="Without MODEL: build information (SIMD paths, threads, compiler). "
                          "With MODEL: the model card stored in the file (format, medfuse version, creation "
                          "time, model, extraction settings, training-data fingerprint, metrics); reads only "
                          "the file's JSON manifest.")
    info.add_argument("model", type=Path, nargs="?", default=None, metavar="MODEL", help="a model file")
    info.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    info.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
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
        print("medfuse: error: a command is required (demo, extract, train, predict, evaluate, annotate, acquire, "
              "enhance, restore-bench, bench, info)",
              file=sys.stderr)
        return EXIT_USAGE
    from .data.cohort import CohortError
    from .data.io import MedfuseFileNotFoundError, MedfuseIOError

    if args.threads is not None:
        medfuse.set_num_threads(args.threads)
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
    """The cohort of a manifest file; its warnings (unused columns) are printed as such."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohort = _read_manifest(path)
    for w in caught:
        print(f"medfuse: warning: {w.message}", file=sys.stderr)
    return cohort


def _read_manifest(path: Path) -> Any:
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
        raise _UsageError(f"{path} holds no medfuse features (no ct__*, xray__*, audio__* or report column); "
                          "make it with `medfuse extract`")
    return frame, extraction


def _extraction_from_settings(settings: dict[str, Any]) -> Any:
    from .extract import CohortFeatures
    from .features import AudioFeatureExtractor, ImageFeatureExtractor

    def build(params: dict[str, Any], cls: Any = ImageFeatureExtractor) -> Any:
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        return cls(**kwargs)

    if "audio" not in settings:  # a table made before the audio modality: no audio__* columns expected
        extraction = CohortFeatures(ct=build(settings["ct"]), xray=build(settings["xray"]))
        return extraction
    return CohortFeatures(
        ct=build(settings["ct"]), xray=build(settings["xray"]), audio=build(settings["audio"], AudioFeatureExtractor)
    )


def _run_extraction(cohort: Any, extraction: Any, workers: int, backend: str = "threads",
                    scheduler: str | None = None, checkpoint: Path | None = None,
                    progress: bool = True, strict: bool = False) -> Any:
    from tqdm.auto import tqdm

    from .extract import extract_cohort

    def report_failure(pid: str, msg: str) -> None:
        tqdm.write(f"medfuse: patient {pid} failed, skipped: {msg}", file=sys.stderr)

    def report_modality(pid: str, modality: str, msg: str) -> None:
        tqdm.write(f"medfuse: patient {pid}: {modality} failed, extracted without it: {msg}", file=sys.stderr)

    return extract_cohort(cohort, extraction, workers=workers, backend=backend, scheduler=scheduler,
                          checkpoint_dir=checkpoint, progress=progress, on_failure=report_failure,
                          strict=strict, on_modality_failure=report_modality)


def _modalities_found(cohort: Any) -> str:
    """Which modality columns the manifest has, and for how many patients."""
    from .data.cohort import MODALITIES

    columns = set(map(str, cohort.frame.columns))
    found = [f"{m} ({int(cohort.has(m).sum())} of {len(cohort)} patients)" for m in MODALITIES if m in columns]
    absent = [m for m in MODALITIES if m not in columns]
    return "modalities: " + ", ".join(found) + (f"; no {', '.join(absent)} column" if absent else "")


def _print_failures(res: Any) -> None:
    for pid, msg in res.failures.items():
        print(f"  failed: {pid}: {msg}")
    for pid, errors in res.modality_failures.items():
        for m, msg in errors.items():
            print(f"  {m} missing for {pid} (its file failed): {msg}")


def _failure_summary(res: Any) -> str:
    partial = len(res.modality_failures)
    return (f"{len(res.failures)} failed" + (f", {partial} extracted without a modality whose file failed"
                                             if partial else ""))


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line.rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


# -- info -------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _model_info(args)
    if args.json or args.trust_pickle:
        raise _UsageError("--json and --trust-pickle apply to a MODEL only")
    for key, value in medfuse.build_info().items():
        if value is None or value == "":  # e.g. simd_request_error when MEDFUSE_SIMD was honoured
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        print(f"{key:>20}: {value}")
    return EXIT_OK


def _model_info(args: argparse.Namespace) -> int:
    from .learn.modelfile import ModelFileError, PickleRefusedError, read_card

    path: Path = args.model
    try:
        manifest = read_card(path)
    except PickleRefusedError as err:
        if not args.trust_pickle:
            raise _UsageError(str(err)) from None
        model = _load_model(path, trust_pickle=True)
        print(f"{path}: legacy pickle model ({type(model).__name__}); no model card. "
              "Save it again with model.save(...) to get one.")
        return EXIT_OK
    except ModelFileError as err:
        raise _UsageError(str(err)) from None
    if args.json:
        print(json.dumps(manifest, indent=1, sort_keys=True))
        return EXIT_OK
    card = dict(manifest["card"])
    print(f"{'file':>20}: {path} ({manifest['format']} format version {manifest['format_version']}, "
          f"kind {manifest['kind']})")
    for key in ("medfuse_version", "created"):
        if key in card:
            print(f"{key:>20}: {card.pop(key)}")
    card.pop("kind", None)

    def show(name: str, value: Any, indent: int = 0) -> None:
        pad = " " * indent
        if isinstance(value, dict):
            print(f"{pad}{name}:")
            for k, v in value.items():
                show(str(k), v, indent + 2)
        elif isinstance(value, list) and len(value) > 8:
            print(f"{pad}{name}: {len(value)} items: {', '.join(map(str, value[:4]))}, ..., {value[-1]}")
        else:
            print(f"{pad}{name}: {', '.join(map(str, value)) if isinstance(value, list) else value}")

    first = [k for k in ("model", "training_data", "training_data_file", "cv_metrics") if k in card]
    for key in [*first, *(k for k in card if k not in first and k != "extraction"), "extraction"]:
        if key in card:
            show(key, card[key])
    parts = [f"{m['member']} ({len(m.get('types', []))} non-builtin types)" for m in manifest["estimators"].values()]
    if manifest["arrays"]:
        parts.append(f"{manifest['arrays']['member']} ({len(manifest['arrays']['tensors'])} tensors)")
    print(f"parts: {'; '.join(parts)}")
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
    print(_modalities_found(cohort), file=sys.stderr)
    try:
        res = _run_extraction(cohort, extraction, workers, args.backend, args.scheduler, checkpoint,
                              progress=not args.no_progress, strict=args.strict)
    except KeyboardInterrupt:
        print(f"medfuse extract: interrupted; finished patients are kept in {checkpoint}: "
              "run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as err:  # e.g. a checkpoint of other settings
        raise _UsageError(str(err)) from None
    if res.n_ok:
        _write_features(res.features, args.output, extraction)
    resumed = f" ({res.resumed} from the checkpoint)" if res.resumed else ""
    print(f"extracted {res.n_ok} ok{resumed}, {_failure_summary(res)}, of {len(cohort)} patients "
          f"in {res.seconds:.1f} s" + (f" -> {args.output}" if res.n_ok else ""))
    _print_failures(res)
    if not res.failures and not res.modality_failures:
        from .extract import _Checkpoint

        _Checkpoint(checkpoint, extraction).remove()
    else:
        print(f"checkpoint kept in {checkpoint}: fix the failing files and run again to extract only those",
              file=sys.stderr)
    if not res.n_ok:
        print("medfuse extract: error: no patient could be extracted; nothing written", file=sys.stderr)
    return EXIT_OK if not res.failures and not res.modality_failures else EXIT_FAILURE


# -- train / predict / evaluate -----------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    from .learn.evaluate import MultimodalModel, cv_metrics

    _check_output(args.output, "--output")
    if args.cv == 1 or args.cv < 0:
        raise _UsageError(f"--cv must be 0 (none) or a number of folds >= 2; got {args.cv}")
    frame, extraction = _read_features(args.features)
    if "label" not in frame.columns:
        raise _UsageError(f"{args.features} has no label column: training needs labels")
    if frame["label"].isna().any():
        raise _UsageError(f"{args.features}: {int(frame['label'].isna().sum())} patients have no label")
    if frame["label"].nunique() < 2:
        raise _UsageError(f"{args.features}: label has a single class; a classifier needs two")
    t0 = time.perf_counter()
    if args.fusion == "deep":
        return _train_deep(args, frame, extraction, t0)
    if args.manifest is not None:
        raise _UsageError("--manifest is only used by --fusion deep")
    model = MultimodalModel(args.fusion, args.learner, extraction=extraction, random_state=args.seed)
    card: dict[str, Any] = {"training_data_file": args.features.name}
    try:
        if args.cv:
            card["cv_metrics"] = cv_metrics(model, frame, folds=args.cv, seed=args.seed)
        model.fit(frame)
    except ValueError as err:
        raise _UsageError(str(err)) from None
    model.save(args.output, card=card)
    blocks = ", ".join(f"{m} ({len(c)})" for m, c in model.blocks_.items())
    learner = "" if args.fusion == "attention" else f" ({args.learner})"  # attention has its own output layer
    cv = ""
    if args.cv:
        m = card["cv_metrics"]
        auc = "macro AUC" if "average" in m else "AUC"
        cv = f"; {args.cv}-fold {auc} {m['auc_mean']:.3f} ± {m['auc_std']:.3f}"
    classes = ", ".join(str(c) for c in model.classes_)
    print(f"trained {args.fusion} fusion{learner} on {len(frame)} patients ({len(model.classes_)} classes: {classes}), "
          f"blocks {blocks}{cv}, "
          f"in {time.perf_counter() - t0:.1f} s -> {args.output}")
    return EXIT_OK


def _train_deep(args: argparse.Namespace, frame: Any, extraction: Any, t0: float) -> int:
    try:
        from .learn.deep import DeepFusionClassifier
    except ImportError as err:
        raise _UsageError(str(err)) from None
    if args.manifest is None:
        raise _UsageError("--fusion deep trains on the raw images and reports: give --manifest MANIFEST")
    cohort = _load_manifest(args.manifest)
    ids = [str(p) for p in frame["patient_id"]]
    absent = [p for p in ids if p not in cohort]
    if absent:
        raise _UsageError(f"{args.manifest} lacks {len(absent)} patient(s) of the feature table, e.g. {absent[0]!r}")
    # the table's extraction settings go with the model: `predict` extracts new patients' feature blocks with them
    model = DeepFusionClassifier(max_epochs=args.epochs, random_state=args.seed, verbose=1,
                                 extraction=None if extraction is None else extraction.settings())
    try:  # prepare() keeps the table's feature blocks for the feature-block tokens (if the model reads them)
        model.fit(model.prepare([cohort[p] for p in ids], features=frame), frame["label"].to_numpy())
    except ValueError as err:
        raise _UsageError(str(err)) from None
    from .learn.modelfile import save_model

    save_model(model, args.output)
    epochs = model.epochs_per_network()  # history_ holds every network's epochs, one after another
    span = f"{min(epochs)}-{max(epochs)}" if min(epochs) != max(epochs) else f"{epochs[0]}"
    nets = f"{len(epochs)} networks, " if len(epochs) > 1 else ""
    print(f"trained deep fusion on {len(ids)} patients ({nets}{span} epoch{'s' if max(epochs) > 1 else ''}) "
          f"in {time.perf_counter() - t0:.1f} s -> {args.output}")
    return EXIT_OK


def _warn_unseen_classes(model: Any, cohort: Any) -> None:
    """The manifest's labels (when it has any) that the model never saw at fit: one warning line naming them."""
    from .learn.evaluate import check_known_classes

    frame = cohort.frame
    if "label" not in frame.columns:
        return
    labels = frame["label"].dropna()
    if labels.empty:
        return
    try:
        check_known_classes(model.classes_, labels.to_numpy())
    except ValueError as err:
        n = int((~labels.isin(list(model.classes_))).sum())
        print(f"medfuse predict: warning: manifest {err}; the {n} patient(s) of those classes are predicted "
              "as one of the model's classes, never as theirs", file=sys.stderr)


def _predict_deep(model: Any, cohort: Any, output: Path, workers: int, progress: bool) -> int:
    """Deep predictions; a model with feature-block tokens first extracts the hand-made features (with the
    settings of its training table, else the defaults); a patient whose extraction failed gets its error instead
    of a prediction."""
    import numpy as np
    import pandas as pd

    from .data.io import _atomic_write_bytes
    from .extract import CohortFeatures

    ids = [str(p) for p in cohort.patient_ids]
    failures: dict[str, str] = {}
    table = None
    if model.config_.get("table_columns"):
        settings = getattr(model, "extraction", None)  # None: a table without settings, or a model from before them
        try:
            extraction = _extraction_from_settings(settings) if isinstance(settings, dict) else settings
        except (KeyError, TypeError, ValueError) as err:
            raise _UsageError(f"the model's extraction settings are unusable ({type(err).__name__}: {err})") from None
        res = _run_extraction(cohort, extraction or CohortFeatures(), workers, progress=progress)
        failures = {str(k): v for k, v in res.failures.items()}
        table = res.features
        ids = [p for p in ids if p not in failures]
    out = pd.DataFrame({"patient_id": [str(p) for p in cohort.patient_ids]})
    if ids:
        try:
            proba = model.predict_proba(model.prepare([cohort[p] for p in ids], features=table))
        except ImportError as err:
            raise _UsageError(str(err)) from None
        except ValueError as err:  # e.g. the extracted feature columns are not those the model was trained with
            raise _UsageError(f"cannot predict with this deep model: {err}") from None
        pred = pd.DataFrame({"patient_id": ids, "prediction": np.asarray(model.classes_)[np.argmax(proba, axis=1)]})
        for j, c in enumerate(model.classes_):
            pred[f"probability_{c}"] = proba[:, j]
        out = out.merge(pred, on="patient_id", how="left")
    out["error"] = [failures.get(p, "") for p in out["patient_id"]]
    _atomic_write_bytes(output, out.to_csv(index=False).encode("utf-8"))
    print(f"predicted {len(ids)} patients with deep fusion -> {output}")
    for pid, msg in failures.items():
        print(f"medfuse predict: patient {pid}: not predicted: {msg}", file=sys.stderr)
    _warn_unseen_classes(model, cohort)
    return EXIT_OK if not failures else EXIT_FAILURE


def _load_model(path: Path, trust_pickle: bool = False) -> Any:
    from .learn.evaluate import MultimodalModel
    from .learn.modelfile import ModelFileError, load_model

    if not path.exists():
        raise _UsageError(f"model {path} not found")
    try:
        model = load_model(path, trusted=trust_pickle)
    except ModelFileError as err:
        raise _UsageError(f"cannot read model {err}") from None
    if not isinstance(model, MultimodalModel) and type(model).__name__ != "DeepFusionClassifier":
        raise _UsageError(f"{path} is not a medfuse classifier (it holds a {type(model).__name__}); "
                          "make one with `medfuse train`")
    return model


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .extract import CohortFeatures

    model = _load_model(args.model, trust_pickle=args.trust_pickle)
    _check_output(args.output, "--output")
    cohort = _load_manifest(args.manifest)
    if type(model).__name__ == "DeepFusionClassifier":
        return _predict_deep(model, cohort, args.output, args.workers or _cores(), not args.no_progress)
    extraction = model.extraction if model.extraction is not None else CohortFeatures()
    res = _run_extraction(cohort, extraction, args.workers or _cores(), progress=not args.no_progress)
    out = pd.DataFrame({"patient_id": cohort.patient_ids})
    if res.n_ok:
        proba = model.predict_proba(res.features)
        pred = pd.DataFrame({"patient_id": res.features["patient_id"].astype(str),
                             "prediction": model.classes_[np.argmax(proba, axis=1)]})
        for j, c in enumerate(model.classes_):
            pred[f"probability_{c}"] = proba[:, j]
        out = out.merge(pred, on="patient_id", how="left")
    out["error"] = [res.failures.get(str(p), "") for p in out["patient_id"]]
    out["missing_after_error"] = ["; ".join(f"{m}: {e}" for m, e in res.modality_failures.get(str(p), {}).items())
                                  for p in out["patient_id"]]
    from .data.io import _atomic_write_bytes

    _atomic_write_bytes(args.output, out.to_csv(index=False).encode("utf-8"))
    print(f"predicted {res.n_ok} patients, {_failure_summary(res)} -> {args.output}")
    _warn_unseen_classes(model, cohort)
    _print_failures(res)
    return EXIT_OK if not res.failures and not res.modality_failures else EXIT_FAILURE


def _cmd_annotate(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from .annotate import DictionaryError, ReportLabeler, write_masks
    from .data.cohort import _is_missing
    from .data.io import MedfuseFileNotFoundError, MedfuseIOError, _atomic_write_bytes, read_report

    if args.output is None and args.masks is None:
        raise _UsageError("nothing to do: give -o LABELS.csv, --masks DIR, or both")
    if args.output is not None:
        if args.output.suffix.lower() != ".csv":
            raise _UsageError(f"--output {args.output} must end in .csv")
        _check_output(args.output, "--output")
    if args.masks is not None and not args.masks.is_dir():
        raise _UsageError(f"--masks {args.masks} is not an existing folder")
    try:
        labeler = ReportLabeler(args.dictionary or None)
        findings = None if args.findings is None else [f for f in args.findings.split(",") if f.strip()]
        names = labeler.check_findings(findings)
    except (DictionaryError, ValueError, TypeError, FileNotFoundError) as err:
        raise _UsageError(str(err)) from None
    cohort = _load_manifest(args.manifest)
    frame = cohort.frame
    failures: list[tuple[str, str, str]] = []
    failed = 0
    if args.output is not None:
        if "report" not in frame.columns:
            raise _UsageError(f"{args.manifest} has no report column")
        rows = []
        reports = list(zip(frame["patient_id"].astype(str), frame["report"]))
        for pid, value in tqdm(reports, desc="reports", unit="report", disable=args.no_progress, file=sys.stderr):
            row: dict[str, Any] = {"patient_id": pid, "error": ""}
            if _is_missing(value):
                row["error"] = "no report"
                rows.append(row)
                continue
            try:
                text = read_report(value)
                if not text.strip():
                    raise MedfuseIOError("report is empty", value)
                row.update(labeler.label(text, args.lang))
            except (MedfuseIOError, MedfuseFileNotFoundError, OSError) as err:
                row["error"] = str(err)
                failures.append((pid, "report", str(err)))
                failed += 1
            rows.append(row)
        out = pd.DataFrame(rows).reindex(columns=["patient_id", *names, "error"])
        out[names] = out[names].astype("Int64")  # 1 / 0 / -1, empty = not mentioned
        _atomic_write_bytes(args.output, out.to_csv(index=False).encode("utf-8"))
        n_reports = sum(1 for _, v in reports if not _is_missing(v))
        print(f"labelled {n_reports - failed} of {n_reports} reports ({len(reports) - n_reports} patients without "
              f"a report), {len(names)} findings -> {args.output}")
    if args.masks is not None:
        cts = [(str(p), v) for p, v in zip(frame["patient_id"], frame["ct"])] if "ct" in frame.columns else []
        cts = [(p, v) for p, v in cts if not _is_missing(v)]
        n_ok = 0
        for pid, value in tqdm(cts, desc="masks", unit="CT", disable=args.no_progress, file=sys.stderr):
            try:
                write_masks(value, args.masks, name=pid)
                n_ok += 1
            except (MedfuseIOError, MedfuseFileNotFoundError, OSError, ValueError) as err:
                failures.append((pid, "ct", str(err)))
        print(f"wrote lung and nodule masks of {n_ok} of {len(cts)} CTs -> {args.masks}")
    for pid, what, msg in failures:
        print(f"  failed: {pid}: {what}: {msg}")
    return EXIT_OK if not failures else EXIT_FAILURE


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
    from .learn.evaluate import cross_validate, example_audio, example_images, write_report

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise _UsageError(f"--out {out} exists and is not a folder")
    if args.open_i is not None:
        return _demo_open_i(args)
    if args.images is not None:
        raise _UsageError("--images goes with --open-i")
    args.n = 200 if args.n is None else args.n
    if args.n < 2 * args.folds:
        raise _UsageError(f"--n {args.n} is too small for {args.folds}-fold cross-validation; use --n >= {4 * args.folds}")
    workers = args.workers or _cores()
    task, task_kwargs, task_note = _demo_task(args.task)
    if task_note:
        print(task_note)
    print(f"medfuse {medfuse.__version__} demo: {args.n} synthetic patients, task {task} ({args.lang} reports), "
          f"{workers} worker(s), SIMD {medfuse.build_info().get('simd_active', '?')}")
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    data = out / "cohort"
    written = synthetic_cohort(args.n, seed=args.seed, lang=args.lang, out_dir=data, **task_kwargs)  # .truth: the oracle row
    times["write cohort (DICOM, PNG, TXT, WAV)"] = time.perf_counter() - t0
    print(f"[1/8] wrote {args.n} patients to {data} ({times['write cohort (DICOM, PNG, TXT, WAV)']:.1f} s)")

    t0 = time.perf_counter()
    cohort = _load_manifest(data / "manifest.csv")
    times["read manifest"] = time.perf_counter() - t0
    print(f"[2/8] {cohort.describe()}".replace("\n", "\n      "))

    t0 = time.perf_counter()
    extraction = CohortFeatures()
    res = _run_extraction(cohort, extraction, workers, progress=True)
    if res.failures or res.modality_failures:
        raise RuntimeError(f"demo extraction failed: {res.failures} {res.modality_failures}")
    features_path = out / "features.parquet"
    _write_features(res.features, features_path, extraction)
    times["read files + extract features"] = time.perf_counter() - t0
    n_feat = sum(len(v) for v in (extraction.ct.get_feature_names_out(), extraction.xray.get_feature_names_out()))
    n_audio = len(extraction.audio.get_feature_names_out())
    print(f"[3/8] extracted {n_feat} image + {n_audio} lung-sound features per patient + report text -> {features_path} "
          f"({times['read files + extract features']:.1f} s, "
          f"{times['read files + extract features'] / len(cohort) * workers:.2f} s per patient per worker)")

    t0 = time.perf_counter()
    deep_model, deep_note = _demo_deep_model(args.seed)
    try:
        ev = cross_validate(res.features, folds=args.folds, seed=args.seed, learner=args.learner, cohort=written,
                            deep=deep_model)
    except ValueError as err:  # e.g. a class with fewer patients than folds at a small --n
        raise _UsageError(f"cannot cross-validate {args.n} synthetic patients: {err}; use a larger --n") from None
    n_models = len(ev.table)
    times[f"cross-validate {n_models} models"] = time.perf_counter() - t0
    print(f"[4/8] {args.folds}-fold cross-validation of every modality and fusion "
          f"({times[f'cross-validate {n_models} models']:.1f} s)\n")
    print(ev.format_table())
    best_single, auc_single = ev.best("single")
    best_fused, auc_fused = ev.best("fusion")
    verdict = "above" if auc_fused > auc_single else "NOT above"
    auc = "macro AUC" if ev.multiclass else "AUC"
    oracle = ev.table[ev.table["kind"] == "oracle"]
    oracle_text = (f"; {oracle.iloc[0]['model']}, the generative model's own probabilities: "
                   f"{auc} {oracle.iloc[0]['auc_mean']:.3f}" if len(oracle) else "")
    print(f"\nbest fusion: {best_fused}, {auc} {auc_fused:.3f} — {verdict} the best single modality "
          f"({best_single}, {auc} {auc_single:.3f}){oracle_text}")

    deep_note = _demo_deep_note(ev, deep_note, auc)
    print("[5/8] " + deep_note + "\n")

    t0 = time.perf_counter()
    acq_note = _demo_acquire(res.features, out / "acquire", args.seed, auc)
    times["which test next (RL)"] = time.perf_counter() - t0
    print(f"      ({times['which test next (RL)']:.1f} s)\n")

    t0 = time.perf_counter()
    restore_note = _demo_restore(out / "restore", args.seed)
    times["restoration"] = time.perf_counter() - t0
    print(f"      ({times['restoration']:.1f} s)\n")

    t0 = time.perf_counter()
    ev.table.to_csv(out / "results.csv", index=False)
    report = write_report(ev, out, examples=example_images(cohort), audio_example=example_audio(cohort), timings=times,
                          title=f"medfuse demo: {args.n} synthetic patients, task {task}",
                          notes=[(f"best fusion {best_fused} {auc} {auc_fused:.3f} vs best single modality "
                                  f"{best_single} {auc} {auc_single:.3f}{oracle_text}"), deep_note, acq_note, restore_note])
    times["HTML report"] = time.perf_counter() - t0
    print(f"[8/8] report: {report} ({times['HTML report']:.1f} s)")
    total = time.perf_counter() - t_all
    print("\nstage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) + f"; total {total:.1f} s")
    return EXIT_OK


def _demo_deep_model(seed: int) -> tuple[Any, str]:
    """The demo's deep model (DeepFusionClassifier: CNN X-ray, CT and lung-sound encoders, GRU report encoder and
    the hand-made feature blocks as tokens, attention fusion on medfuse's operators), cross-validated on the same
    folds as the classical models; (None, a one-line note) when torch is not installed."""
    try:
        from .learn.deep import DeepFusionClassifier
        from .nn._torch import require_torch

        require_torch("deep fusion")
    except ImportError:
        return None, "deep fusion: not run (PyTorch is not installed: pip install 'medfuse[deep]')"
    return DeepFusionClassifier(random_state=seed), ""


def _demo_deep_note(ev: Any, note: str, auc: str) -> str:
    """One line: the deep fusion row against the best classical fusion (same folds)."""
    table = ev.table
    if note or "deep fusion" not in set(table["model"]):
        return note or "deep fusion: not run"
    deep = float(table.loc[table["model"] == "deep fusion", "auc_mean"].iloc[0])
    classical = table[(table["kind"] == "fusion") & (table["model"] != "deep fusion")]
    best = classical.loc[classical["auc_mean"].idxmax()]
    verdict = "at or above" if deep >= float(best["auc_mean"]) else "below"
    return (f"deep fusion (CNN + GRU + feature-block tokens, attention on medfuse's operators), same folds: "
            f"{auc} {deep:.3f} — {verdict} the best classical fusion ({best['model']}, {auc} {best['auc_mean']:.3f})")


def _demo_restore(out: Path, seed: int) -> str:
    """The demo's restoration step: one held-out phantom slice at a quarter of the normal dose, every denoiser
    (the learned one when torch is installed) tuned as ``medfuse restore-bench`` does; returns a one-line summary."""
    from .bench.restore import format_rows, restore_bench

    rows = restore_bench((0.25,), size=128, slices=1, seed=seed, html_path=out / "restore.html")
    low = next(r for r in rows if r.method == "low dose")
    best = max((r for r in rows if r.method != "low dose"), key=lambda r: r.psnr)
    learned = "" if any(r.method == "dncnn" for r in rows) else " (the learned denoiser needs the deep extra: pip install 'medfuse[deep]')"
    note = (f"restoration of low-dose CT (dose 0.25): {low.psnr:.2f} dB -> {best.method} {best.psnr:.2f} dB PSNR, "
            f"SSIM {low.ssim:.3f} -> {best.ssim:.3f}{learned}")
    print("[7/8] " + note + f"; {out / 'restore.html'}")
    print("      " + format_rows(rows).replace("\n", "\n      "))
    return note


def _open_i_paths(path: Path, images: Path | None) -> tuple[Path, Path | None]:
    """(reports, images) of an Open-I download: the archive/folder itself, or a folder holding them."""
    if not path.exists():
        raise _UsageError(f"--open-i {path} does not exist")
    reports = path
    if path.is_dir() and not any(path.glob("*.xml")):
        found = [p for p in (path / "NLMCXR_reports.tgz", path / "ecgen-radiology") if p.exists()]
        if not found:
            raise _UsageError(f"--open-i {path}: no report XML, NLMCXR_reports.tgz or ecgen-radiology/ in it")
        reports = found[-1]  # the unpacked folder when both are there
        if images is None and (path / "NLMCXR_png").is_dir():
            images = path / "NLMCXR_png"
    if images is not None and not images.is_dir():
        raise _UsageError(f"--images {images} is not a folder (unpack NLMCXR_png.tgz first)")
    return reports, images


def _demo_open_i(args: argparse.Namespace) -> int:
    """``medfuse demo --open-i PATH``: the demo's pipeline on a user's Open-I download (abnormal vs normal)."""
    from .data import Cohort, open_i
    from .extract import CohortFeatures
    from .learn.evaluate import cross_validate, write_report

    reports, images = _open_i_paths(args.open_i, args.images)
    out: Path = args.out
    workers = args.workers or _cores()
    times: dict[str, float] = {}
    t_all = t0 = time.perf_counter()
    full = open_i(reports, images, unlabelled="drop")
    frame = full.frame
    if args.n is not None and args.n < len(frame):
        frame = frame.sample(n=args.n, random_state=args.seed).sort_index()
    cohort = Cohort(frame, source=f"Open-I {reports.name}")
    if len(cohort) < 2 * args.folds or cohort.labels.nunique() < 2:
        raise _UsageError(f"{len(cohort)} labelled reports (classes {sorted(cohort.labels.unique())}) are too few "
                          f"for {args.folds}-fold cross-validation")
    times["read reports and labels"] = time.perf_counter() - t0
    dropped = f"; {len(full.unlabelled)} unlabelled report(s) left out" if full.unlabelled else ""
    print(f"medfuse {medfuse.__version__} demo on Open-I: {len(cohort)} of {len(full)} reports{dropped}, "
          f"{'X-rays from ' + str(images) if images else 'no X-rays (pass --images or put NLMCXR_png/ beside)'}")
    print(f"[1/4] {cohort.describe()}".replace("\n", "\n      "))
    t0 = time.perf_counter()
    extraction = CohortFeatures()
    res = _run_extraction(cohort, extraction, workers, progress=True)
    out.mkdir(parents=True, exist_ok=True)
    features_path = out / "features.parquet"
    _write_features(res.features, features_path, extraction)
    times["extract features"] = time.perf_counter() - t0
    print(f"[2/4] features -> {features_path} ({times['extract features']:.1f} s)")
    t0 = time.perf_counter()
    feats = res.features
    absent = [c for c in feats.columns if "__" in c and c.split("__")[0] in ("ct", "audio")]  # Open-I has neither
    ev = cross_validate(feats.drop(columns=absent), folds=args.folds, seed=args.seed, learner=args.learner)
    times["cross-validate"] = time.perf_counter() - t0
    print(f"[3/4] {args.folds}-fold cross-validation, abnormal vs normal ({times['cross-validate']:.1f} s)\n")
    print(ev.format_table())
    t0 = time.perf_counter()
    ev.table.to_csv(out / "results.csv", index=False)
    examples = []
    for pid in cohort.patient_ids:
        rec = cohort[pid]
        if rec.xray is not None:
            examples = [(f"X-ray {pid} (label {rec.label})", rec.xray, None)]
            break
    report = write_report(ev, out, examples=examples, timings=times,
                          title=f"medfuse demo: {len(cohort)} Open-I reports (abnormal vs normal)",
                          notes=["labels from the MeSH major terms: 'normal' = 0, anything else = 1"])
    times["HTML report"] = time.perf_counter() - t0
    print(f"\n[4/4] report: {report}")
    print("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
          + f"; total {time.perf_counter() - t_all:.1f} s")
    return EXIT_OK


def _demo_acquire(features: Any, out: Path, seed: int, auc: str = "AUC") -> str:
    """The demo's test-ordering section: Q-learning vs fixed policies at one λ, 3 folds; returns a one-line summary."""
    from .learn.acquire import DEFAULT_COSTS, evaluate_acquisition, write_acquisition_report
    from .learn.acquire.problem import table_modalities

    mods = [m for m in table_modalities(features) if m in DEFAULT_COSTS]
    costs = {m: DEFAULT_COSTS[m] for m in mods}
    lam = 300.0
    try:
        ev = evaluate_acquisition(features, costs, lams=(lam,), agents=("q",), agent_params={"q": {"episodes": 10000}},
                                  folds=3, inner_folds=3, seed=seed, n_paths=8)
    except ValueError as err:  # e.g. a class too small for 3 outer x 3 inner folds at a small --n
        line = f"which test next (Q-learning): skipped: {err}"
        print(f"[6/8] {line}")
        return line
    t = ev.table.set_index("policy")
    q, allt = t.loc["q"], t.loc["all tests"]
    path = write_acquisition_report(ev, out, title="medfuse demo: which test to order next")
    line = (f"which test next (Q-learning, costs {', '.join(f'{m}={c:g}' for m, c in costs.items())}, wrong diagnosis "
            f"= -{lam:g}, 3 folds): {auc} {q['auc']:.3f} at mean cost {q['mean_cost']:.1f} vs all tests {auc} "
            f"{allt['auc']:.3f} at {allt['mean_cost']:.1f} ({q['mean_cost'] / allt['mean_cost']:.0%} of the cost)")
    print(f"[6/8] {line}; {path}")
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


# -- enhance / restore-bench (issue 18) --------------------------------------------


def _add_restore_parsers(sub: Any) -> None:
    from .bench.restore import METHODS

    en = sub.add_parser(
        "enhance",
        help="denoise or enhance a DICOM file/series, a PNG/JPEG image or a folder; same format out",
        description=(
            "Process INPUT (a DICOM file, a PNG/JPEG/TIFF image, or a folder of them: a DICOM series is a "
            "folder of slices) with one method and write the result in the same format to OUTPUT (a file, "
            "or a folder mirroring INPUT). DICOM files keep every data element and their HU scale (the "
            "method runs in HU). Each file is written atomically; a file that fails leaves no output, the "
            "rest are still processed, and the command exits 1 with the list of failures."
        ),
    )
    en.add_argument("input", type=Path, metavar="INPUT")
    en.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT")
    en.add_argument("--method", choices=METHODS, default="nlm",
                    help="denoiser (gaussian, median, bilateral, nlm, dncnn) or enhancement (clahe, unsharp, "
                    "window); default nlm")
    en.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="method parameter, repeatable: e.g. --param h=40 (nlm, in the image's units: HU for "
                    "DICOM), --param sigma=1.5, --param size=5, --param sigma_color=60, --param clip_limit=2, "
                    "--param center=-600 --param width=1500, --param weights=FILE or kind=lesion|lowdose, "
                    "--param smooth=1 (dncnn); --param z_weight=0.25 restores each DICOM series as a volume "
                    "(slices ordered by position, each blended with its neighbours: for low-dose CT)")
    en.set_defaults(handler=_cmd_enhance)

    rb = sub.add_parser(
        "restore-bench",
        help="low-dose CT restoration: PSNR/SSIM/time per method per dose, HTML page with crops",
        description=(
            "Simulate low-dose CT of synthetic phantom slices (projection-domain Poisson noise, filtered "
            "back-projection), restore it with each method (strengths tuned on a separate slice), and print "
            "PSNR / SSIM against the normal-dose reconstruction and the time per slice."
        ),
    )
    rb.add_argument("--doses", type=float, nargs="+", default=[0.25, 0.1], metavar="DOSE",
                    help="dose fractions (> 0) of the full dose (default 0.25 0.1)")
    rb.add_argument("--size", type=_positive_int, default=128, help="slice size in pixels (default 128)")
    rb.add_argument("--slices", type=_positive_int, default=2, help="held-out slices per dose (default 2)")
    rb.add_argument("--seed", type=int, default=0)
    rb.add_argument("--no-learned", action="store_true", help="skip the learned denoiser (needs torch)")
    rb.add_argument("--html", type=Path, default=None, metavar="FILE", help="write the HTML report here")
    rb.set_defaults(handler=_cmd_restore_bench)


def _param_value(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if "," in text:
        return tuple(_param_value(t) for t in text.split(","))
    return text


def _cmd_enhance(args: argparse.Namespace) -> int:
    from .bench.restore import EnhanceUsageError, enhance_path

    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _UsageError(f"--param must be NAME=VALUE; got {item!r}")
        params[name] = value if name == "weights" else _param_value(value)
    try:
        report = enhance_path(args.input, args.output, args.method, params)
    except EnhanceUsageError as err:
        raise _UsageError(str(err)) from None
    print(f"medfuse enhance: {len(report.written)} written, {len(report.failed)} failed")
    if report.failed:
        for path, why in report.failed:
            print(f"medfuse enhance: failed: {path}: {why}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _cmd_restore_bench(args: argparse.Namespace) -> int:
    from .bench.restore import format_rows, restore_bench

    for d in args.doses:
        if not (d > 0 and math.isfinite(d)):
            raise _UsageError(f"--doses must be > 0; got {d:g}")
    if args.size < 32:
        raise _UsageError(f"--size must be >= 32; got {args.size}")
    rows = restore_bench(args.doses, size=args.size, slices=args.slices, seed=args.seed,
                         learned=not args.no_learned, html_path=args.html)
    print(format_rows(rows))
    if args.html is not None:
        print(f"HTML report: {args.html}")
    return EXIT_OK
