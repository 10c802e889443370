"""Multi-class learning end to end: fusion classifiers, cross_validate, cv_metrics, the report, model files.

The data (tests/multiclass_tables.py) has four classes whose Bayes-optimal
probabilities are known exactly, and two image blocks that each see only
half of the class, so fusion has something to win.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from medfuse.data import synthetic_cohort
from medfuse.learn import AttentionFusionClassifier, EarlyFusionClassifier, LateFusionClassifier
from medfuse.learn.evaluate import Evaluation, MultimodalModel, check_labels, cross_validate, cv_metrics, write_report
from multiclass_tables import CLASSES, multiclass_table

SORTED = sorted(CLASSES)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, object]:
    return multiclass_table(160, seed=0)


@pytest.fixture(scope="module")
def evaluation(data: tuple[pd.DataFrame, object]) -> Evaluation:
    frame, cohort = data
    return cross_validate(frame, folds=3, seed=2, cohort=cohort)


# ---------------------------------------------------------------- fusion classifiers


@pytest.mark.parametrize("cls", [EarlyFusionClassifier, LateFusionClassifier, AttentionFusionClassifier])
def test_fusion_classifiers_string_and_int_labels_agree(cls: type, data: tuple[pd.DataFrame, object]) -> None:
    frame, _c = data
    X = frame[[c for c in frame.columns if c.startswith(("ct__", "xray__"))]]
    blocks = {"ct": [c for c in X.columns if c.startswith("ct__")], "xray": [c for c in X.columns if c.startswith("xray__")]}
    y = frame["label"].to_numpy()
    est = cls(blocks, random_state=0).fit(X, y)
    assert list(est.classes_) == SORTED  # sorted, as scikit-learn
    p = est.predict_proba(X)
    assert p.shape == (len(X), 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(est.predict(X), est.classes_[np.argmax(p, axis=1)])
    # it learns: both blocks together tell the four classes apart (chance: macro AUC 0.5, accuracy <= 0.4)
    assert roc_auc_score(y, p, multi_class="ovr", labels=est.classes_) > 0.9
    assert (est.predict(X) == y).mean() > 0.75
    # the same classes as integers in the same order give the same model
    yi = np.searchsorted(np.array(SORTED), y)
    est_i = cls(blocks, random_state=0).fit(X, yi)
    assert list(est_i.classes_) == [0, 1, 2, 3]
    np.testing.assert_allclose(est_i.predict_proba(X), p, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- cross_validate


def test_cross_validate_multiclass_metrics_match_sklearn(evaluation: Evaluation, data: tuple[pd.DataFrame, object]) -> None:
    frame, cohort = data
    ev = evaluation
    assert ev.multiclass and list(ev.classes) == SORTED and ev.positive_label is None
    t = ev.table.set_index("model")
    assert list(t.index) == ["ct", "xray", "report", "early fusion", "late fusion", "attention fusion",
                             "oracle (Bayes probabilities)"]
    for c in SORTED:
        assert f"auc_{c}_mean" in t.columns and f"auc_{c}_std" in t.columns
    # recompute every fold's metrics with sklearn from the out-of-fold probabilities and the same folds
    y = np.searchsorted(np.array(SORTED), frame["label"].to_numpy())
    folds = list(StratifiedKFold(3, shuffle=True, random_state=2).split(np.zeros(len(y)), y))
    f = ev.folds
    for name, P in ev.proba.items():
        assert np.isfinite(P).all() and np.allclose(P.sum(axis=1), 1.0)
        for k, (_tr, te) in enumerate(folds):
            got = f[(f["model"] == name) & (f["fold"] == k)].set_index("metric")["value"]
            assert got["auc"] == pytest.approx(roc_auc_score(y[te], P[te], multi_class="ovr", average="macro"))
            assert got["accuracy"] == pytest.approx((np.argmax(P[te], axis=1) == y[te]).mean())
            assert got["f1"] == pytest.approx(f1_score(y[te], np.argmax(P[te], axis=1), average="macro"))
            per_class = [got[f"auc_{c}"] for c in SORTED]
            assert got["auc"] == pytest.approx(np.mean(per_class))  # macro = the mean of the one-vs-rest AUCs
        # pooled confusion matrix of the most probable class
        np.testing.assert_array_equal(ev.confusion[name], confusion_matrix(y, np.argmax(P, axis=1)))
        # per-class ROC = one-vs-rest on the pooled probabilities
        fpr, tpr = ev.roc_per_class[name]["tuberculosis"]
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y == SORTED.index("tuberculosis"), P[:, 3]))
    assert ev.roc == {}  # the binary curve dict stays binary
    # the oracle scores the truth table's exact posteriors on the same folds
    truth = cohort.truth.loc[frame["patient_id"], [f"p_{c}" for c in SORTED]].to_numpy()  # type: ignore[attr-defined]
    np.testing.assert_allclose(ev.proba["oracle (Bayes probabilities)"], truth)
    # oof columns: one per model and class
    assert {"ct: p_fibrosis", "late fusion: p_normal"} <= set(ev.oof.columns)
    pooled = ev.pooled_auc()
    assert pooled["late fusion"] == pytest.approx(roc_auc_score(y, ev.proba["late fusion"], multi_class="ovr"))


def test_fusion_beats_each_half_and_the_oracle_bounds_everything(evaluation: Evaluation) -> None:
    t = evaluation.table.set_index("model")["auc_mean"]
    # each image block sees half of the class; reports name it half the time
    best_single = t[["ct", "xray", "report"]].max()
    for fusion in ("early fusion", "late fusion", "attention fusion"):
        assert t[fusion] > 0.95 and t[fusion] > best_single + 0.05, (fusion, t.to_dict())
    oracle = evaluation.table.set_index("model").loc["oracle (Bayes probabilities)"]
    assert oracle["kind"] == "oracle"
    acc = evaluation.table.set_index("model")["accuracy_mean"]
    assert acc["oracle (Bayes probabilities)"] >= acc.drop("oracle (Bayes probabilities)").max() - 0.02


def test_cv_metrics_multiclass_equals_cross_validate(data: tuple[pd.DataFrame, object]) -> None:
    frame, _c = data
    m = cv_metrics(MultimodalModel("early", "logreg", random_state=0), frame, folds=3, seed=0)
    ev = cross_validate(frame, folds=3, seed=0, fusions=("early",))
    row = ev.table.set_index("model").loc["early fusion"]
    assert m["classes"] == SORTED and m["average"] == "macro" and "positive_label" not in m
    for k in ("auc", "accuracy", "f1"):
        assert m[f"{k}_mean"] == pytest.approx(row[f"{k}_mean"]) and m[f"{k}_std"] == pytest.approx(row[f"{k}_std"])


def test_report_has_confusion_and_per_class_roc(evaluation: Evaluation, tmp_path) -> None:  # type: ignore[no-untyped-def]
    html = write_report(evaluation, tmp_path).read_text(encoding="utf-8")
    assert "Confusion matrices" in html and "macro AUC" in html
    for c in SORTED:
        assert f"<th>AUC {c}</th>" in html
    row = evaluation.table.set_index("model").loc["late fusion"]
    assert f"{row['auc_tuberculosis_mean']:.3f} ± {row['auc_tuberculosis_std']:.3f}" in html
    assert html.count("data:image/png;base64,") == 2  # per-class ROC panels + confusion matrices
    text = evaluation.format_table()
    assert "macro AUC" in text and "AUC tuberculosis" in text


def test_binary_evaluation_keeps_its_shape() -> None:
    frame, _c = multiclass_table(80, seed=1, reports=False)
    frame["label"] = (frame["label"] != "normal").astype(int)
    ev = cross_validate(frame, folds=2, seed=0, fusions=("early",))
    assert not ev.multiclass and ev.positive_label == 1
    assert list(ev.oof.columns) == ["patient_id", "label", "ct", "xray", "early fusion"]
    assert set(ev.roc) == {"ct", "xray", "early fusion"}
    assert not [c for c in ev.table.columns if c.startswith("auc_") and c not in ("auc_mean", "auc_std")]
    assert ev.confusion["ct"].sum() == len(frame)
    np.testing.assert_allclose(ev.proba["ct"][:, 1], ev.oof["ct"])


# ---------------------------------------------------------------- model files


def test_model_file_keeps_string_classes(data: tuple[pd.DataFrame, object], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medfuse.learn.modelfile import read_card

    frame, _c = data
    for fusion in ("late", "attention"):
        m = MultimodalModel(fusion, "logreg").fit(frame)
        path = m.save(tmp_path / f"{fusion}.medfuse")
        card = read_card(path)["card"]
        assert card["model"]["classes"] == SORTED
        assert card["training_data"]["label_counts"] == {c: int((frame["label"] == c).sum()) for c in SORTED}
        back = MultimodalModel.load(path)
        assert list(back.classes_) == SORTED
        np.testing.assert_allclose(back.predict_proba(frame), m.predict_proba(frame))


# ---------------------------------------------------------------- bad input


def test_mixed_label_types_are_refused(data: tuple[pd.DataFrame, object]) -> None:
    frame, _c = data
    mixed = frame.assign(label=frame["label"].astype(object))
    mixed.loc[0, "label"] = 3
    with pytest.raises(ValueError, match=r"mixes label types \(number, e.g. 3, str, e.g. '"):
        cross_validate(mixed, folds=2)
    with pytest.raises(ValueError, match="mixes label types"):
        MultimodalModel("early").fit(mixed)
    with pytest.raises(ValueError, match="mixes label types"):
        cv_metrics(MultimodalModel("early"), mixed, folds=2)
    with pytest.raises(ValueError, match="mixes label types"):
        check_labels([0, 1, "fibrosis"])
    X = frame[["ct__f0", "xray__f0"]].to_numpy()
    for cls in (EarlyFusionClassifier, LateFusionClassifier, AttentionFusionClassifier):
        for y in (list(mixed["label"]), mixed["label"], mixed["label"].to_numpy()):  # NumPy would make "3" of a list
            with pytest.raises(ValueError, match="mixes label types"):
                cls().fit(X, y)
    with pytest.raises(ValueError, match="missing"):
        check_labels(["normal", None])
    classes, idx = check_labels(np.array([2, 0, 2]))
    assert list(classes) == [0, 2] and list(idx) == [1, 0, 1]


def test_a_class_too_small_for_the_folds_is_named(data: tuple[pd.DataFrame, object]) -> None:
    frame, _c = data
    one = frame.copy()
    one.loc[0, "label"] = "sarcoidosis"
    with pytest.raises(ValueError, match=r"class 'sarcoidosis' \(1 patient\)"):
        cross_validate(one, folds=3)
    with pytest.raises(ValueError, match=r"'sarcoidosis' \(1 patient\)"):
        cv_metrics(MultimodalModel("early"), one, folds=3)
    # fitting (no cross-validation) on such a class is allowed: the class is learned from its one patient
    m = MultimodalModel("early").fit(one)
    assert "sarcoidosis" in m.classes_
    # late fusion's stacking needs out-of-fold predictions of every class: refused, naming the class
    with pytest.raises(ValueError, match="class 'sarcoidosis' has 1 patient"):
        MultimodalModel("late").fit(one)


def test_classes_never_seen_at_fit_are_refused_when_scoring(data: tuple[pd.DataFrame, object]) -> None:
    frame, _c = data
    m = MultimodalModel("early").fit(frame)
    assert m.score(frame) == pytest.approx((m.predict(frame) == frame["label"]).mean())
    unseen = frame.copy()
    unseen.loc[:2, "label"] = "asthma"
    with pytest.raises(ValueError, match=r"never saw at fit: 'asthma'"):
        m.score(unseen)
    # prediction itself does not look at labels
    assert len(m.predict(unseen)) == len(frame)


# ---------------------------------------------------------------- the disease cohort (issue-diseases)


def test_disease_cohort_oracle_row_and_unknown_task() -> None:
    from medfuse.data.synthetic import DISEASE_CLASSES  # type: ignore[attr-defined]
    from medfuse.extract import CohortFeatures, extract_cohort
    from medfuse.features import ImageFeatureExtractor

    with pytest.raises(ValueError, match="task"):
        synthetic_cohort(4, task="asthma")  # type: ignore[call-arg]
    cohort = synthetic_cohort(60, seed=1, shape=(24, 64, 64), task="disease")  # type: ignore[call-arg]
    cheap = {"groups": ("first_order", "histogram")}
    cf = CohortFeatures(ct=ImageFeatureExtractor(window=(-600.0, 1500.0), **cheap), xray=ImageFeatureExtractor(**cheap))
    table = extract_cohort(cohort, cf, workers=2).features
    assert set(table["label"]) <= set(DISEASE_CLASSES)
    ev = cross_validate(table, folds=2, seed=0, cohort=cohort, fusions=("late",))
    t = ev.table.set_index("model")
    assert "oracle (Bayes probabilities)" in t.index
    assert t.loc["oracle (Bayes probabilities)", "auc_mean"] > 0.5
    assert t.loc["late fusion", "auc_mean"] > 0.5
