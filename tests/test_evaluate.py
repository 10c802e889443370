"""medfuse.learn.evaluate: cross-validation of modalities and fusions, MultimodalModel, HTML report."""

from __future__ import annotations

import base64
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfuse.data import synthetic_cohort
from medfuse.extract import CohortFeatures, extract_cohort
from medfuse.features import ImageFeatureExtractor
from medfuse.learn.evaluate import (
    Evaluation,
    MultimodalModel,
    cross_validate,
    example_audio,
    example_images,
    write_report,
)


@pytest.fixture(scope="module")
def cohort():  # type: ignore[no-untyped-def]
    return synthetic_cohort(30, seed=5, missing=0.1, shape=(24, 64, 64))


@pytest.fixture(scope="module")
def table(cohort) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    cheap = {"groups": ("first_order", "histogram", "glcm")}
    cf = CohortFeatures(ct=ImageFeatureExtractor(window=(-600.0, 1500.0), **cheap), xray=ImageFeatureExtractor(**cheap))
    res = extract_cohort(cohort, cf, workers=2)
    assert not res.failures
    return res.features


@pytest.fixture(scope="module")
def evaluation(table: pd.DataFrame) -> Evaluation:
    return cross_validate(table, folds=3, seed=1)


def test_cross_validate_table(evaluation: Evaluation, table: pd.DataFrame) -> None:
    t = evaluation.table
    assert list(t["model"]) == ["ct", "xray", "report", "audio", "early fusion", "late fusion", "attention fusion"]
    assert list(t["kind"]) == ["single"] * 4 + ["fusion"] * 3
    # the summary is the mean and the sample std of the per-fold values
    f = evaluation.folds
    auc = f[(f["model"] == "late fusion") & (f["metric"] == "auc")]["value"]
    assert len(auc) == 3
    row = t[t["model"] == "late fusion"].iloc[0]
    assert row["auc_mean"] == pytest.approx(auc.mean()) and row["auc_std"] == pytest.approx(auc.std(ddof=1))
    assert ((f["value"] >= 0) & (f["value"] <= 1)).all()
    # every patient gets one out-of-fold probability per model
    assert evaluation.oof.drop(columns=["patient_id", "label"]).notna().all(axis=None)
    assert len(evaluation.oof) == len(table)
    fpr, tpr = evaluation.roc["ct"]
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)


def test_cross_validate_deterministic(table: pd.DataFrame, evaluation: Evaluation) -> None:
    again = cross_validate(table, folds=3, seed=1, fusions=("early",))
    a = evaluation.table.set_index("model").loc["early fusion", "auc_mean"]
    assert again.table.set_index("model").loc["early fusion", "auc_mean"] == a


def test_report_html(evaluation: Evaluation, cohort, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ex = example_images(cohort)
    assert len(ex) == 2 and ex[0][1].ndim == 2 and ex[1][1].ndim == 2
    au = example_audio(cohort)
    assert au is not None and au[1].ndim == 1 and au[2] == 4000
    path = write_report(evaluation, tmp_path / "out", examples=ex, timings={"extract": 1.5}, audio_example=au)
    html = path.read_text(encoding="utf-8")
    assert "Lung sounds: spectrogram and detected events" in html
    for _i, r in evaluation.table.iterrows():
        assert f"<td>{r['model']}</td>" in html
        assert f"{r['auc_mean']:.3f} ± {r['auc_std']:.3f}" in html
        assert f"{r['f1_mean']:.3f} ± {r['f1_std']:.3f}" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3  # ROC curves, examples with edges, spectrogram
    for b in images:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "extract" in html and "1.5 s" in html


def test_multimodal_model_missing_modalities_and_pickle(table: pd.DataFrame) -> None:
    m = MultimodalModel("late", "logreg").fit(table)
    assert set(m.blocks_) == {"ct", "xray", "report", "audio"}
    test = table.copy()
    test.loc[:, [c for c in test.columns if c.startswith("ct__")]] = np.nan  # nobody has a CT
    test["report"] = None
    p = m.predict_proba(test)
    assert p.shape == (len(table), 2) and np.isfinite(p).all()
    np.testing.assert_allclose(pickle.loads(pickle.dumps(m)).predict_proba(table), m.predict_proba(table))
    single = MultimodalModel("single", modalities=["xray"]).fit(table)
    assert set(single.blocks_) == {"xray"}


def test_refusals(table: pd.DataFrame, evaluation: Evaluation, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="features"):
        cross_validate(table.to_numpy())
    with pytest.raises(ValueError, match="label"):
        cross_validate(table.drop(columns="label"))
    with pytest.raises(ValueError, match="2 classes"):
        cross_validate(table.assign(label=1))
    with pytest.raises(ValueError, match="folds"):
        cross_validate(table, folds=1)
    with pytest.raises(ValueError, match="smallest class"):
        cross_validate(table, folds=len(table))
    with pytest.raises(ValueError, match="fusions"):
        cross_validate(table, fusions=("middle",))
    with pytest.raises(ValueError, match="missing values"):
        cross_validate(table.assign(label=[None] + list(table["label"][1:])))
    with pytest.raises(ValueError, match="no feature column"):
        cross_validate(table[["patient_id", "label"]])
    with pytest.raises(ValueError, match="fusion"):
        MultimodalModel("middle").fit(table)
    with pytest.raises(ValueError, match="exactly one modality"):
        MultimodalModel("single").fit(table)
    with pytest.raises(ValueError, match="modalities"):
        MultimodalModel(modalities=["pet"]).fit(table)
    with pytest.raises(TypeError, match="results"):
        write_report(evaluation.table, tmp_path)  # type: ignore[arg-type]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out_dir"):
        write_report(evaluation, tmp_path / "file")
    with pytest.raises(ValueError, match="examples"):
        write_report(evaluation, tmp_path / "r", examples=[("3d", np.zeros((2, 4, 4)), None)])


def test_roc_legend_gives_the_pooled_auc_of_each_curve(evaluation: Evaluation) -> None:
    from sklearn.metrics import roc_auc_score

    from medfuse.learn.evaluate import _roc_figure

    oof = evaluation.oof
    y = (oof["label"] == evaluation.positive_label).astype(int)
    pooled = {name: roc_auc_score(y, oof[name]) for name in evaluation.roc}
    assert evaluation.pooled_auc() == pytest.approx(pooled)
    ax = _roc_figure(evaluation).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"{name} (pooled AUC {auc:.3f})" for name, auc in pooled.items()]
    assert "pooled out-of-fold" in ax.get_title()
    # the legend is not the table's mean over folds (they differ on this data)
    means = evaluation.table.set_index("model")["auc_mean"]
    assert any(f"{pooled[n]:.3f}" != f"{means[n]:.3f}" for n in pooled)


def test_report_stage_times_include_the_html_stage(evaluation: Evaluation, tmp_path: Path) -> None:
    html = write_report(evaluation, tmp_path, timings={"extract": 1.5}).read_text(encoding="utf-8")
    stages = re.findall(r"<tr><td>([^<]+)</td><td>([0-9.]+) s</td></tr>", html)
    assert [s for s, _t in stages] == ["extract", "HTML report"]
    given = write_report(evaluation, tmp_path, timings={"extract": 1.5, "HTML report": 9.0}).read_text(encoding="utf-8")
    assert "<tr><td>HTML report</td><td>9.0 s</td></tr>" in given
