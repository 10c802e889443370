"""Cross-validated evaluation of every modality and every fusion, and an HTML report.

Input: a feature table as written by ``medfuse extract`` /
:func:`medfuse.extract.extract_cohort` — ``patient_id``, ``label``,
``ct__<feature>``, ``xray__<feature>`` columns (NaN rows for a missing
image) and a ``report`` text column (None when missing). Report features
are learned: :class:`~medfuse.features.ReportVectorizer` is fitted on the
training reports of each fold (never on the test fold), and its output
becomes the ``report__<i>`` block.

- :class:`MultimodalModel`: the feature table → one fitted classifier
  (single modality, or early / late / attention fusion); what ``medfuse
  train`` saves and ``medfuse predict`` applies.
- :func:`cross_validate`: stratified k-fold (shuffled, seeded) evaluation
  of each single modality and each fusion, all on the same folds; AUC,
  accuracy and F1 per fold, their mean and standard deviation across
  folds, pooled out-of-fold probabilities and ROC curves.
- :func:`write_report`: one self-contained HTML file (the table, ROC
  curves, example images with their Canny edge maps; figures embedded as
  base64 PNG).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

__all__ = [
    "FUSIONS",
    "IMAGE_MODALITIES",
    "MODALITIES",
    "Evaluation",
    "MultimodalModel",
    "cross_validate",
    "example_images",
    "write_report",
]

MODALITIES = ("ct", "xray", "report")
IMAGE_MODALITIES = ("ct", "xray")
FUSIONS = ("early", "late", "attention")
METRICS = ("auc", "accuracy", "f1")
SEP = "__"


def image_blocks(frame: Any) -> dict[str, list[str]]:
    """Image modality -> its feature columns (``ct__*``, ``xray__*``) present in ``frame``."""
    out: dict[str, list[str]] = {}
    for m in IMAGE_MODALITIES:
        cols = [c for c in frame.columns if isinstance(c, str) and c.startswith(m + SEP)]
        if cols:
            out[m] = cols
    return out


def _check_table(frame: Any, need_label: bool = True) -> None:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame (a medfuse feature table); got {type(frame).__name__}")
    if need_label and "label" not in frame.columns:
        raise ValueError("features has no 'label' column: evaluation and training need labels")
    if not image_blocks(frame) and "report" not in frame.columns:
        raise ValueError(
            "features has no feature column (ct__*, xray__*) and no 'report' column; "
            "is this a table written by `medfuse extract`?"
        )


def _default_vectorizer(seed: int) -> Any:
    from ..features import ReportVectorizer

    return ReportVectorizer(vector_size=32, epochs=20, tfidf=True, max_features=100, seed=seed)


class _Design:
    """Builds the numeric design matrix: image columns + the fitted report block."""

    def __init__(self, modalities: Sequence[str], vectorizer: Any) -> None:
        self.modalities = tuple(modalities)
        self.vectorizer = vectorizer

    def fit(self, frame: Any) -> _Design:
        blocks = image_blocks(frame)
        self.image_columns_ = {m: blocks[m] for m in self.modalities if m in blocks}
        self.vectorizer_ = None
        if "report" in self.modalities and "report" in frame.columns:
            texts = [t for t in frame["report"] if isinstance(t, str)]
            if texts:
                from sklearn.base import clone

                self.vectorizer_ = clone(self.vectorizer).fit(texts)
        missing = [m for m in self.modalities if m not in self.image_columns_ and not (m == "report" and self.vectorizer_)]
        if missing:
            raise ValueError(f"features has no data for modality {', '.join(missing)}")
        return self

    def transform(self, frame: Any) -> tuple[Any, dict[str, list[str]]]:
        import pandas as pd

        parts = []
        blocks: dict[str, list[str]] = {}
        for m, cols in self.image_columns_.items():
            absent = [c for c in cols if c not in frame.columns]
            if absent:
                raise ValueError(f"features lacks {len(absent)} column(s) the model was trained with, e.g. {absent[0]!r}")
            parts.append(frame[cols].astype(np.float64).reset_index(drop=True))
            blocks[m] = list(cols)
        if self.vectorizer_ is not None:
            names = [f"report{SEP}{n}" for n in self.vectorizer_.get_feature_names_out()]
            R = np.full((len(frame), len(names)), np.nan)
            texts = frame["report"].tolist() if "report" in frame.columns else [None] * len(frame)
            idx = [i for i, t in enumerate(texts) if isinstance(t, str)]
            if idx:
                R[idx] = self.vectorizer_.transform([texts[i] for i in idx])
            parts.append(pd.DataFrame(R, columns=names))
            blocks["report"] = names
        return pd.concat(parts, axis=1), blocks


def _classifier(fusion: str, blocks: Mapping[str, list[str]], learner: Any, seed: int) -> Any:
    from . import fusion as fu

    if fusion in ("single", "early"):
        return fu.EarlyFusionClassifier(dict(blocks), learner=learner, random_state=seed)
    if fusion == "late":
        return fu.LateFusionClassifier(dict(blocks), learner=learner, random_state=seed)
    if fusion == "attention":
        return fu.AttentionFusionClassifier(dict(blocks), random_state=seed)
    raise ValueError(f"fusion must be one of {', '.join(FUSIONS)} (or 'single'); got {fusion!r}")


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


class MultimodalModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier over a medfuse feature table (see the module docstring).

    ``fusion``: "early", "late", "attention" or "single" (one modality:
    ``modalities`` must then name exactly one). ``learner``: "svm",
    "logreg", "rf", "gbdt" or a scikit-learn classifier (the attention
    fusion has its own output layer and ignores it). ``modalities``: which
    of ct, xray, report to use (default: all found in the table).
    ``report_vectorizer``: a :class:`~medfuse.features.ReportVectorizer`
    (default: 32-d word2vec + 100 TF-IDF terms). ``extraction``: the
    extractor settings used to make the table
    (:class:`medfuse.extract.CohortFeatures`), kept so that prediction on a
    new manifest extracts the same features.

    ``fit(X, y=None)``: ``X`` the feature table; ``y`` defaults to its
    ``label`` column. Fitted: ``classes_``, ``blocks_`` (modality -> design
    columns), ``classifier_``, ``design_``.
    """

    def __init__(
        self,
        fusion: str = "late",
        learner: Any = "logreg",
        *,
        modalities: Sequence[str] | None = None,
        report_vectorizer: Any = None,
        extraction: Any = None,
        random_state: int = 0,
    ) -> None:
        self.fusion = fusion
        self.learner = learner
        self.modalities = modalities
        self.report_vectorizer = report_vectorizer
        self.extraction = extraction
        self.random_state = random_state

    def _mods(self, frame: Any) -> tuple[str, ...]:
        if self.modalities is None:
            found = [m for m in IMAGE_MODALITIES if m in image_blocks(frame)]
            if "report" in frame.columns and frame["report"].map(lambda t: isinstance(t, str)).any():
                found.append("report")
            return tuple(found)
        mods = tuple(self.modalities)
        for m in mods:
            _check_choice("modalities", m, MODALITIES)
        return mods

    def fit(self, X: Any, y: Any = None) -> MultimodalModel:
        _check_table(X, need_label=y is None)
        _check_choice("fusion", self.fusion, (*FUSIONS, "single"))
        yv = np.asarray(X["label"] if y is None else y)
        mods = self._mods(X)
        if not mods:
            raise ValueError("no modality to learn from")
        if self.fusion == "single" and len(mods) != 1:
            raise ValueError(f"fusion='single' needs exactly one modality; got {list(mods)}")
        vec = self.report_vectorizer if self.report_vectorizer is not None else _default_vectorizer(self.random_state)
        self.design_ = _Design(mods, vec).fit(X)
        D, self.blocks_ = self.design_.transform(X)
        self.classifier_ = _classifier(self.fusion, self.blocks_, self.learner, self.random_state).fit(D, yv)
        self.classes_ = self.classifier_.classes_
        return self

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "classifier_")
        _check_table(X, need_label=False)
        D, _b = self.design_.transform(X)
        return np.asarray(self.classifier_.predict_proba(D))

    def predict(self, X: Any) -> npt.NDArray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# ------------------------------------------------------------------ evaluation


@dataclass
class Evaluation:
    """Results of :func:`cross_validate`.

    ``folds``: tidy table, one row per (model, fold, metric): columns model,
    kind ("single" | "fusion" | "oracle": the synthetic cohort's true
    malignancy logit, see :func:`cross_validate`), modalities, fold, metric, value.
    ``table``: one row per model: kind, modalities, ``<metric>_mean``,
    ``<metric>_std`` (across folds, ddof=1), n_folds.
    ``oof``: out-of-fold probability of the positive class per patient and
    model (columns patient_id, label, one per model).
    ``roc``: model -> (fpr, tpr) of the pooled out-of-fold probabilities.
    """

    folds: Any
    table: Any
    oof: Any
    roc: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]
    positive_label: Any
    settings: dict[str, Any] = field(default_factory=dict)

    def best(self, kind: str) -> tuple[str, float]:
        """(model, mean AUC) of the best model of a kind ("single" or "fusion")."""
        t = self.table[self.table["kind"] == kind]
        if t.empty:
            raise ValueError(f"no {kind} model in this evaluation")
        row = t.sort_values("auc_mean", ascending=False).iloc[0]
        return str(row["model"]), float(row["auc_mean"])

    def format_table(self) -> str:
        """The table as aligned text (mean ± std across folds)."""
        header = ["model", "modalities", *[f"{m.upper() if m == 'auc' else m}" for m in METRICS]]
        rows = []
        for _i, r in self.table.iterrows():
            rows.append(
                [str(r["model"]), str(r["modalities"]), *[f"{r[m + '_mean']:.3f} ± {r[m + '_std']:.3f}" for m in METRICS]]
            )
        widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)


def cross_validate(
    features: Any,
    *,
    folds: int = 5,
    seed: int = 0,
    learner: Any = "logreg",
    fusions: Sequence[str] = FUSIONS,
    modalities: Sequence[str] | None = None,
    report_vectorizer: Any = None,
    cohort: Any = None,
    deep: Any = None,
) -> Evaluation:
    """Stratified k-fold evaluation of each single modality and each fusion.

    ``cohort`` (optional): the :class:`~medfuse.data.Cohort` the table was
    extracted from, matched by ``patient_id``. With a synthetic cohort
    (``cohort.truth`` has ``malignancy_logit``) an "oracle" row scores the
    true malignancy logit on the same folds (the best any model can do).
    ``deep``: True or a :class:`medfuse.learn.deep.DeepFusionClassifier`
    (needs ``cohort`` and the ``deep`` extra) adds a "deep fusion" row,
    trained on each training fold's raw images and reports; inputs are
    prepared once (:func:`medfuse.learn.deep.prepare_inputs`). Without torch,
    ``deep`` raises ImportError naming ``pip install "medfuse[deep]"``.

    Every model sees the same folds (``StratifiedKFold(folds, shuffle=True,
    random_state=seed)``), over all patients of the table: a patient missing
    a modality is still scored by that modality's model (its block is
    missing; the model falls back on what it learned for missing rows).
    The report vectorizer is refitted on each training fold. Binary labels
    only (AUC and F1 of the second class in sorted order).
    """
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score, roc_curve
    from sklearn.model_selection import StratifiedKFold

    _check_table(features)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2; got {folds!r}")
    for f in fusions:
        _check_choice("fusions", f, FUSIONS)
    frame = features.reset_index(drop=True)
    y_raw = frame["label"].to_numpy()
    if pd.isna(frame["label"]).any():
        raise ValueError("label has missing values; drop unlabeled patients before evaluating")
    classes = np.unique(y_raw)
    if len(classes) != 2:
        raise ValueError(f"label must have exactly 2 classes for AUC/F1; got {len(classes)}: {list(classes)[:5]}")
    counts = [int((y_raw == c).sum()) for c in classes]
    if min(counts) < folds:
        raise ValueError(f"folds={folds} exceeds the smallest class count ({min(counts)}); use fewer folds")
    mods = MultimodalModel(modalities=modalities)._mods(frame)
    if not mods:
        raise ValueError("features holds no modality to evaluate")
    vec = report_vectorizer if report_vectorizer is not None else _default_vectorizer(seed)
    specs: list[tuple[str, str, tuple[str, ...], str]] = [(m, "single", (m,), "single") for m in mods]
    if len(mods) > 1:
        specs += [(f"{f} fusion", "fusion", mods, f) for f in fusions]
    pos = classes[1]
    y = (y_raw == pos).astype(int)
    extra = _extra_models(frame, cohort, deep, seed)
    specs += [(name, kind, ms, "extra") for name, kind, ms, _fn in extra]
    oof = {name: np.full(len(frame), np.nan) for name, *_ in specs}
    rows = []
    skf = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        train, test = frame.iloc[tr], frame.iloc[te]
        design = _Design(mods, vec).fit(train)
        Dtr, blocks = design.transform(train)
        Dte, _b = design.transform(test)
        extra_fns = {name: fn for name, _k, _m, fn in extra}
        for name, kind, ms, fusion in specs:
            if fusion == "extra":
                p = extra_fns[name](tr, te, y)
            else:
                cols = [c for m in ms for c in blocks.get(m, [])]
                sub = {m: blocks[m] for m in ms if m in blocks}
                clf = _classifier(fusion, sub, learner, seed).fit(Dtr[cols], y[tr])
                p = clf.predict_proba(Dte[cols])[:, 1]
            oof[name][te] = p
            pred = (p >= 0.5).astype(int)
            vals = {
                "auc": roc_auc_score(y[te], p),
                "accuracy": accuracy_score(y[te], pred),
                "f1": f1_score(y[te], pred, zero_division=0.0),
            }
            for metric, v in vals.items():
                rows.append({"model": name, "kind": kind, "modalities": "+".join(ms), "fold": k, "metric": metric, "value": float(v)})
    long = pd.DataFrame(rows)
    agg = long.groupby(["model", "metric"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    table_rows = []
    for name, kind, ms, _f in specs:
        r: dict[str, Any] = {"model": name, "kind": kind, "modalities": "+".join(ms)}
        for metric in METRICS:
            a = agg[(agg["model"] == name) & (agg["metric"] == metric)].iloc[0]
            r[f"{metric}_mean"] = float(a["mean"])
            r[f"{metric}_std"] = float(a["std"])
        r["n_folds"] = int(folds)
        table_rows.append(r)
    table = pd.DataFrame(table_rows)
    oof_df = pd.DataFrame({"patient_id": frame["patient_id"] if "patient_id" in frame else np.arange(len(frame)),
                           "label": y_raw, **oof})
    roc = {}
    for name, p_oof in oof.items():
        fpr, tpr, _t = roc_curve(y, p_oof)
        roc[name] = (fpr, tpr)
    settings = {"folds": int(folds), "seed": int(seed), "learner": str(learner), "modalities": list(mods),
                "n_patients": len(frame), "class_counts": dict(zip(map(str, classes), counts))}
    return Evaluation(long, table, oof_df, roc, pos, settings)


def _extra_models(frame: Any, cohort: Any, deep: Any, seed: int) -> list[tuple[str, str, tuple[str, ...], Any]]:
    """(name, kind, modalities, fit-and-score function) of the oracle and deep rows."""
    if cohort is None:
        if deep is not None and deep is not False:
            raise ValueError("deep needs the cohort the features were extracted from (cohort=...)")
        return []
    if "patient_id" not in frame.columns:
        raise ValueError("cohort given but features has no patient_id column to match it")
    ids = [str(p) for p in frame["patient_id"]]
    out: list[tuple[str, str, tuple[str, ...], Any]] = []
    truth = getattr(cohort, "truth", None)
    if truth is not None and "malignancy_logit" in truth.columns:
        missing = [p for p in ids if p not in truth.index]
        if missing:
            raise ValueError(f"cohort.truth lacks {len(missing)} patient(s) of features, e.g. {missing[0]!r}")
        logit = truth.loc[ids, "malignancy_logit"].to_numpy(np.float64)
        out.append(("oracle (true logit)", "oracle", ("truth",), lambda tr, te, y: 1.0 / (1.0 + np.exp(-logit[te]))))
    if deep is None or deep is False:
        return out
    from .deep import DeepFusionClassifier, prepare_inputs

    model = DeepFusionClassifier(random_state=seed) if deep is True else deep
    if not isinstance(model, DeepFusionClassifier):
        raise TypeError(f"deep must be True or a DeepFusionClassifier; got {type(deep).__name__}")
    absent = [p for p in ids if p not in cohort]
    if absent:
        raise ValueError(f"cohort lacks {len(absent)} patient(s) of features, e.g. {absent[0]!r}")
    inputs = prepare_inputs([cohort[p] for p in ids], xray_size=model.xray_size, ct_size=model.ct_size,
                            ct_input=model.ct_input, ct_patch_mm=model.ct_patch_mm, max_tokens=model.max_tokens)

    def fit_score(tr: Any, te: Any, y: Any) -> Any:
        from sklearn.base import clone

        m = clone(model).fit(inputs.subset(tr), y[tr])
        return m.predict_proba(inputs.subset(te))[:, 1]

    out.append(("deep fusion", "fusion", tuple(m for m in MODALITIES), fit_score))
    return out


# ------------------------------------------------------------------ report


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _to_u8(image: npt.NDArray[Any], window: tuple[float, float] | None) -> npt.NDArray[np.uint8]:
    import medfuse as mf

    img = np.ascontiguousarray(image)
    if window is None:
        lo, hi = float(img.min()), float(img.max())
        width = hi - lo if hi > lo else 1.0
        window = (lo + width / 2.0, width)
    if img.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        img = img.astype(np.float64)
    return np.asarray(mf.window(img, float(window[0]), float(window[1]), out_dtype=np.uint8))


def example_images(cohort: Any, patient_id: str | None = None, *, roi_slice: int | None = None) -> list[tuple[str, Any, Any]]:
    """(caption, 2D image, window or None) examples from one patient of a cohort.

    The CT example is the axial slice through the nodule: ``roi_slice`` when
    given, otherwise the slice where the nodule ROI of
    ``ImageFeatureExtractor(roi="nodule")`` (:mod:`medfuse.segment`) is
    largest, or :func:`nodule_slice` when segmentation finds nothing. The
    X-ray is shown whole.
    """
    ids = cohort.patient_ids if patient_id is None else [patient_id]
    for pid in ids:
        rec = cohort[pid]
        if rec.ct is None or rec.xray is None:
            continue
        vol = rec.ct.array
        k = _segmented_nodule_slice(rec.ct) if roi_slice is None else int(roi_slice)
        return [
            (f"CT {pid}, axial slice z={k} (lung window)", vol[k], (-600.0, 1500.0)),
            (f"X-ray {pid}", rec.xray, None),
        ]
    return []


def _segmented_nodule_slice(ct: Any) -> int:
    from ..features.image import _auto_roi

    try:
        m = _auto_roi(ct.array, tuple(ct.spacing), "nodule", 0)
    except ValueError:
        m = None
    if m is None or not m.any():
        return nodule_slice(ct.array)
    return int(np.argmax(m.sum(axis=(1, 2))))


def nodule_slice(volume: npt.NDArray[Any]) -> int:
    """Axial slice most likely to cut the nodule: soft tissue enclosed by lung.

    Voxels between -500 and 400 HU whose in-plane neighbourhood (9 voxels
    either way) is mostly lung (< -700 HU) are counted per slice; the slice
    with the most wins (the middle slice when none has any).
    """
    import medfuse as mf

    v = np.asarray(volume, dtype=np.float32)
    soft = (v > -500) & (v < 400)
    lung = (v < -700).astype(np.float32)
    k = np.ones(19, np.float32) / 19.0
    frac = np.asarray(mf.sep_filter(np.ascontiguousarray(lung), [np.ones(1, np.float32), k, k]))
    score = (soft & (frac > 0.5)).sum(axis=(1, 2))
    return int(np.argmax(score)) if score.max() > 0 else v.shape[0] // 2


def _fmt_cell(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}" if math.isfinite(std) else f"{mean:.3f}"


def write_report(
    results: Evaluation,
    out_dir: str | os.PathLike[str],
    *,
    examples: Sequence[tuple[str, Any, Any]] = (),
    title: str = "medfuse evaluation",
    timings: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
    filename: str = "report.html",
) -> Path:
    """Write ``out_dir/report.html``: table, ROC curves, example images with edges.

    ``examples``: (caption, 2D image, window) triples, e.g. from
    :func:`example_images`; each is shown windowed to 8 bits beside the same
    image with its ``medfuse.canny`` edges (thresholds 40/100 on the 8-bit
    image, sigma 1) overlaid in red. ``timings``: stage -> seconds, listed.
    Everything is embedded (base64 PNG), so the file stands alone. Returns
    the path; the file is written atomically.
    """
    from matplotlib.figure import Figure

    import medfuse as mf

    if not isinstance(results, Evaluation):
        raise TypeError(f"results must be a medfuse.learn.Evaluation (from cross_validate); got {type(results).__name__}")
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    t = results.table
    head = "".join(f"<th>{h}</th>" for h in ("model", "modalities", "AUC", "accuracy", "F1"))
    body = []
    best_single = results.best("single")[1] if (t["kind"] == "single").any() else None
    for _i, r in t.iterrows():
        cells = [html.escape(str(r["model"])), html.escape(str(r["modalities"]))]
        cells += [_fmt_cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in METRICS]
        cls = ' class="fusion-win"' if best_single is not None and r["kind"] == "fusion" and r["auc_mean"] > best_single else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    for name, (fpr, tpr) in results.roc.items():
        row = t[t["model"] == name].iloc[0]
        style = "-" if row["kind"] == "fusion" else "--"
        ax.plot(fpr, tpr, style, label=f"{name} (AUC {row['auc_mean']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, pooled out-of-fold predictions")
    ax.legend(loc="lower right", fontsize=8)
    roc_png = _png(fig)

    ex_html = ""
    if examples:
        fig = Figure(figsize=(8, 3.4 * len(examples)), layout="constrained")
        for i, (caption, image, window) in enumerate(examples):
            img = np.asarray(image)
            if img.ndim != 2:
                raise ValueError(f"examples[{i}] must be a 2D image; got shape {img.shape}")
            u8 = _to_u8(img, window)
            edges = np.asarray(mf.canny(u8, 40.0, 100.0, sigma=1.0)) > 0
            a = fig.add_subplot(len(examples), 2, 2 * i + 1)
            a.imshow(u8, cmap="gray")
            a.set_title(caption, fontsize=9)
            a.axis("off")
            b = fig.add_subplot(len(examples), 2, 2 * i + 2)
            b.imshow(u8, cmap="gray")
            overlay = np.zeros((*u8.shape, 4), np.float32)
            overlay[edges] = (1.0, 0.1, 0.1, 0.9)
            b.imshow(overlay)
            b.set_title(f"medfuse.canny edges ({int(edges.sum())} px)", fontsize=9)
            b.axis("off")
        ex_html = f'<h2>Example images and their edge maps</h2><img alt="examples" src="data:image/png;base64,{_png(fig)}">'

    s = results.settings
    meta = (
        f"{s.get('n_patients', '?')} patients ({', '.join(f'{k}: {v}' for k, v in s.get('class_counts', {}).items())}), "
        f"stratified {s.get('folds', '?')}-fold cross-validation (seed {s.get('seed', '?')}), "
        f"learner {html.escape(str(s.get('learner', '?')))}; mean ± standard deviation across folds."
    )
    timing_html = ""
    if timings:
        items = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f} s</td></tr>" for k, v in timings.items())
        timing_html = f"<h2>Stage times</h2><table>{items}</table>"
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}tr.fusion-win{{background:#e8f5e9}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{meta}</p>{notes_html}
<h2>Results</h2>{table_html}
<h2>ROC curves</h2><img alt="ROC curves" src="data:image/png;base64,{roc_png}">
{ex_html}{timing_html}
<p>medfuse {html.escape(mf.__version__)}</p></body></html>
"""
    path = out / filename
    from ..data.io import _atomic_write_bytes

    _atomic_write_bytes(path, doc.encode("utf-8"))
    return path
