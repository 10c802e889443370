"""Deep fusion in cross_validate (oracle + deep rows) and `medfuse train --fusion deep` / `predict`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medfuse.data import synthetic_cohort
from medfuse.learn import cross_validate

TINY = dict(d_model=8, heads=2, layers=1, widths=(4,), embedding_dim=8, rnn_hidden=8, max_epochs=2, batch_size=16,
            word2vec=False, ct_input="volume", xray_size=16, ct_size=8, validation_fraction=0.0, ensemble=1)


def _table(cohort):
    rows = []
    for rec in cohort:
        rows.append({"patient_id": rec.patient_id, "label": int(rec.label),
                     "xray__mean": float(np.mean(rec.xray)) if rec.xray is not None else np.nan,
                     "report": rec.report})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def cohort():
    return synthetic_cohort(30, seed=2, shape=(16, 48, 48))


def test_oracle_row_scores_the_true_logit(cohort):
    frame = _table(cohort)
    ev = cross_validate(frame, folds=3, seed=0, cohort=cohort, fusions=("early",))
    row = ev.table[ev.table["model"] == "oracle (true logit)"].iloc[0]
    assert row["kind"] == "oracle"
    from sklearn.metrics import roc_auc_score

    truth = cohort.truth.loc[frame["patient_id"]]
    pooled = roc_auc_score(truth["label"], truth["malignancy_logit"])
    assert abs(row["auc_mean"] - pooled) < 0.15 and row["auc_mean"] > 0.7
    assert "oracle" not in ev.best("fusion")[0]


def test_deep_row_and_refusals(cohort):
    torch = pytest.importorskip("torch")
    from medfuse.learn.deep import DeepFusionClassifier

    frame = _table(cohort)
    ev = cross_validate(frame, folds=3, seed=0, cohort=cohort, deep=DeepFusionClassifier(**TINY), fusions=("early",))
    row = ev.table[ev.table["model"] == "deep fusion"].iloc[0]
    assert row["kind"] == "fusion" and 0.0 <= row["auc_mean"] <= 1.0
    # the deep row reads the table's feature blocks (xray__mean here) beside the raw inputs
    seen = []
    orig_fit = DeepFusionClassifier.fit

    def spy(self, X, y=None):
        seen.append(list(X.table_columns))
        return orig_fit(self, X, y)

    DeepFusionClassifier.fit = spy
    try:
        cross_validate(frame, folds=3, seed=0, cohort=cohort, deep=DeepFusionClassifier(**TINY), fusions=("early",))
    finally:
        DeepFusionClassifier.fit = orig_fit
    assert seen == [["xray__mean"]] * 3
    assert np.isfinite(ev.oof["deep fusion"]).all()
    with pytest.raises(ValueError, match="cohort"):
        cross_validate(frame, folds=3, deep=True)
    with pytest.raises(TypeError, match="deep"):
        cross_validate(frame, folds=3, cohort=cohort, deep="yes")
    assert torch is not None


def test_cli_train_and_predict_deep(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from medfuse import cli
    from medfuse.data import Cohort
    from medfuse.features import ImageFeatureExtractor
    from medfuse.learn.deep import DeepFusionClassifier

    data = tmp_path / "cohort"
    synthetic_cohort(12, seed=3, shape=(16, 48, 48), out_dir=data)
    cohort = Cohort.from_csv(data / "manifest.csv")  # what the CLI reads
    from medfuse.extract import CohortFeatures, extract_cohort

    # the real feature blocks, extracted with settings other than the defaults (another CT window: same column
    # names, other values), kept in the table's metadata as `medfuse extract` does
    extraction = CohortFeatures(ct=ImageFeatureExtractor(window=(-1000.0, 400.0), groups=("first_order",)),
                                xray=ImageFeatureExtractor(groups=("first_order",), max_side=64))
    frame = extract_cohort(cohort, extraction, workers=1, progress=False).features
    feats = tmp_path / "features.parquet"
    cli._write_features(frame, feats, extraction)
    # the CLI's defaults are demo-sized; keep the test tiny
    orig = DeepFusionClassifier.__init__
    extra: dict = {}

    def tiny_init(self, **kw):
        orig(self, **{**TINY, **extra, **{k: v for k, v in kw.items() if k in ("random_state", "verbose", "extraction")}})

    monkeypatch.setattr(DeepFusionClassifier, "__init__", tiny_init)
    model = tmp_path / "deep.medfuse"  # the model file format (no pickle)
    assert cli.main(["train", str(feats), "--fusion", "deep", "-o", str(model)]) != 0  # no --manifest
    assert "--manifest" in capsys.readouterr().err
    capsys.readouterr()
    assert cli.main(["train", str(feats), "--fusion", "deep", "--manifest", str(data / "manifest.csv"),
                     "-o", str(model), "--epochs", "2"]) == 0
    assert "trained deep fusion on 12 patients (2 epochs) in" in capsys.readouterr().out  # one network
    out = tmp_path / "pred.csv"
    assert cli.main(["predict", str(model), str(data / "manifest.csv"), "-o", str(out)]) == 0
    pred = pd.read_csv(out)
    assert len(pred) == 12 and pred["probability_1"].between(0, 1).all()
    assert set(pred["prediction"]) <= {0, 1}
    from medfuse.learn.modelfile import load_model, read_card

    trained = load_model(model)  # trained with the feature-block tokens; predict extracted them again
    assert trained.config_["table_columns"] == [c for c in frame.columns if c.split("__")[0] in ("ct", "xray", "audio")]
    assert trained.config_["audio"] and trained.config_["blocks"]
    # ... with the training table's extraction settings (kept in the model and its card), not the defaults:
    # the same probabilities as the model on the training table
    assert trained.extraction == extraction.settings() == read_card(model)["card"]["extraction"]
    ids = list(pred["patient_id"].astype(str))
    ref = trained.predict_proba(trained.prepare([cohort[p] for p in ids], features=frame))
    np.testing.assert_allclose(pred[["probability_0", "probability_1"]].to_numpy(), ref, rtol=0, atol=1e-12)
    default = CohortFeatures()
    assert default.settings()["ct"]["window"] != extraction.settings()["ct"]["window"]
    # a model trained on a column that extraction does not make: a usage error naming it, no traceback
    # (an ensemble with early stopping: the line counts networks and each one's epochs, not history_'s rows)
    capsys.readouterr()
    cli._write_features(frame.assign(ct__bogus=1.0), feats, extraction)
    extra.update(ensemble=3, validation_fraction=0.3, patience=1, max_epochs=6)
    assert cli.main(["train", str(feats), "--fusion", "deep", "--manifest", str(data / "manifest.csv"),
                     "-o", str(model)]) == 0
    epochs = load_model(model).epochs_per_network()
    assert len(epochs) == 3 and sum(epochs) == len(load_model(model).history_) and max(epochs) <= 6
    span = f"{min(epochs)}-{max(epochs)}" if min(epochs) < max(epochs) else str(epochs[0])
    assert f"trained deep fusion on 12 patients (3 networks, {span} epochs) in" in capsys.readouterr().out
    assert cli.main(["predict", str(model), str(data / "manifest.csv"), "-o", str(tmp_path / "p2.csv")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "ct__bogus" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="extraction"):
        DeepFusionClassifier(extraction="default").fit(trained.prepare([cohort[p] for p in ids], features=frame))
