"""Multimodal fusion classifiers over named modality blocks (scikit-learn API).

Input ``X`` is one table (a DataFrame or a 2D array) whose columns are
grouped into modality blocks by ``blocks``::

    blocks = {"ct": ct_columns, "xray": xray_columns, "report": report_columns}

Each value is a list of column names (DataFrame), a list of column indices
or a ``slice`` (either). ``blocks=None`` makes every column one block,
"all". A patient's modality is *missing* when every column of its block is
NaN in that row; isolated NaN inside a present block are imputed (block
median learned in fit).

- :class:`EarlyFusionClassifier`: per-block StandardScaler, concatenation
  (missing blocks become zeros = the block mean, plus one 0/1 "missing"
  indicator per block), one learner.
- :class:`LateFusionClassifier`: one learner per modality, trained on the
  patients who have it; their out-of-fold probabilities feed a stacked
  logistic meta-learner; a patient is predicted from the modalities it has.

Learners: "svm" (``SVC(probability=True)``, or its replacement
``CalibratedClassifierCV(SVC(), ensemble=False)`` on scikit-learn >= 1.9), "logreg"
(``LogisticRegression``), "rf" (``RandomForestClassifier``), "gbdt"
(``HistGradientBoostingClassifier``) or any scikit-learn classifier
(cloned, never modified).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..kernels._threads import with_learner_threads

__all__ = [
    "LEARNERS",
    "AttentionFusionClassifier",
    "EarlyFusionClassifier",
    "LateFusionClassifier",
    "check_known_classes",
    "check_labels",
    "make_learner",
    "refuse_mixed_labels",
]

LEARNERS = ("svm", "logreg", "rf", "gbdt")


def _svm(random_state: int | None) -> Any:
    """An RBF SVC with Platt-scaled probabilities.

    ``SVC(probability=True)`` where scikit-learn still offers it; from 1.9 on
    (where it is deprecated) its documented replacement,
    ``CalibratedClassifierCV(SVC(), ensemble=False)`` (sigmoid calibration on
    cross-validated decision values, one SVC refit on all data).
    """
    import sklearn
    from sklearn.svm import SVC

    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    if (major, minor) < (1, 9):
        return SVC(probability=True, random_state=random_state)
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(SVC(random_state=random_state), method="sigmoid", ensemble=False)


def make_learner(learner: Any, random_state: int | None = None) -> Any:
    """A fresh classifier for a learner name, or a clone of an estimator."""
    if isinstance(learner, str):
        if learner == "svm":
            return _svm(random_state)
        if learner == "logreg":
            return LogisticRegression(max_iter=2000)
        if learner == "rf":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(n_estimators=200, random_state=random_state)
        if learner == "gbdt":
            from sklearn.ensemble import HistGradientBoostingClassifier

            return HistGradientBoostingClassifier(random_state=random_state)
        raise ValueError(f"learner must be one of {', '.join(LEARNERS)} or a scikit-learn classifier; got {learner!r}")
    if not (hasattr(learner, "fit") and hasattr(learner, "get_params")):
        raise TypeError(f"learner must be a name ({', '.join(LEARNERS)}) or a scikit-learn classifier; got {learner!r}")
    return clone(learner)


def _resolve_blocks(blocks: Any, columns: list[Any] | None, n_features: int) -> dict[str, npt.NDArray[np.intp]]:
    """Block name -> column indices, checked (non-empty, in range, no overlap)."""
    if blocks is None:
        return {"all": np.arange(n_features, dtype=np.intp)}
    if not isinstance(blocks, Mapping) or len(blocks) == 0:
        raise TypeError(f"blocks must be a non-empty dict of name -> columns (list or slice), or None; got {blocks!r}")
    out: dict[str, npt.NDArray[np.intp]] = {}
    owner: dict[int, str] = {}
    for name, spec in blocks.items():
        if not isinstance(name, str):
            raise TypeError(f"blocks: names must be str; got {name!r}")
        if isinstance(spec, slice):
            idx = np.arange(n_features)[spec]
        elif isinstance(spec, (str, bytes)):
            raise TypeError(f"blocks[{name!r}] must be a list of columns or a slice, not a str")
        else:
            try:
                items = list(spec)
            except TypeError:
                raise TypeError(f"blocks[{name!r}] must be a list of columns or a slice; got {spec!r}") from None
            idx_list = []
            for c in items:
                if isinstance(c, (int, np.integer)) and not isinstance(c, bool) and (columns is None or c not in columns):
                    if not 0 <= int(c) < n_features:
                        raise ValueError(f"blocks[{name!r}]: column index {c} out of range for {n_features} columns")
                    idx_list.append(int(c))
                elif columns is not None and c in columns:
                    idx_list.append(columns.index(c))
                else:
                    where = "X's columns" if columns is not None else "a plain array (use integer indices)"
                    raise ValueError(f"blocks[{name!r}]: column {c!r} is not in {where}")
            idx = np.asarray(idx_list, dtype=np.intp)
        if idx.size == 0:
            raise ValueError(f"blocks[{name!r}] selects no column")
        for j in idx:
            if int(j) in owner:
                raise ValueError(f"blocks: column {j} is in both {owner[int(j)]!r} and {name!r}")
            owner[int(j)] = name
        out[name] = np.asarray(idx, dtype=np.intp)
    return out


def _label_kind(v: Any) -> str:
    if isinstance(v, str):
        return "str"
    if isinstance(v, (int, float, np.number, np.bool_)):
        return "number"
    return type(v).__name__


def refuse_mixed_labels(y: Any, name: str = "y") -> None:
    """ValueError when class labels mix strings and numbers (e.g. ``[0, 1, "fibrosis"]``).

    NumPy would turn such a list into strings ("0", "1", "fibrosis")
    silently; a mix almost always means two label sources were joined.
    """
    arr = y if isinstance(y, np.ndarray) else np.asarray(y, dtype=object) if isinstance(y, (list, tuple)) else None
    if arr is None and hasattr(y, "to_numpy"):
        arr = y.to_numpy()
    if arr is None or arr.dtype != object or arr.ndim != 1:
        return
    first: dict[str, Any] = {}
    for v in arr:
        if v is None or (isinstance(v, float) and v != v):
            continue  # missing: reported elsewhere
        first.setdefault(_label_kind(v), v)
    if len(first) > 1:
        raise ValueError(f"{name} mixes label types ({', '.join(f'{k}, e.g. {v!r}' for k, v in sorted(first.items()))}); "
                         "use one type for every class")


def _plain_value(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def check_labels(y: Any, name: str = "label") -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """(sorted classes, index of each label in them) of class labels, checked.

    Labels are all strings or all numbers (bool counts as a number): a mix
    such as ``[0, 1, "fibrosis"]`` (a table concatenated from two sources)
    is refused with a ValueError naming the types, never compared as text.
    Missing labels (None / NaN) are refused too.
    """
    import pandas as pd

    arr = np.asarray(y, dtype=object) if not isinstance(y, np.ndarray) else y
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
    if pd.isna(pd.Series(arr, dtype=object)).any():
        raise ValueError(f"{name} has missing values; drop unlabeled patients first")
    if arr.dtype == object and arr.size:
        refuse_mixed_labels(arr, name)
        arr = np.asarray(arr.tolist()) if not isinstance(arr[0], str) else arr.astype(str)
    classes, inverse = np.unique(arr, return_inverse=True)
    return classes, inverse.astype(np.intp).reshape(-1)


def check_known_classes(classes: Any, y: Any, name: str = "label") -> None:
    """Refuse labels the model never saw at fit (ValueError listing them and the model's classes)."""
    known = {_plain_value(c) for c in np.asarray(classes).tolist()}
    _c, _i = check_labels(y, name)
    unseen = [_plain_value(c) for c in _c.tolist() if _plain_value(c) not in known]
    if unseen:
        raise ValueError(f"{name} has class(es) the model never saw at fit: {', '.join(map(repr, unseen))}; "
                         f"the model knows {', '.join(map(repr, sorted(known, key=str)))}")


class _FusionBase(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _validate_fit(self, X: Any, y: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
        columns = [c for c in X.columns] if hasattr(X, "columns") else None
        refuse_mixed_labels(y)
        Xa, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=2)
        check_classification_targets(y)
        self._le = LabelEncoder().fit(y)
        self.classes_ = self._le.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single class ({self.classes_[0]!r}); a classifier needs at least 2")
        self.blocks_ = _resolve_blocks(self.blocks, columns, Xa.shape[1])
        if np.isinf(Xa).any():
            raise ValueError("X contains infinite values; missing data must be NaN")
        return Xa, self._le.transform(y)

    def _validate_predict(self, X: Any) -> npt.NDArray[np.float64]:
        check_is_fitted(self, "blocks_")
        Xa = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        if np.isinf(Xa).any():
            raise ValueError("X contains infinite values; missing data must be NaN")
        return Xa

    def _present(self, Xa: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.bool_]]:
        return {name: np.asarray(~np.isnan(Xa[:, idx]).all(axis=1)) for name, idx in self.blocks_.items()}

    def _fit_scalers(self, Xa: npt.NDArray[np.float64]) -> None:
        """``scalers_``: per block, median imputation + standardisation fitted on the patients who have it."""
        self.scalers_ = {}
        for name, p in self._present(Xa).items():
            if p.any():
                self.scalers_[name] = Pipeline(
                    [("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("scale", StandardScaler())]
                ).fit(Xa[np.ix_(p, self.blocks_[name])])

    def _scaled_blocks(
        self, Xa: npt.NDArray[np.float64]
    ) -> tuple[dict[str, npt.NDArray[np.bool_]], list[npt.NDArray[np.float64]]]:
        """(presence per block, scaled block per block); a missing block is zeros (the scaled mean)."""
        present = self._present(Xa)
        xs = []
        for name, idx in self.blocks_.items():
            z = np.zeros((Xa.shape[0], idx.size), dtype=np.float64)
            p = present[name]
            if p.any() and name in self.scalers_:
                z[p] = self.scalers_[name].transform(Xa[np.ix_(p, idx)])
            xs.append(z)
        return present, xs

    def predict(self, X: Any) -> npt.NDArray:
        """Most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_log_proba(self, X: Any) -> npt.NDArray[np.float64]:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class EarlyFusionClassifier(_FusionBase):
    """Per-block scaling, concatenation, one learner.

    Parameters
    ----------
    blocks : dict name -> columns (list of names / indices, or slice), or None
        The modality blocks (see the module docstring). None: one block.
    learner : "svm", "logreg", "rf", "gbdt" or a scikit-learn classifier
    balance_blocks : bool
        Divide each scaled block by sqrt(its number of columns) so every
        modality carries the same total variance, whatever its width.
    missing_indicators : bool
        Append one 0/1 column per block: 1 where that modality is missing
        (its scaled columns are then 0, the mean of the patients who have it).
    random_state : int or None
        Seed of the named learners that use one.

    Fitted: ``classes_``, ``blocks_`` (name -> column indices), ``scalers_``
    (name -> fitted imputer + StandardScaler pipeline), ``learner_``.
    """

    def __init__(
        self,
        blocks: Mapping[str, Any] | None = None,
        learner: Any = "logreg",
        *,
        balance_blocks: bool = True,
        missing_indicators: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.blocks = blocks
        self.learner = learner
        self.balance_blocks = balance_blocks
        self.missing_indicators = missing_indicators
        self.random_state = random_state

    def _design(self, Xa: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        present, parts = self._scaled_blocks(Xa)
        if self.balance_blocks:  # each block weighs the same whatever its width (zeros stay zeros)
            parts = [z / np.sqrt(idx.size) for z, idx in zip(parts, self.blocks_.values())]
        if self.missing_indicators and len(self.blocks_) > 1:
            parts.append(np.column_stack([(~present[n]).astype(np.float64) for n in self.blocks_]))
        return np.hstack(parts)

    @with_learner_threads
    def fit(self, X: Any, y: Any) -> EarlyFusionClassifier:
        """Fit the block scalers on the patients who have each modality, then the learner."""
        Xa, yi = self._validate_fit(X, y)
        self._fit_scalers(Xa)
        self.learner_ = make_learner(self.learner, self.random_state)
        self.learner_.fit(self._design(Xa), yi)
        return self

    @with_learner_threads
    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Class probabilities, columns in ``classes_`` order."""
        Xa = self._validate_predict(X)
        return np.asarray(self.learner_.predict_proba(self._design(Xa)), dtype=np.float64)

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """Log-odds of ``classes_[1]`` (binary) or log-probabilities (multiclass)."""
        p = np.clip(self.predict_proba(X), 1e-15, 1.0)
        if p.shape[1] == 2:
            return np.log(p[:, 1]) - np.log(p[:, 0])
        return np.log(p)


def _scores(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Meta-features of one modality's probabilities: logit (binary) or centred log-probabilities."""
    lp = np.log(np.clip(p, 1e-6, 1.0))
    if p.shape[1] == 2:
        return (lp[:, 1] - lp[:, 0])[:, None]
    return lp - lp.mean(axis=1, keepdims=True)


class LateFusionClassifier(_FusionBase):
    """One learner per modality, stacked by a logistic meta-learner.

    Each modality's learner (imputer + StandardScaler + learner) is trained
    on the patients who have that modality. Out-of-fold probabilities
    (stratified ``cv``-fold over those patients) become meta-features: the
    logit of each modality (centred log-probabilities for more than two
    classes), 0 when the modality is missing, plus a 0/1 presence column per
    modality. A logistic regression (``meta_C``) on these gives the final
    probabilities, so a patient missing a modality is predicted from the
    modalities it has (the missing one contributes only its learned
    "missing" offset). At predict time the modality learners are the ones
    refit on all their patients.

    Parameters
    ----------
    blocks : dict name -> columns, or None (one block)
    learner : name, scikit-learn classifier, or dict block name -> either
    cv : int >= 2
        Folds for the out-of-fold predictions (reduced to the smallest class
        count of a modality when that is lower, at least 2).
    meta_C : float > 0
        Inverse regularisation of the meta-learner.
    random_state : int or None
        Fold shuffling and the named learners' seed.

    Fitted: ``classes_``, ``blocks_``, ``estimators_`` (name -> fitted
    pipeline; absent for a modality with no patient or one class),
    ``meta_learner_``, ``oof_scores_`` (the meta-features of the training rows).
    """

    def __init__(
        self,
        blocks: Mapping[str, Any] | None = None,
        learner: Any = "logreg",
        *,
        cv: int = 5,
        meta_C: float = 1.0,
        random_state: int | None = None,
    ) -> None:
        self.blocks = blocks
        self.learner = learner
        self.cv = cv
        self.meta_C = meta_C
        self.random_state = random_state

    def _learner_for(self, name: str) -> Any:
        spec = self.learner
        if isinstance(spec, Mapping):
            if name not in spec:
                raise ValueError(f"learner: no learner given for block {name!r} (dict keys: {sorted(spec)})")
            spec = spec[name]
        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("learner", make_learner(spec, self.random_state)),
            ]
        )

    @with_learner_threads
    def fit(self, X: Any, y: Any) -> LateFusionClassifier:
        """Fit the modality learners (out-of-fold, then on all) and the meta-learner."""
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ValueError(f"cv must be an integer >= 2; got {self.cv!r}")
        if not float(self.meta_C) > 0:
            raise ValueError(f"meta_C must be > 0; got {self.meta_C!r}")
        Xa, yi = self._validate_fit(X, y)
        present = self._present(Xa)
        n_classes = len(self.classes_)
        width = 1 if n_classes == 2 else n_classes
        self.estimators_ = {}
        meta = []
        for name, idx in self.blocks_.items():
            p = present[name]
            s = np.zeros((Xa.shape[0], width), dtype=np.float64)
            rows = np.flatnonzero(p)
            yb = yi[rows]
            counts = np.bincount(yb, minlength=n_classes)
            if rows.size and (counts > 0).sum() == n_classes and counts.min() >= 2:
                est = self._learner_for(name)
                k = int(min(self.cv, counts.min()))
                folds = StratifiedKFold(k, shuffle=True, random_state=self.random_state)
                blk = Xa[np.ix_(rows, idx)]
                for tr, te in folds.split(blk, yb):
                    f = clone(est).fit(blk[tr], yb[tr])
                    s[rows[te]] = _scores(self._full_proba(f, blk[te], n_classes))
                self.estimators_[name] = est.fit(blk, yb)
            meta.append(s)
            meta.append(p.astype(np.float64)[:, None])
        if not self.estimators_:
            counts = np.bincount(yi, minlength=n_classes)
            small = [f"class {_plain_value(c)!r} has {int(k)} patient{'s' * int(k != 1)}"
                     for c, k in zip(self.classes_, counts) if k < 2]
            which = f" ({'; '.join(small)})" if small else ""
            raise ValueError(
                f"no modality has at least 2 patients of every class{which}; cannot fit any modality learner "
                "(its out-of-fold predictions need 2 per class): drop or merge that class, or use early fusion"
            )
        Z = np.hstack(meta)
        self.oof_scores_ = Z
        self.meta_learner_ = LogisticRegression(C=float(self.meta_C), max_iter=2000).fit(Z, yi)
        return self

    @staticmethod
    def _full_proba(est: Any, X: npt.NDArray[np.float64], n_classes: int) -> npt.NDArray[np.float64]:
        """predict_proba with a column for every class (a fold may lack one)."""
        p = np.asarray(est.predict_proba(X), dtype=np.float64)
        cls = est.classes_
        if p.shape[1] == n_classes:
            return p
        full = np.zeros((X.shape[0], n_classes), dtype=np.float64)
        full[:, cls] = p
        return full

    def _meta_features(self, Xa: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        present = self._present(Xa)
        n_classes = len(self.classes_)
        width = 1 if n_classes == 2 else n_classes
        meta = []
        for name, idx in self.blocks_.items():
            s = np.zeros((Xa.shape[0], width), dtype=np.float64)
            p = present[name]
            if name in self.estimators_ and p.any():
                s[p] = _scores(self._full_proba(self.estimators_[name], Xa[np.ix_(p, idx)], n_classes))
            meta.append(s)
            meta.append(p.astype(np.float64)[:, None])
        return np.hstack(meta)

    @with_learner_threads
    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Class probabilities, columns in ``classes_`` order."""
        Xa = self._validate_predict(X)
        return np.asarray(self.meta_learner_.predict_proba(self._meta_features(Xa)), dtype=np.float64)

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """The meta-learner's decision function (log-odds of ``classes_[1]`` for two classes)."""
        Xa = self._validate_predict(X)
        return np.asarray(self.meta_learner_.decision_function(self._meta_features(Xa)), dtype=np.float64)

    def modality_proba(self, X: Any) -> dict[str, npt.NDArray[np.float64]]:
        """Each modality learner's probabilities (NaN rows where the modality is missing)."""
        Xa = self._validate_predict(X)
        present = self._present(Xa)
        out = {}
        for name, idx in self.blocks_.items():
            pr = np.full((Xa.shape[0], len(self.classes_)), np.nan)
            p = present[name]
            if name in self.estimators_ and p.any():
                pr[p] = self._full_proba(self.estimators_[name], Xa[np.ix_(p, idx)], len(self.classes_))
            out[name] = pr
        return out


class AttentionFusionClassifier(_FusionBase):
    """Modality tokens, one self-attention layer (``medfuse.attention``), pooled, softmax output.

    Each block (imputed and standardised on the patients who have it) is
    projected to a token ``t_m = x_m W_m + b_m`` of size ``d_model``; one
    single-head self-attention layer over the tokens (``q, k, v = T Wq,
    T Wk, T Wv``; ``medfuse.attention`` forward, ``medfuse.attention_backward``
    for the gradients) with a residual ``h = T + attn``; the mean of ``h``
    over the patient's present modalities goes through a linear softmax
    output (logistic for two classes). Missing modalities are masked out as
    keys (bool attention mask) and left out of the pooling; a patient with
    no modality gets the output bias only. Trained full-batch with Adam
    (``learning_rate``), L2 penalty ``alpha`` on the weights, early stopping
    on a stratified ``validation_fraction`` of the patients (best weights
    kept, ``patience`` epochs), at most ``max_epochs``. float64 throughout;
    deterministic in ``random_state``.

    Fitted: ``classes_``, ``blocks_``, ``scalers_``, ``params_`` (dict of
    weights), ``n_epochs_``, ``best_val_loss_``, ``loss_curve_``.
    """

    def __init__(
        self,
        blocks: Mapping[str, Any] | None = None,
        *,
        d_model: int = 16,
        learning_rate: float = 0.01,
        alpha: float = 1e-3,
        max_epochs: int = 300,
        patience: int = 20,
        validation_fraction: float = 0.15,
        random_state: int | None = None,
    ) -> None:
        self.blocks = blocks
        self.d_model = d_model
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def _check_params(self) -> None:
        for name in ("d_model", "max_epochs", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if not float(self.learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate!r}")
        if not float(self.alpha) >= 0:
            raise ValueError(f"alpha must be >= 0; got {self.alpha!r}")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1); got {self.validation_fraction!r}")

    def _inputs(self, Xa: npt.NDArray[np.float64]) -> tuple[list[npt.NDArray[np.float64]], npt.NDArray[np.bool_]]:
        present, xs = self._scaled_blocks(Xa)
        pres = np.column_stack([present[n] for n in self.blocks_]) if self.blocks_ else np.zeros((Xa.shape[0], 0), bool)
        if not self.scalers_.keys() >= set(self.blocks_):
            for j, n in enumerate(self.blocks_):
                if n not in self.scalers_:
                    pres[:, j] = False
        return xs, pres

    def _forward(self, P: dict[str, Any], xs: list[Any], pres: npt.NDArray[np.bool_]) -> tuple[Any, dict[str, Any]]:
        from ..kernels.attention import attention

        T = np.stack([x @ P["W"][m] + P["b"][m] for m, x in enumerate(xs)], axis=1)  # (n, M, d)
        q, k, v = T @ P["Wq"], T @ P["Wk"], T @ P["Wv"]
        mask = pres[:, None, :]  # keys present; (n, 1, M) broadcasts over queries
        att, lse = attention(q, k, v, mask=mask, return_lse=True)
        h = T + att
        npres = pres.sum(axis=1, keepdims=True).astype(np.float64)
        w = pres / np.maximum(npres, 1.0)  # pooling weights (n, M)
        pooled = np.einsum("nm,nmd->nd", w, h)
        logits = pooled @ P["Wo"] + P["bo"]
        cache = {"T": T, "q": q, "k": k, "v": v, "att": att, "lse": lse, "mask": mask, "w": w, "pooled": pooled}
        return logits, cache

    @staticmethod
    def _softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def _loss_grad(self, P: dict[str, Any], xs: list[Any], pres: Any, Y: Any, grad: bool = True) -> tuple[float, Any]:
        from ..kernels.attention import attention_backward

        logits, c = self._forward(P, xs, pres)
        prob = self._softmax(logits)
        n = Y.shape[0]
        a = float(self.alpha)
        weights = [P["Wq"], P["Wk"], P["Wv"], P["Wo"], *P["W"]]
        loss = float(-np.sum(Y * np.log(np.clip(prob, 1e-300, None))) / n) + 0.5 * a * sum(float(np.sum(x * x)) for x in weights)
        if not grad:
            return loss, None
        dlog = (prob - Y) / n
        G: dict[str, Any] = {"Wo": c["pooled"].T @ dlog + a * P["Wo"], "bo": dlog.sum(axis=0)}
        dpool = dlog @ P["Wo"].T
        dh = c["w"][:, :, None] * dpool[:, None, :]
        dq, dk, dv = attention_backward(c["q"], c["k"], c["v"], c["att"], dh, c["lse"], mask=c["mask"])
        T = c["T"]
        G["Wq"] = np.einsum("nmd,nme->de", T, dq) + a * P["Wq"]
        G["Wk"] = np.einsum("nmd,nme->de", T, dk) + a * P["Wk"]
        G["Wv"] = np.einsum("nmd,nme->de", T, dv) + a * P["Wv"]
        dT = dh + dq @ P["Wq"].T + dk @ P["Wk"].T + dv @ P["Wv"].T
        G["W"] = [x.T @ dT[:, m] + a * P["W"][m] for m, x in enumerate(xs)]
        G["b"] = [dT[:, m].sum(axis=0) for m in range(len(xs))]
        return loss, G

    def _init_params(self, rng: np.random.Generator, widths: list[int], n_classes: int) -> dict[str, Any]:
        d = int(self.d_model)
        return {
            "W": [rng.normal(0, 1 / np.sqrt(f), (f, d)) for f in widths],
            "b": [rng.normal(0, 0.1, d) for _ in widths],
            "Wq": rng.normal(0, 1 / np.sqrt(d), (d, d)),
            "Wk": rng.normal(0, 1 / np.sqrt(d), (d, d)),
            "Wv": rng.normal(0, 1 / np.sqrt(d), (d, d)),
            "Wo": rng.normal(0, 1 / np.sqrt(d), (d, n_classes)),
            "bo": np.zeros(n_classes),
        }

    @with_learner_threads
    def fit(self, X: Any, y: Any) -> AttentionFusionClassifier:
        """Fit the block scalers, then the network with Adam and early stopping."""
        self._check_params()
        Xa, yi = self._validate_fit(X, y)
        self._fit_scalers(Xa)
        xs, pres = self._inputs(Xa)
        n_classes = len(self.classes_)
        Y = np.eye(n_classes)[yi]
        rng = np.random.default_rng(self.random_state)
        val = np.zeros(len(yi), dtype=bool)
        counts = np.bincount(yi, minlength=n_classes)
        if float(self.validation_fraction) > 0 and counts.min() >= 2:
            for c in range(n_classes):
                rows = np.flatnonzero(yi == c)
                k = round(float(self.validation_fraction) * rows.size)
                val[rng.choice(rows, size=min(max(k, 1), rows.size - 1), replace=False)] = True
        tr = ~val
        xs_tr, xs_va = [x[tr] for x in xs], [x[val] for x in xs]
        P = self._init_params(rng, [x.shape[1] for x in xs], n_classes)
        flat_keys = ["Wq", "Wk", "Wv", "Wo", "bo"]
        m1 = {k: np.zeros_like(P[k]) for k in flat_keys}
        m2 = {k: np.zeros_like(P[k]) for k in flat_keys}
        lm1 = {k: [np.zeros_like(w) for w in P[k]] for k in ("W", "b")}
        lm2 = {k: [np.zeros_like(w) for w in P[k]] for k in ("W", "b")}
        lr, b1, b2, eps = float(self.learning_rate), 0.9, 0.999, 1e-8
        best: tuple[float, Any, int] = (np.inf, None, 0)
        self.loss_curve_ = []
        wait = 0
        epoch = 0
        for epoch in range(1, int(self.max_epochs) + 1):
            loss, G = self._loss_grad(P, xs_tr, pres[tr], Y[tr])
            self.loss_curve_.append(loss)
            cor1, cor2 = 1 - b1**epoch, 1 - b2**epoch
            for key in flat_keys:
                m1[key] = b1 * m1[key] + (1 - b1) * G[key]
                m2[key] = b2 * m2[key] + (1 - b2) * G[key] ** 2
                P[key] = P[key] - lr * (m1[key] / cor1) / (np.sqrt(m2[key] / cor2) + eps)
            for key in ("W", "b"):
                for j in range(len(P[key])):
                    g = G[key][j]
                    lm1[key][j] = b1 * lm1[key][j] + (1 - b1) * g
                    lm2[key][j] = b2 * lm2[key][j] + (1 - b2) * g**2
                    P[key][j] = P[key][j] - lr * (lm1[key][j] / cor1) / (np.sqrt(lm2[key][j] / cor2) + eps)
            if val.any():
                vloss, _ = self._loss_grad(P, xs_va, pres[val], Y[val], grad=False)
            else:
                vloss = loss
            if vloss < best[0] - 1e-6:
                best = (vloss, _copy_params(P), epoch)
                wait = 0
            else:
                wait += 1
                if wait >= int(self.patience):
                    break
        self.params_ = best[1] if best[1] is not None else _copy_params(P)
        self.best_val_loss_ = float(best[0])
        self.n_epochs_ = epoch
        return self

    @with_learner_threads
    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Class probabilities, columns in ``classes_`` order."""
        Xa = self._validate_predict(X)
        xs, pres = self._inputs(Xa)
        logits, _c = self._forward(self.params_, xs, pres)
        return self._softmax(logits)

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """Logit of ``classes_[1]`` (two classes) or the output logits."""
        Xa = self._validate_predict(X)
        xs, pres = self._inputs(Xa)
        logits, _c = self._forward(self.params_, xs, pres)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits


def _copy_params(P: dict[str, Any]) -> dict[str, Any]:
    return {k: [w.copy() for w in v] if isinstance(v, list) else v.copy() for k, v in P.items()}
