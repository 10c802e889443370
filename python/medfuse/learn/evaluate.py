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
  accuracy and F1 per fold (more than two classes: macro one-vs-rest AUC,
  accuracy, macro F1 and each class's AUC), their mean and standard
  deviation across folds, pooled out-of-fold probabilities, ROC curves and
  confusion matrices.
- :func:`write_report`: one self-contained HTML file (the table, ROC
  curves — one panel per class for more than two —, confusion matrices
  for more than two classes, example images with their Canny edge maps;
  figures embedded as base64 PNG).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

from ..kernels._threads import with_learner_threads
from ._columns import NUMERIC_MODALITIES, SEP, image_blocks
from .fusion import check_known_classes, check_labels

__all__ = [
    "FUSIONS",
    "IMAGE_MODALITIES",
    "MODALITIES",
    "NUMERIC_MODALITIES",
    "Evaluation",
    "MultimodalModel",
    "check_known_classes",
    "check_labels",
    "cross_validate",
    "cv_metrics",
    "example_audio",
    "example_images",
    "table_fingerprint",
    "write_report",
]

MODALITIES = ("ct", "xray", "report", "audio")
IMAGE_MODALITIES = ("ct", "xray")
FUSIONS = ("early", "late", "attention")
METRICS = ("auc", "accuracy", "f1")


def _check_table(frame: Any, need_label: bool = True) -> None:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame (a medfuse feature table); got {type(frame).__name__}")
    if need_label and "label" not in frame.columns:
        raise ValueError("features has no 'label' column: evaluation and training need labels")
    if not image_blocks(frame) and "report" not in frame.columns:
        raise ValueError(
            "features has no feature column (ct__*, xray__*, audio__*) and no 'report' column; "
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
    of ct, xray, report, audio to use (default: all found in the table).
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
            blocks = image_blocks(frame)
            found = [m for m in IMAGE_MODALITIES if m in blocks]
            if "report" in frame.columns and frame["report"].map(lambda t: isinstance(t, str)).any():
                found.append("report")
            found += [m for m in NUMERIC_MODALITIES if m in blocks and m not in IMAGE_MODALITIES]
            return tuple(found)
        mods = tuple(self.modalities)
        for m in mods:
            _check_choice("modalities", m, MODALITIES)
        return mods

    @with_learner_threads
    def fit(self, X: Any, y: Any = None) -> MultimodalModel:
        """Fit on the feature table ``X``; ``training_`` records its fingerprint (see :func:`table_fingerprint`)."""
        _check_table(X, need_label=y is None)
        _check_choice("fusion", self.fusion, (*FUSIONS, "single"))
        yv = np.asarray(X["label"] if y is None else y)
        check_labels(yv)  # no missing label, no mix of strings and numbers
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
        self.training_ = table_fingerprint(X, yv)
        return self

    @with_learner_threads
    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "classifier_")
        _check_table(X, need_label=False)
        D, _b = self.design_.transform(X)
        return np.asarray(self.classifier_.predict_proba(D))

    def predict(self, X: Any) -> npt.NDArray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Accuracy on the feature table ``X`` (``y`` defaults to its ``label`` column).

        Labels of a class the model never saw at fit are refused (ValueError
        naming them): the model cannot predict them, so they would only be
        counted wrong in silence.
        """
        from sklearn.metrics import accuracy_score

        yv = np.asarray(X["label"] if y is None else y)
        check_known_classes(self.classes_, yv)
        return float(accuracy_score(yv, self.predict(X), sample_weight=sample_weight))

    def save(self, path: str | os.PathLike[str], *, card: Mapping[str, Any] | None = None) -> Path:
        """Write the fitted model as a medfuse model file (:mod:`medfuse.learn.modelfile`; no pickle).

        The file holds a model card: medfuse version, creation time, the
        extraction settings, the training-data fingerprint (``training_``)
        and whatever ``card`` adds (e.g. ``{"cv_metrics": cv_metrics(...)}``).
        """
        from sklearn.utils.validation import check_is_fitted

        from .modelfile import save_model

        check_is_fitted(self, "classifier_")
        return save_model(self, path, card=card)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trusted: bool = False) -> MultimodalModel:
        """Read a model written by :meth:`save` or ``medfuse train``; builds only allow-listed types.

        ``trusted=True`` also accepts the pickle files older medfuse versions
        wrote — only for files you made or fully trust: unpickling runs code.
        """
        from .modelfile import ModelFileError, load_model

        obj = load_model(path, trusted=trusted)
        if not isinstance(obj, cls):
            raise ModelFileError(path, f"holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


def table_fingerprint(frame: Any, y: Any = None) -> dict[str, Any]:
    """Training-data fingerprint: patients, label counts, column count and a SHA-256 of the table.

    The hash covers the column names and ``pandas.util.hash_pandas_object``
    of every row (values and dtypes, not the index), so the same table gives
    the same hash and any changed value, row or column changes it.
    """
    import hashlib

    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    out: dict[str, Any] = {"n_patients": len(frame), "n_columns": int(frame.shape[1]), "table_sha256": h.hexdigest()}
    if y is not None:
        labels, counts = np.unique(np.asarray(y), return_counts=True)
        out["label_counts"] = {str(k): int(v) for k, v in zip(labels, counts)}
    return out


def cv_metrics(model: MultimodalModel, features: Any, *, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Stratified k-fold AUC, accuracy and F1 (mean and std across folds) of ``model``'s settings.

    Clones of the unfitted ``model`` are fitted on each training fold of
    ``features``; for the model card of a model fitted on all of
    ``features``. Two classes: AUC and F1 of the second class, accuracy at
    0.5 (``positive_label``). More: macro one-vs-rest AUC, accuracy, macro
    F1 (``average: "macro"``), as :func:`cross_validate`. ``classes`` lists
    the classes.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    _check_table(features)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2; got {folds!r}")
    frame = features.reset_index(drop=True)
    classes, y = check_labels(frame["label"].to_numpy())
    if len(classes) < 2:
        raise ValueError(f"label must have at least 2 classes; got {len(classes)}: {list(classes)[:5]}")
    _check_class_counts(classes, y, int(folds))
    K = len(classes)
    vals: dict[str, list[float]] = {m: [] for m in METRICS}
    skf = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    for tr, te in skf.split(np.zeros(len(y)), y):
        m = clone(model).fit(frame.iloc[tr])
        order = [list(m.classes_).index(c) for c in classes]  # the fold model knows every class (stratified)
        p = m.predict_proba(frame.iloc[te])[:, order]
        for key, val in _fold_metrics(y[te], p, K).items():
            if key in vals:
                vals[key].append(val)
    out: dict[str, Any] = {"folds": int(folds), "seed": int(seed), "classes": [_plain(c) for c in classes]}
    if K == 2:
        out["positive_label"] = _plain(classes[1])
    else:
        out["average"] = "macro"
    for k, v in vals.items():
        out[f"{k}_mean"] = float(np.mean(v))
        out[f"{k}_std"] = float(np.std(v, ddof=1))
    return out


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# ------------------------------------------------------------------ model files


def _model_card(model: MultimodalModel) -> dict[str, Any]:
    learner = model.learner if isinstance(model.learner, str) else type(model.learner).__name__
    card: dict[str, Any] = {
        "model": {
            "class": "medfuse.learn.MultimodalModel",
            "fusion": model.fusion,
            "learner": None if model.fusion == "attention" else learner,
            "modalities": list(model.blocks_),
            "n_features": {m: len(c) for m, c in model.blocks_.items()},
            "classes": [_plain(c) for c in model.classes_],
            "random_state": model.random_state,
        },
        "extraction": model.extraction.settings() if model.extraction is not None else None,
    }
    if getattr(model, "training_", None) is not None:
        card["training_data"] = model.training_
    return card


_ATTN_FLAT = ("Wq", "Wk", "Wv", "Wo", "bo")


def _model_to_parts(model: MultimodalModel) -> Any:
    import copy

    from sklearn.utils.validation import check_is_fitted

    from .fusion import AttentionFusionClassifier
    from .modelfile import ModelParts

    check_is_fitted(model, "classifier_")
    _check_fitted(model)
    parts = ModelParts(config={"fusion": model.fusion, "blocks": {m: len(c) for m, c in model.blocks_.items()}})
    clf = model.classifier_
    if isinstance(clf, AttentionFusionClassifier):
        # The attention weights go to safetensors, checked against this config on load.
        P = clf.params_
        names = list(clf.blocks_)
        for j, n in enumerate(names):
            parts.arrays[f"attention.W.{n}"] = np.asarray(P["W"][j], np.float64)
            parts.arrays[f"attention.b.{n}"] = np.asarray(P["b"][j], np.float64)
        for k in _ATTN_FLAT:
            parts.arrays[f"attention.{k}"] = np.asarray(P[k], np.float64)
        parts.config["attention"] = {"d_model": int(clf.d_model), "blocks": names, "n_classes": len(clf.classes_)}
        light = copy.copy(clf)
        del light.params_
        model = copy.copy(model)
        model.classifier_ = light
    parts.estimators["model"] = model
    return parts


def _model_from_parts(parts: Any) -> MultimodalModel:
    model = parts.estimators.get("model")
    if not isinstance(model, MultimodalModel):
        raise TypeError(f"the 'model' part is a {type(model).__name__}, not a MultimodalModel")
    cfg = parts.config
    from .fusion import AttentionFusionClassifier

    if isinstance(model.classifier_, AttentionFusionClassifier) != ("attention" in cfg):
        raise ValueError("the attention weights and the classifier disagree (config without weights or weights without an attention classifier)")
    if "attention" in cfg:
        a = cfg["attention"]
        d, names, n_classes = int(a["d_model"]), list(a["blocks"]), int(a["n_classes"])
        clf = model.classifier_
        if names != list(clf.blocks_) or int(clf.d_model) != d:
            raise ValueError(f"attention config (blocks {names}, d_model {d}) disagrees with the classifier "
                             f"(blocks {list(clf.blocks_)}, d_model {clf.d_model})")
        want: dict[str, tuple[int, ...]] = {f"attention.W.{n}": (int(clf.blocks_[n].size), d) for n in names}
        want.update({f"attention.b.{n}": (d,) for n in names})
        want.update({"attention.Wq": (d, d), "attention.Wk": (d, d), "attention.Wv": (d, d),
                     "attention.Wo": (d, n_classes), "attention.bo": (n_classes,)})
        if set(parts.arrays) != set(want):
            raise ValueError(f"attention weights {sorted(parts.arrays)} disagree with the config's {sorted(want)}")
        for k, shape in want.items():
            arr = parts.arrays[k]
            if arr.shape != shape or arr.dtype != np.float64:
                raise ValueError(f"weight {k} has shape {arr.shape} ({arr.dtype}); the config needs {shape} (float64)")
        clf.params_ = {
            "W": [parts.arrays[f"attention.W.{n}"] for n in names],
            "b": [parts.arrays[f"attention.b.{n}"] for n in names],
            **{k: parts.arrays[f"attention.{k}"] for k in _ATTN_FLAT},
        }
    _check_fitted(model)
    return model


def _n_in(est: Any) -> int | None:
    n = getattr(est, "n_features_in_", None)
    return None if n is None else int(n)


def _check_fitted(model: MultimodalModel) -> None:
    """Shapes of a fitted model agree with each other (a tampered file fails here, not at predict)."""
    from .fusion import AttentionFusionClassifier, EarlyFusionClassifier, LateFusionClassifier

    clf = model.classifier_
    widths = {m: len(c) for m, c in model.blocks_.items()}
    total = sum(widths.values())
    if _n_in(clf) != total:
        raise ValueError(f"the classifier takes {_n_in(clf)} features; the design has {total}")
    if list(clf.blocks_) != list(widths):
        raise ValueError(f"classifier blocks {list(clf.blocks_)} differ from the design's {list(widths)}")
    for m, idx in clf.blocks_.items():
        idx = np.asarray(idx)
        if idx.size != widths[m] or (idx.size and (idx.min() < 0 or idx.max() >= total)):
            raise ValueError(f"block {m!r}: {idx.size} column indices for {widths[m]} columns of {total}")
    if not np.array_equal(np.asarray(model.classes_), np.asarray(clf.classes_)):
        raise ValueError("the model's classes differ from its classifier's")
    k = len(clf.classes_)
    for m, sc in getattr(clf, "scalers_", {}).items():
        if _n_in(sc) != widths.get(m):
            raise ValueError(f"block {m!r}: scaler fitted on {_n_in(sc)} columns, block has {widths.get(m)}")
    if isinstance(clf, EarlyFusionClassifier):
        want = total + (len(widths) if clf.missing_indicators and len(widths) > 1 else 0)
        if _n_in(clf.learner_) != want:
            raise ValueError(f"learner takes {_n_in(clf.learner_)} features; the early fusion design has {want}")
    if isinstance(clf, LateFusionClassifier):
        for m, est in clf.estimators_.items():
            if _n_in(est) != widths.get(m):
                raise ValueError(f"block {m!r}: learner fitted on {_n_in(est)} columns, block has {widths.get(m)}")
        want = len(widths) * ((1 if k == 2 else k) + 1)
        if _n_in(clf.meta_learner_) != want:
            raise ValueError(f"meta-learner takes {_n_in(clf.meta_learner_)} features; expected {want}")
    if isinstance(clf, AttentionFusionClassifier) and hasattr(clf, "params_"):
        P, d = clf.params_, int(clf.d_model)
        if len(P["W"]) != len(widths) or any(w.shape != (widths[m], d) for w, m in zip(P["W"], widths)):
            raise ValueError("attention input projections do not match the blocks")
    vec = model.design_.vectorizer_
    if vec is not None:
        n = len(vec.get_feature_names_out())
        if n != widths.get("report"):
            raise ValueError(f"report vectorizer gives {n} features; the report block has {widths.get('report')}")
        if np.asarray(vec.wv_.vectors).shape[1:] != (vec.vector_size_,):
            raise ValueError(f"word vectors of shape {np.asarray(vec.wv_.vectors).shape}, vector_size {vec.vector_size_}")


# ------------------------------------------------------------------ evaluation


@dataclass
class Evaluation:
    """Results of :func:`cross_validate`.

    ``folds``: tidy table, one row per (model, fold, metric): columns model,
    kind ("single" | "fusion" | "oracle": the synthetic cohort's true
    probabilities, see :func:`cross_validate`), modalities, fold, metric, value.
    ``table``: one row per model: kind, modalities, ``<metric>_mean``,
    ``<metric>_std`` (across folds, ddof=1), n_folds; with more than two
    classes also ``auc_<class>_mean`` / ``_std`` (one-vs-rest AUC per class).
    ``oof``: out-of-fold probabilities per patient (columns patient_id,
    label, then per model: two classes, one column named after the model
    holding the positive class's probability; more classes, one column
    ``<model>: p_<class>`` per class).
    ``proba``: model -> (n_patients, n_classes) out-of-fold probabilities,
    columns in ``classes`` order (both cases).
    ``roc``: model -> (fpr, tpr) of the pooled out-of-fold probabilities of
    the positive class (two classes only; empty otherwise).
    ``roc_per_class``: model -> class -> (fpr, tpr), one-vs-rest (for two
    classes: the positive class only, the same curve as ``roc``).
    ``confusion``: model -> (n_classes, n_classes) counts of the pooled
    out-of-fold predictions (rows true class, columns predicted class,
    ``classes`` order; the prediction is the most probable class).
    ``positive_label``: ``classes[1]`` for two classes, None for more.
    """

    folds: Any
    table: Any
    oof: Any
    roc: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]
    positive_label: Any
    settings: dict[str, Any] = field(default_factory=dict)
    classes: Any = None
    proba: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    roc_per_class: dict[str, dict[Any, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]] = field(default_factory=dict)
    confusion: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    @property
    def multiclass(self) -> bool:
        """More than two classes."""
        return self.classes is not None and len(self.classes) > 2

    def pooled_auc(self) -> dict[str, float]:
        """model -> AUC of the pooled out-of-fold probabilities (macro one-vs-rest for more than two classes).

        For two classes this is the area under ``roc``; it differs from the
        table's mean over folds.
        """
        from sklearn.metrics import auc, roc_auc_score

        if not self.multiclass:
            return {name: float(auc(fpr, tpr)) for name, (fpr, tpr) in self.roc.items()}
        _c, y = check_labels(self.oof["label"].to_numpy())
        k = len(self.classes)
        return {name: float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=np.arange(k)))
                for name, p in self.proba.items()}

    def best(self, kind: str) -> tuple[str, float]:
        """(model, mean AUC) of the best model of a kind ("single" or "fusion"); macro AUC for more classes."""
        t = self.table[self.table["kind"] == kind]
        if t.empty:
            raise ValueError(f"no {kind} model in this evaluation")
        row = t.sort_values("auc_mean", ascending=False).iloc[0]
        return str(row["model"]), float(row["auc_mean"])

    def class_metrics(self) -> list[str]:
        """The per-class metric names of the table (``auc_<class>``; none for two classes)."""
        return [f"auc_{c}" for c in self.classes] if self.multiclass else []

    def format_table(self) -> str:
        """The table as aligned text (mean ± std across folds; per-class AUCs as means)."""
        names = {"auc": "macro AUC" if self.multiclass else "AUC", "accuracy": "accuracy",
                 "f1": "macro F1" if self.multiclass else "F1"}
        header = ["model", "modalities", *[names[m] for m in METRICS], *[f"AUC {c}" for c in (self.classes if self.multiclass else [])]]
        rows = []
        for _i, r in self.table.iterrows():
            rows.append(
                [str(r["model"]), str(r["modalities"]), *[f"{r[m + '_mean']:.3f} ± {r[m + '_std']:.3f}" for m in METRICS],
                 *[f"{r[m + '_mean']:.3f}" for m in self.class_metrics()]]
            )
        widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)


def _fold_metrics(y: npt.NDArray[np.intp], p: npt.NDArray[np.float64], k: int) -> dict[str, float]:
    """AUC, accuracy, F1 (binary: of class 1 at 0.5; more classes: macro one-vs-rest AUC, macro F1, and auc_<j>)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    if k == 2:
        pred = (p[:, 1] >= 0.5).astype(int)
        return {"auc": float(roc_auc_score(y, p[:, 1])), "accuracy": float(accuracy_score(y, pred)),
                "f1": float(f1_score(y, pred, zero_division=0.0))}
    pred = np.argmax(p, axis=1)
    out = {"auc": float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=np.arange(k))),
           "accuracy": float(accuracy_score(y, pred)),
           "f1": float(f1_score(y, pred, average="macro", labels=np.arange(k), zero_division=0.0))}
    for j in range(k):
        out[f"auc_{j}"] = float(roc_auc_score(y == j, p[:, j]))
    return out


def _check_class_counts(classes: Any, y: npt.NDArray[np.intp], folds: int) -> None:
    """Every class needs a patient in every fold: name the classes that are too small."""
    counts = np.bincount(y, minlength=len(classes))
    small = [(_plain(c), int(n)) for c, n in zip(classes.tolist(), counts) if n < folds]
    if small:
        which = ", ".join(f"{c!r} ({n} patient{'s' * (n != 1)})" for c, n in small)
        raise ValueError(f"folds={folds} exceeds the smallest class count, class {which}: stratified {folds}-fold "
                         f"cross-validation needs at least {folds} patients per class; use fewer folds, "
                         "more patients, or drop or merge that class")


@with_learner_threads
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
    extracted from, matched by ``patient_id``. With a synthetic cohort an
    "oracle" row scores the generative model's own probabilities on the same
    folds (the best any model can do): ``cohort.truth``'s ``p_<class>``
    columns when it has one for every class (the disease cohort's
    Bayes-optimal class probabilities), else its ``malignancy_logit`` (two
    classes). ``deep``: True or a :class:`medfuse.learn.deep.DeepFusionClassifier`
    (needs ``cohort`` and the ``deep`` extra) adds a "deep fusion" row,
    trained on each training fold's raw images, reports and lung sounds
    plus the table's hand-made feature blocks (standardised inside the
    model on the training fold); inputs are prepared once
    (:func:`medfuse.learn.deep.prepare_inputs`). Without torch,
    ``deep`` raises ImportError naming ``pip install "medfuse[deep]"``.

    Every model sees the same folds (``StratifiedKFold(folds, shuffle=True,
    random_state=seed)``), over all patients of the table: a patient missing
    a modality is still scored by that modality's model (its block is
    missing; the model falls back on what it learned for missing rows).
    The report vectorizer is refitted on each training fold.

    Labels: two or more classes, all strings or all numbers (a mix is
    refused), each with at least ``folds`` patients (a smaller class — a
    single patient, say — is refused with an error naming it). Two classes:
    AUC and F1 of the second class in sorted order, accuracy at probability
    0.5. More: macro one-vs-rest AUC, accuracy of the most probable class,
    macro F1, and the one-vs-rest AUC of each class (``auc_<class>``).
    """
    import pandas as pd
    from sklearn.metrics import confusion_matrix, roc_curve
    from sklearn.model_selection import StratifiedKFold

    _check_table(features)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2; got {folds!r}")
    for f in fusions:
        _check_choice("fusions", f, FUSIONS)
    frame = features.reset_index(drop=True)
    y_raw = frame["label"].to_numpy()
    classes, y = check_labels(y_raw)
    if len(classes) < 2:
        raise ValueError(f"label must have at least 2 classes; got {len(classes)}: {list(classes)[:5]}")
    _check_class_counts(classes, y, int(folds))
    K = len(classes)
    mods = MultimodalModel(modalities=modalities)._mods(frame)
    if not mods:
        raise ValueError("features holds no modality to evaluate")
    vec = report_vectorizer if report_vectorizer is not None else _default_vectorizer(seed)
    specs: list[tuple[str, str, tuple[str, ...], str]] = [(m, "single", (m,), "single") for m in mods]
    if len(mods) > 1:
        specs += [(f"{f} fusion", "fusion", mods, f) for f in fusions]
    extra = _extra_models(frame, cohort, deep, seed, classes)
    specs += [(name, kind, ms, "extra") for name, kind, ms, _fn in extra]
    proba = {name: np.full((len(frame), K), np.nan) for name, *_ in specs}
    rows = []
    skf = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    extra_fns = {name: fn for name, _k, _m, fn in extra}
    for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        train, test = frame.iloc[tr], frame.iloc[te]
        design = _Design(mods, vec).fit(train)
        Dtr, blocks = design.transform(train)
        Dte, _b = design.transform(test)
        for name, kind, ms, fusion in specs:
            if fusion == "extra":
                p = np.asarray(extra_fns[name](tr, te, y), dtype=np.float64)
            else:
                cols = [c for m in ms for c in blocks.get(m, [])]
                sub = {m: blocks[m] for m in ms if m in blocks}
                clf = _classifier(fusion, sub, learner, seed).fit(Dtr[cols], y[tr])
                p = np.asarray(clf.predict_proba(Dte[cols]), dtype=np.float64)
            proba[name][te] = p
            for metric, v in _fold_metrics(y[te], p, K).items():
                rows.append({"model": name, "kind": kind, "modalities": "+".join(ms), "fold": k, "metric": metric, "value": float(v)})
    long = pd.DataFrame(rows)
    per_class = {f"auc_{j}": f"auc_{c}" for j, c in enumerate(classes)} if K > 2 else {}
    long["metric"] = long["metric"].replace(per_class)
    agg = long.groupby(["model", "metric"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    table_rows = []
    for name, kind, ms, _f in specs:
        r: dict[str, Any] = {"model": name, "kind": kind, "modalities": "+".join(ms)}
        for metric in (*METRICS, *per_class.values()):
            a = agg[(agg["model"] == name) & (agg["metric"] == metric)].iloc[0]
            r[f"{metric}_mean"] = float(a["mean"])
            r[f"{metric}_std"] = float(a["std"])
        r["n_folds"] = int(folds)
        table_rows.append(r)
    table = pd.DataFrame(table_rows)
    ids = frame["patient_id"] if "patient_id" in frame else np.arange(len(frame))
    if K == 2:
        oof_cols = {name: p[:, 1] for name, p in proba.items()}
    else:
        oof_cols = {f"{name}: p_{c}": p[:, j] for name, p in proba.items() for j, c in enumerate(classes)}
    oof_df = pd.DataFrame({"patient_id": ids, "label": y_raw, **oof_cols})
    roc: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
    roc_pc: dict[str, dict[Any, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]] = {}
    confusion: dict[str, npt.NDArray[np.int64]] = {}
    for name, p in proba.items():
        if K == 2:
            fpr, tpr, _t = roc_curve(y, p[:, 1])
            roc[name] = (fpr, tpr)
            roc_pc[name] = {_plain(classes[1]): (fpr, tpr)}
            pred = (p[:, 1] >= 0.5).astype(int)
        else:
            roc_pc[name] = {}
            for j, c in enumerate(classes):
                fpr, tpr, _t = roc_curve(y == j, p[:, j])
                roc_pc[name][_plain(c)] = (fpr, tpr)
            pred = np.argmax(p, axis=1)
        confusion[name] = confusion_matrix(y, pred, labels=np.arange(K)).astype(np.int64)
    counts = np.bincount(y, minlength=K)
    settings = {"folds": int(folds), "seed": int(seed), "learner": str(learner), "modalities": list(mods),
                "n_patients": len(frame), "class_counts": dict(zip(map(str, classes), map(int, counts))),
                "classes": [_plain(c) for c in classes]}
    pos = classes[1] if K == 2 else None
    return Evaluation(long, table, oof_df, roc, pos, settings, classes=classes, proba=proba, roc_per_class=roc_pc,
                      confusion=confusion)


def _extra_models(frame: Any, cohort: Any, deep: Any, seed: int,
                  classes: Any = None) -> list[tuple[str, str, tuple[str, ...], Any]]:
    """(name, kind, modalities, fit-and-score function -> (n_test, n_classes) probabilities) of the oracle and deep rows."""
    if cohort is None:
        if deep is not None and deep is not False:
            raise ValueError("deep needs the cohort the features were extracted from (cohort=...)")
        return []
    if "patient_id" not in frame.columns:
        raise ValueError("cohort given but features has no patient_id column to match it")
    ids = [str(p) for p in frame["patient_id"]]
    out: list[tuple[str, str, tuple[str, ...], Any]] = []
    truth = getattr(cohort, "truth", None)
    if classes is None:
        classes, _y = check_labels(frame["label"].to_numpy())
    pcols = [f"p_{c}" for c in classes]
    if truth is not None and (set(pcols) <= set(truth.columns) or ("malignancy_logit" in truth.columns and len(classes) == 2)):
        missing = [p for p in ids if p not in truth.index]
        if missing:
            raise ValueError(f"cohort.truth lacks {len(missing)} patient(s) of features, e.g. {missing[0]!r}")
        if set(pcols) <= set(truth.columns):
            P = truth.loc[ids, pcols].to_numpy(np.float64)
            if not np.isfinite(P).all() or (P < 0).any():
                raise ValueError(f"cohort.truth's {', '.join(pcols)} must be finite probabilities >= 0")
            P = P / np.maximum(P.sum(axis=1, keepdims=True), 1e-300)  # the labels' classes only, renormalised
            out.append(("oracle (Bayes probabilities)", "oracle", ("truth",), lambda tr, te, y: P[te]))
        else:
            logit = truth.loc[ids, "malignancy_logit"].to_numpy(np.float64)
            p1 = 1.0 / (1.0 + np.exp(-logit))
            P2 = np.column_stack([1.0 - p1, p1])
            out.append(("oracle (true logit)", "oracle", ("truth",), lambda tr, te, y: P2[te]))
    if deep is None or deep is False:
        return out
    from .deep import DeepFusionClassifier

    model = DeepFusionClassifier(random_state=seed) if deep is True else deep
    if not isinstance(model, DeepFusionClassifier):
        raise TypeError(f"deep must be True or a DeepFusionClassifier; got {type(deep).__name__}")
    absent = [p for p in ids if p not in cohort]
    if absent:
        raise ValueError(f"cohort lacks {len(absent)} patient(s) of features, e.g. {absent[0]!r}")
    inputs = model.prepare([cohort[p] for p in ids], features=frame)  # its feature blocks, if the model reads them

    def fit_score(tr: Any, te: Any, y: Any) -> Any:
        from sklearn.base import clone

        m = clone(model).fit(inputs.subset(tr), y[tr])
        return m.predict_proba(inputs.subset(te))

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


def _roc_figure(results: Evaluation) -> Any:
    """ROC curves of the pooled out-of-fold probabilities, each labelled with its own (pooled) AUC.

    More than two classes: one panel per class (one-vs-rest), every model in each.
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import auc

    t = results.table
    kinds = dict(zip(t["model"], t["kind"]))
    if not results.multiclass:
        pooled = results.pooled_auc()
        fig = Figure(figsize=(5.5, 5))
        ax = fig.add_subplot()
        for name, (fpr, tpr) in results.roc.items():
            style = "-" if kinds[name] == "fusion" else "--"
            ax.plot(fpr, tpr, style, label=f"{name} (pooled AUC {pooled[name]:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC of the pooled out-of-fold predictions")
        ax.legend(loc="lower right", fontsize=8)
        return fig
    classes = [_plain(c) for c in results.classes]
    ncol = 2
    nrow = (len(classes) + ncol - 1) // ncol
    fig = Figure(figsize=(5.2 * ncol, 4.8 * nrow), layout="constrained")
    for i, c in enumerate(classes):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        for name, curves in results.roc_per_class.items():
            fpr, tpr = curves[c]
            style = "-" if kinds[name] == "fusion" else ":" if kinds[name] == "oracle" else "--"
            ax.plot(fpr, tpr, style, label=f"{name} ({auc(fpr, tpr):.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{c} vs the rest (pooled out-of-fold)", fontsize=10)
        ax.legend(loc="lower right", fontsize=7)
    return fig


def _confusion_figure(results: Evaluation) -> Any:
    """One confusion matrix per model (pooled out-of-fold, most probable class); cells: count and row share."""
    from matplotlib.figure import Figure

    classes = [str(_plain(c)) for c in results.classes]
    names = list(results.confusion)
    ncol = min(3, len(names))
    nrow = (len(names) + ncol - 1) // ncol
    k = len(classes)
    side = 1.2 + 0.75 * k
    fig = Figure(figsize=(side * ncol, side * nrow + 0.3), layout="constrained")
    for i, name in enumerate(names):
        cm = results.confusion[name]
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax = fig.add_subplot(nrow, ncol, i + 1)
        ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for a in range(k):
            for b in range(k):
                ax.text(b, a, f"{cm[a, b]}\n{share[a, b]:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if share[a, b] > 0.6 else "black")
        ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(k), classes, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{name}: accuracy {np.trace(cm) / max(cm.sum(), 1):.3f}", fontsize=8)
    return fig


def _fmt_cell(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}" if math.isfinite(std) else f"{mean:.3f}"


def example_audio(cohort: Any, patient_id: str | None = None) -> tuple[str, Any, int] | None:
    """(caption, samples, rate) of one patient's recording (the first with audio), or None."""
    ids = [patient_id] if patient_id is not None else list(cohort.patient_ids)
    for pid in ids:
        rec = cohort[pid]
        if rec.audio is not None:
            samples, rate = rec.audio
            return (f"patient {pid}: lung sounds ({samples.size / rate:.1f} s at {rate} Hz)", samples, int(rate))
    return None


def _audio_figure(caption: str, samples: Any, rate: int) -> str:
    from matplotlib.figure import Figure

    import medfuse as mf

    from ..features.audio import detect_crackles, detect_wheezes

    x = np.asarray(samples, dtype=np.float32)
    n_fft, hop = 256, 64
    spec = np.asarray(mf.spectrogram(x, n_fft=n_fft, hop_length=hop, power=2.0), dtype=np.float64)
    db = 10.0 * np.log10(np.maximum(spec, 1e-12))
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.add_subplot()
    dur = x.size / rate
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0.0, dur, 0.0, rate / 2.0),
              vmin=float(np.percentile(db, 5)), vmax=float(db.max()))
    cr = detect_crackles(x, rate)
    wh = detect_wheezes(x, rate)
    for t, _d, _f, kind in cr:
        ax.plot([t, t], [0.85 * rate / 2, rate / 2], color="white" if kind == "fine" else "yellow", linewidth=0.8)
    for a, b, f0 in wh:
        ax.plot([a, b], [f0, f0], color="cyan", linewidth=2.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    n_fine = sum(k == "fine" for *_, k in cr)
    ax.set_title(f"{caption}: {n_fine} fine (white) and {len(cr) - n_fine} coarse (yellow) crackles, "
                 f"{len(wh)} wheezes (cyan)", fontsize=9)
    return f'<h2>Lung sounds: spectrogram and detected events</h2><img alt="spectrogram" src="data:image/png;base64,{_png(fig)}">'


def write_report(
    results: Evaluation,
    out_dir: str | os.PathLike[str],
    *,
    examples: Sequence[tuple[str, Any, Any]] = (),
    title: str = "medfuse evaluation",
    timings: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
    filename: str = "report.html",
    audio_example: tuple[str, Any, int] | None = None,
) -> Path:
    """Write ``out_dir/report.html``: table, ROC curves, example images with edges.

    ``examples``: (caption, 2D image, window) triples, e.g. from
    :func:`example_images`; each is shown windowed to 8 bits beside the same
    image with its ``medfuse.canny`` edges (thresholds 40/100 on the 8-bit
    image, sigma 1) overlaid in red. ``audio_example``: (caption, samples,
    rate), e.g. from :func:`example_audio`: its spectrogram
    (``medfuse.spectrogram``, dB) with the crackles (white ticks) and
    wheezes (cyan lines at f0) that :mod:`medfuse.features.audio` detects.
    ``timings``: stage -> seconds, listed with the time of this report itself
    ("HTML report") unless given. The ROC curves are those of the pooled
    out-of-fold probabilities, labelled with their pooled AUC (the table
    gives the mean AUC over folds).
    Everything is embedded (base64 PNG), so the file stands alone. Returns
    the path; the file is written atomically.
    """
    import time

    from matplotlib.figure import Figure

    import medfuse as mf

    t_start = time.perf_counter()
    if not isinstance(results, Evaluation):
        raise TypeError(f"results must be a medfuse.learn.Evaluation (from cross_validate); got {type(results).__name__}")
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    t = results.table
    multi = results.multiclass
    per_class = results.class_metrics()
    heads: tuple[str, ...] = ("model", "modalities", "macro AUC" if multi else "AUC", "accuracy",
                              "macro F1" if multi else "F1")
    heads += tuple(f"AUC {_plain(c)}" for c in (results.classes if multi else []))
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in heads)
    body = []
    best_single = results.best("single")[1] if (t["kind"] == "single").any() else None
    for _i, r in t.iterrows():
        cells = [html.escape(str(r["model"])), html.escape(str(r["modalities"]))]
        cells += [_fmt_cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in (*METRICS, *per_class)]
        cls = ' class="fusion-win"' if best_single is not None and r["kind"] == "fusion" and r["auc_mean"] > best_single else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    roc_png = _png(_roc_figure(results))
    confusion_html = ""
    if multi and results.confusion:
        confusion_html = (
            "<h2>Confusion matrices</h2><p>Pooled out-of-fold predictions (the most probable class); rows are the "
            "true class, columns the predicted one; each cell gives the count and the share of its row.</p>"
            f'<img alt="confusion matrices" src="data:image/png;base64,{_png(_confusion_figure(results))}">'
        )

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

    audio_html = ""
    if audio_example is not None:
        audio_html = _audio_figure(*audio_example)

    s = results.settings
    meta = (
        f"{s.get('n_patients', '?')} patients ({', '.join(f'{html.escape(str(k))}: {v}' for k, v in s.get('class_counts', {}).items())}), "
        f"stratified {s.get('folds', '?')}-fold cross-validation (seed {s.get('seed', '?')}), "
        f"learner {html.escape(str(s.get('learner', '?')))}; mean ± standard deviation across folds."
    )
    timing_html = ""
    if timings:
        stages = dict(timings)
        stages.setdefault("HTML report", time.perf_counter() - t_start)  # this stage too (all but the file write)
        items = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f} s</td></tr>" for k, v in stages.items())
        timing_html = f"<h2>Stage times</h2><table>{items}</table>"
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    roc_note = " and class (one class against all the others)" if multi else ""
    if multi:
        meta += (" AUC is the macro average of the one-vs-rest AUCs of the classes (also shown one by one), "
                 "F1 the macro average; accuracy counts the most probable class.")
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}tr.fusion-win{{background:#e8f5e9}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{meta}</p>{notes_html}
<h2>Results</h2>{table_html}
<h2>ROC curves</h2><p>All folds' out-of-fold predictions pooled into one curve per model{roc_note}; the legend gives
the AUC of that pooled curve, which differs from the table's mean of the per-fold AUCs.</p>
<img alt="ROC curves" src="data:image/png;base64,{roc_png}">
{confusion_html}{ex_html}{audio_html}{timing_html}
<p>medfuse {html.escape(mf.__version__)}</p></body></html>
"""
    path = out / filename
    from ..data.io import _atomic_write_bytes

    _atomic_write_bytes(path, doc.encode("utf-8"))
    return path


def _register() -> None:
    from .modelfile import register_kind

    register_kind("multimodal", MultimodalModel, to_parts=_model_to_parts, from_parts=_model_from_parts, card=_model_card)


_register()
