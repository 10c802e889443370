"""The data behind test ordering: per patient, the class probabilities after each set of tests.

A feature table (``medfuse extract``: ``label``, ``<modality>__<feature>``
numeric columns, NaN rows for a missing image, and an optional ``report``
text column) becomes an :class:`AcquisitionData`: for every patient and
every subset S of the modalities (a bit mask, bit m = modality m
acquired), the class probabilities a classifier trained on S gives; which
modalities the patient has; the true class. The environment and the
evaluation only look these up, so an episode step costs a table read.

One classifier per non-empty subset (a fusion classifier from
:mod:`medfuse.learn.fusion` over the subset's blocks, which predicts a
patient from the blocks it has); the empty subset is the class prior of the
training patients. Probabilities of the training patients are out of fold
(``inner_folds``-fold within the training set), so an agent learns from
probabilities as good as the ones it will see on new patients, not from
the classifier's over-confident fit to its own training data. Each
subset's probabilities are then temperature-calibrated
(:class:`TemperatureCalibrator`, fitted on those out-of-fold
probabilities): a policy stops on them, and the held-out AUC pools the
probabilities of patients who stopped after different tests, so they must
mean the same thing whichever classifier gave them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_COSTS",
    "AcquisitionData",
    "TemperatureCalibrator",
    "check_costs",
    "check_lam",
    "parse_costs",
    "subset_probabilities",
    "table_modalities",
]

DEFAULT_COSTS: dict[str, float] = {"audio": 0.5, "xray": 1.0, "ct": 5.0, "report": 20.0}
"""Default cost of each test, in arbitrary units (an X-ray = 1): a CT costs
5 X-rays, a biopsy with its pathology report 20, a lung-sound recording
(auscultation: no radiation, minutes of a nurse's time) half an X-ray. Set your own with
``costs=`` / ``--costs``: money, minutes, radiation dose or a mix — only the
ratios to each other and to λ matter."""

SEP = "__"


def parse_costs(text: str) -> dict[str, float]:
    """``"xray=1,ct=5,report=20"`` -> ``{"xray": 1.0, "ct": 5.0, "report": 20.0}`` (checked by :func:`check_costs` later)."""
    out: dict[str, float] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"costs: expected name=value pairs separated by commas (xray=1,ct=5); got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"costs: the cost of {name.strip()!r} must be a number; got {value.strip()!r}") from None
    if not out:
        raise ValueError("costs: no name=value pair given")
    return out


def check_costs(costs: Mapping[str, float], modalities: Sequence[str]) -> npt.NDArray[np.float64]:
    """The costs of ``modalities`` in order, as an array; refuses unknown names, missing ones, negative or NaN costs."""
    if not isinstance(costs, Mapping):
        raise TypeError(f"costs must be a dict of modality -> cost; got {type(costs).__name__}")
    unknown = [k for k in costs if k not in modalities]
    if unknown:
        raise ValueError(f"costs: unknown modality {', '.join(map(repr, unknown))}; the table's modalities are {', '.join(modalities)}")
    lacking = [m for m in modalities if m not in costs]
    if lacking:
        raise ValueError(f"costs: no cost given for modality {', '.join(map(repr, lacking))}")
    out = np.empty(len(modalities), dtype=np.float64)
    for j, m in enumerate(modalities):
        v = costs[m]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"costs[{m!r}] must be a number; got {v!r}")
        if not math.isfinite(float(v)) or float(v) < 0:
            raise ValueError(f"costs[{m!r}] must be a finite number >= 0; got {v!r}")
        out[j] = float(v)
    return out


def check_lam(lam: Any) -> float:
    """λ, the penalty of a wrong diagnosis: a finite number >= 0."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise TypeError(f"lam (the penalty of a wrong diagnosis) must be a number; got {lam!r}")
    if not math.isfinite(float(lam)) or float(lam) < 0:
        raise ValueError(f"lam (the penalty of a wrong diagnosis) must be a finite number >= 0; got {lam!r}")
    return float(lam)


def table_modalities(frame: Any) -> list[str]:
    """Modalities of a feature table, in column order: ``<m>__*`` column prefixes, then ``report`` (text) if present."""
    mods: list[str] = []
    for c in frame.columns:
        if isinstance(c, str) and SEP in c:
            m = c.split(SEP, 1)[0]
            if m and m not in mods and m != "report":
                mods.append(m)
    if "report" in frame.columns:
        mods.append("report")
    return mods


@dataclass
class AcquisitionData:
    """Looked-up class probabilities per patient and per acquired subset.

    ``proba[i, s]`` (n, 2**M, K): the probabilities of patient i after the
    tests in subset mask s (only subsets of what the patient has are ever
    used); ``available`` (n, M) bool; ``y`` (n,) class indices into
    ``classes``; ``modalities`` the M names (bit m of a mask = modality m).
    """

    proba: npt.NDArray[np.float64]
    available: npt.NDArray[np.bool_]
    y: npt.NDArray[np.intp]
    modalities: tuple[str, ...]
    classes: npt.NDArray[Any]
    patient_ids: npt.NDArray[Any]

    def __post_init__(self) -> None:
        n, s, k = self.proba.shape
        m = len(self.modalities)
        if s != 2**m or self.available.shape != (n, m) or self.y.shape != (n,) or len(self.classes) != k:
            raise ValueError("AcquisitionData: inconsistent shapes")

    @property
    def n_modalities(self) -> int:
        return len(self.modalities)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, rows: Any) -> AcquisitionData:
        rows = np.asarray(rows)
        return AcquisitionData(self.proba[rows], self.available[rows], self.y[rows], self.modalities, self.classes,
                               self.patient_ids[rows])

    def available_mask(self) -> npt.NDArray[np.int64]:
        """Per patient, the bit mask of its available modalities."""
        return (self.available.astype(np.int64) << np.arange(self.n_modalities)).sum(axis=1)


def _check_table(frame: Any, modalities: Sequence[str] | None) -> tuple[list[str], Any]:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame (a medfuse feature table); got {type(frame).__name__}")
    if "label" not in frame.columns:
        raise ValueError("features has no 'label' column: learning which test to order needs labels")
    if frame["label"].isna().any():
        raise ValueError(f"features: {int(frame['label'].isna().sum())} patients have no label; drop them first")
    found = table_modalities(frame)
    if modalities is None:
        mods = found
    else:
        mods = list(modalities)
        bad = [m for m in mods if m not in found]
        if bad:
            raise ValueError(f"modalities: {', '.join(map(repr, bad))} not in the table (found {', '.join(found)})")
    if not mods:
        raise ValueError("features has no modality column (<modality>__* numeric columns or a 'report' text column)")
    if len(mods) > 8:
        raise ValueError(f"modalities: at most 8 (2**M classifiers are trained); got {len(mods)}")
    return mods, frame.reset_index(drop=True)


def _availability(frame: Any, mods: Sequence[str]) -> npt.NDArray[np.bool_]:
    av = np.zeros((len(frame), len(mods)), dtype=bool)
    for j, m in enumerate(mods):
        if m == "report":
            av[:, j] = frame["report"].map(lambda t: isinstance(t, str) and t.strip() != "").to_numpy(bool)
        else:
            cols = [c for c in frame.columns if isinstance(c, str) and c.startswith(m + SEP)]
            av[:, j] = ~frame[cols].astype(np.float64).isna().all(axis=1).to_numpy()
    empty = [m for j, m in enumerate(mods) if not av[:, j].any()]
    if empty:
        raise ValueError(f"features: modality {', '.join(map(repr, empty))} is missing for every patient; "
                         "drop it from costs/modalities")
    return av


def _design(frame: Any, mods: Sequence[str], train: npt.NDArray[np.intp], seed: int) -> tuple[Any, dict[str, list[str]]]:
    """Numeric design (report text vectorised with a vectorizer fitted on the training rows) and its blocks."""
    import pandas as pd

    parts, blocks = [], {}
    for m in mods:
        if m == "report":
            continue
        cols = [c for c in frame.columns if isinstance(c, str) and c.startswith(m + SEP)]
        parts.append(frame[cols].astype(np.float64))
        blocks[m] = cols
    if "report" in mods:
        from ..evaluate import _default_vectorizer

        texts = frame["report"].tolist()
        idx = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip() != ""]
        tr = set(train.tolist())
        vec = _default_vectorizer(seed).fit([texts[i] for i in idx if i in tr])
        names = [f"report{SEP}{n}" for n in vec.get_feature_names_out()]
        R = np.full((len(frame), len(names)), np.nan)
        if idx:
            R[idx] = vec.transform([texts[i] for i in idx])
        parts.append(pd.DataFrame(R, columns=names))
        blocks["report"] = names
    return pd.concat(parts, axis=1), blocks


def _classifier(blocks: dict[str, list[str]], fusion: str, learner: Any, seed: int) -> Any:
    from ..fusion import EarlyFusionClassifier, LateFusionClassifier

    if learner is None:
        from sklearn.linear_model import LogisticRegression

        learner = LogisticRegression(C=1.0, max_iter=2000)
    if fusion == "early":
        return EarlyFusionClassifier(blocks, learner=learner, random_state=seed)
    if fusion == "late":
        return LateFusionClassifier(blocks, learner=learner, random_state=seed)
    raise ValueError(f"fusion must be 'early' or 'late'; got {fusion!r}")


def _full(clf: Any, X: Any, k: int) -> npt.NDArray[np.float64]:
    """predict_proba with a column for each of the k classes (a fold may lack one)."""
    out = np.zeros((len(X), k))
    out[:, np.asarray(clf.classes_, dtype=np.intp)] = clf.predict_proba(X)
    return out


class TemperatureCalibrator:
    """Temperature scaling of class probabilities: ``softmax(log p / T)``, T fitted by minimal log loss.

    One parameter per classifier: it keeps each patient's most probable
    class, and it makes the probabilities of different classifiers (one per
    acquired subset) comparable, so a policy that stops after a cheap test
    hands on probabilities as trustworthy as the ones after every test.
    Fitted on cross-fitted (out-of-fold) probabilities, never on a
    classifier's own training fit. ``temperature_`` > 1: the classifier was
    over-confident; < 1: under-confident.
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0)) -> None:
        self.bounds = bounds

    @staticmethod
    def _scaled(logp: npt.NDArray[np.float64], t: float) -> npt.NDArray[np.float64]:
        z = logp / t
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def fit(self, proba: Any, y: Any) -> TemperatureCalibrator:
        from scipy.optimize import minimize_scalar

        p = np.asarray(proba, dtype=np.float64)
        yy = np.asarray(y, dtype=np.intp)
        if p.ndim != 2 or yy.shape != (p.shape[0],) or p.shape[0] == 0:
            raise ValueError(f"proba must be (n, K) and y (n,) with n > 0; got {p.shape} and {yy.shape}")
        logp = np.log(np.clip(p, 1e-12, 1.0))
        rows = np.arange(p.shape[0])

        def nll(u: float) -> float:
            q = self._scaled(logp, float(np.exp(u)))
            return float(-np.log(np.clip(q[rows, yy], 1e-300, None)).mean())

        lo, hi = (math.log(b) for b in self.bounds)
        self.temperature_ = float(np.exp(minimize_scalar(nll, bounds=(lo, hi), method="bounded",
                                                         options={"xatol": 1e-4}).x))
        return self

    def transform(self, proba: Any) -> npt.NDArray[np.float64]:
        p = np.asarray(proba, dtype=np.float64)
        if p.size == 0:
            return p.copy()
        return self._scaled(np.log(np.clip(p, 1e-12, 1.0)), self.temperature_)


def subset_probabilities(
    features: Any,
    train: Any = None,
    test: Any = None,
    *,
    modalities: Sequence[str] | None = None,
    fusion: str = "early",
    learner: Any = None,
    inner_folds: int = 5,
    calibrate: bool = True,
    seed: int = 0,
) -> tuple[AcquisitionData, AcquisitionData | None]:
    """(training data, test data or None) of a feature table.

    ``train`` / ``test``: row positions (default: every row is a training
    row, no test rows). One classifier per non-empty subset of
    ``modalities`` (default: every modality of the table) is fitted on the
    training rows; training probabilities are out of fold
    (``inner_folds``), test probabilities come from the classifiers refitted
    on all training rows. The report vectorizer (unsupervised) is fitted on
    the training reports only. ``fusion``: "early" or "late"
    (:mod:`medfuse.learn.fusion`); ``learner``: its learner (default: an
    L2 logistic regression with C = 1, quick on a few hundred columns;
    its probabilities are calibrated afterwards, so it need not be shrunk
    into cautious ones).
    ``calibrate`` (default True): each subset's probabilities are
    temperature-scaled (:class:`TemperatureCalibrator`), the temperature
    fitted on the training patients' out-of-fold probabilities (those who
    have every test of the subset) and applied to training and test
    probabilities alike.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    mods, frame = _check_table(features, modalities)
    n = len(frame)
    tr = np.arange(n) if train is None else np.asarray(train, dtype=np.intp)
    te = np.zeros(0, np.intp) if test is None else np.asarray(test, dtype=np.intp)
    if tr.size == 0:
        raise ValueError("train: no training row")
    classes, y_all = np.unique(frame["label"].to_numpy(), return_inverse=True)
    ytr = y_all[tr]
    counts = np.bincount(ytr, minlength=len(classes))
    if (counts > 0).sum() < 2:
        raise ValueError("label: the training rows hold a single class; a classifier needs at least 2")
    if isinstance(inner_folds, bool) or not isinstance(inner_folds, (int, np.integer)) or inner_folds < 2:
        raise ValueError(f"inner_folds must be an integer >= 2; got {inner_folds!r}")
    av = _availability(frame, mods)
    if not av[tr].any(axis=0).all():
        empty = [m for j, m in enumerate(mods) if not av[tr, j].any()]
        raise ValueError(f"features: modality {', '.join(map(repr, empty))} is missing for every training patient")
    D, blocks = _design(frame, mods, tr, seed)
    M, K = len(mods), len(classes)
    p_tr = np.zeros((tr.size, 2**M, K))
    p_te = np.zeros((te.size, 2**M, K))
    prior = np.bincount(ytr, minlength=K) / tr.size
    p_tr[:, 0] = prior
    p_te[:, 0] = prior
    k_inner = int(min(inner_folds, counts[counts > 0].min()))
    if k_inner < 2:
        raise ValueError("label: a class has a single training patient; need at least 2 per class")
    folds = list(StratifiedKFold(k_inner, shuffle=True, random_state=seed).split(np.zeros(tr.size), ytr))
    Dtr, Dte = D.iloc[tr].reset_index(drop=True), D.iloc[te].reset_index(drop=True)
    for s in range(1, 2**M):
        sub = {m: blocks[m] for j, m in enumerate(mods) if s >> j & 1}
        cols = [c for b in sub.values() for c in b]
        base = _classifier(sub, fusion, learner, seed)
        for a, b in folds:
            clf = clone(base).fit(Dtr.iloc[a][cols], ytr[a])
            p_tr[b, s] = _full(clf, Dtr.iloc[b][cols], K)
        if te.size:
            clf = clone(base).fit(Dtr[cols], ytr)
            p_te[:, s] = _full(clf, Dte[cols], K)
        if calibrate:
            has = (av[tr] | ~np.asarray([bool(s >> j & 1) for j in range(M)])).all(axis=1)
            if has.sum() >= 2 * K:
                cal = TemperatureCalibrator().fit(p_tr[has, s], ytr[has])
                p_tr[:, s] = cal.transform(p_tr[:, s])
                p_te[:, s] = cal.transform(p_te[:, s])
    ids = frame["patient_id"].to_numpy() if "patient_id" in frame.columns else np.arange(n)
    train_data = AcquisitionData(p_tr, av[tr], y_all[tr].astype(np.intp), tuple(mods), classes, ids[tr])
    test_data = AcquisitionData(p_te, av[te], y_all[te].astype(np.intp), tuple(mods), classes, ids[te]) if te.size else None
    return train_data, test_data
