"""Unknown manifest columns are reported (a misspelled modality must not vanish silently)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from medfuse.cli import main
from medfuse.data import Cohort, ManifestWarning, synthetic_cohort
from medfuse.data.cohort import MODALITIES, suggest_column


@pytest.mark.parametrize(
    ("column", "meant"),
    [("xray_path", "xray"), ("X-ray", "xray"), ("CT", "ct"), ("ct_folder", "ct"), ("reports", "report"),
     ("Patient ID", "patient_id"), ("labels", "label"), ("age", None), ("sex", None)],
)
def test_suggestion(column, meant):
    assert suggest_column(column) == meant


def test_every_modality_is_known_and_suggested_for_itself():
    for m in MODALITIES:  # the constant, so a new modality column is covered as soon as it is added
        assert suggest_column(m.upper()) == m
        assert suggest_column(f"{m}_path") == m


def test_misspelled_xray_column_warns_with_suggestion_and_known_names():
    frame = pd.DataFrame({"patient_id": ["a", "b"], "label": [0, 1], "xray_path": ["x.png", "y.png"], "report": ["r", "s"]})
    with pytest.warns(ManifestWarning) as record:
        cohort = Cohort.from_dataframe(frame)
    (w,) = record
    text = str(w.message)
    assert "'xray_path' (did you mean 'xray'?)" in text
    assert "known columns: " + ", ".join(["patient_id", "label", *MODALITIES]) in text
    assert not cohort.has("xray").any()  # what the warning is about: no X-ray for anyone


def test_extra_column_named_without_a_wrong_hint():
    frame = pd.DataFrame({"patient_id": ["a"], "label": [0], "report": ["r"], "report_text": ["t"], "age": [50]})
    with pytest.warns(ManifestWarning, match=r"'report_text', 'age' not used") as record:
        Cohort.from_dataframe(frame)
    assert "did you mean" not in str(record[0].message)  # 'report' is there already


def test_known_columns_do_not_warn():
    frame = pd.DataFrame({"patient_id": ["a"], "label": [0], "report": ["r"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Cohort.from_dataframe(frame)


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    synthetic_cohort(4, seed=1, missing=0.0, out_dir=out, shape=(16, 48, 48))
    return out


def test_extract_reports_unknown_column_and_the_modalities_found(small_cohort: Path, tmp_path: Path, capsys) -> None:
    man = pd.read_csv(small_cohort / "manifest.csv", dtype={"patient_id": str}, keep_default_na=False)
    man = man.rename(columns={"xray": "X-ray"}).drop(columns=["audio"], errors="ignore")
    for m in ("ct", "X-ray", "report"):
        man[m] = [str(small_cohort / p) for p in man[m]]
    man.to_csv(tmp_path / "m.csv", index=False)
    code = main(["extract", str(tmp_path / "m.csv"), "-o", str(tmp_path / "f.parquet"), "--workers", "1", "--no-progress"])
    assert code == 0
    err = capsys.readouterr().err
    assert "medfuse: warning: " in err and "'X-ray' (did you mean 'xray'?)" in err
    assert "modalities: ct (4 of 4 patients), report (4 of 4 patients); no xray, audio column" in err
