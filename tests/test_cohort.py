"""medfuse.data.Cohort: manifests, joins, validation, lazy loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
cv2 = pytest.importorskip("cv2")

from medfuse.data import Cohort, CohortError, PatientRecord
from medfuse.data import io as mio


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A small cohort on disk: npy CTs, PNG X-rays, text reports."""
    for i in range(4):
        d = tmp_path / "data" / f"p{i}"
        d.mkdir(parents=True)
        np.save(d / "ct.npy", np.full((2, 3, 4), i, dtype=np.int16))
        cv2.imwrite(str(d / "xray.png"), np.full((5, 6), 1000 + i, dtype=np.uint16))
        (d / "report.txt").write_text(f"Report  of patient {i}.\n", encoding="utf-8")
    return tmp_path


def manifest(root: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    path = root / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def row(i: int, label="benign", **kw) -> dict:
    r = {"patient_id": f"00{i}", "label": label, "ct": f"data/p{i}/ct.npy", "xray": f"data/p{i}/xray.png", "report": f"data/p{i}/report.txt"}
    r.update(kw)
    return r


def test_from_csv_resolves_relative_paths_and_loads(files, monkeypatch):
    path = manifest(files, [row(0), row(1, "malignant")])
    monkeypatch.chdir("/")  # paths resolve against the manifest, not the cwd
    c = Cohort.from_csv(path)
    assert len(c) == 2 and c.patient_ids == ["000", "001"]  # leading zeros kept
    rec = c["001"]
    assert isinstance(rec, PatientRecord)
    assert rec.label == "malignant"
    assert rec.ct.array.dtype == np.int16 and (rec.ct.array == 1).all()
    assert rec.xray.dtype == np.uint16 and (rec.xray == 1001).all()
    assert rec.report == "Report of patient 1."
    assert [r.patient_id for r in c] == ["000", "001"]
    assert "000" in c and "nobody" not in c
    with pytest.raises(KeyError, match="nobody"):
        c["nobody"]


def test_loading_is_lazy_and_cached(files):
    c = Cohort.from_csv(manifest(files, [row(0), row(1)]), cache_size=1)
    (files / "data/p1/report.txt").write_text("changed")
    a = c["000"]
    assert c["000"] is a  # cached
    assert c["001"].report == "changed"  # read on first access, after construction
    assert c["000"] is not a  # evicted (cache_size=1)
    c.clear_cache()


def test_missing_modalities_allowed_and_summarised(files):
    rows = [row(0), row(1, ct=""), row(2, xray=None, report="Inline text:  no nodule."), row(3, report="")]
    c = Cohort.from_csv(manifest(files, rows))
    s = c.summary()
    assert s.loc["ct", "n_missing"] == 1 and s.loc["ct", "missing_ids"] == ["001"]
    assert s.loc["xray", "missing_ids"] == ["002"]
    assert s.loc["report", "missing_ids"] == ["003"]
    assert s.loc["all", "n_present"] == 1
    assert c["001"].ct is None and c["002"].report == "Inline text: no nodule."
    assert c["003"].report is None
    text = c.describe()
    assert "4 patients" in text and "ct: 3 present, 1 missing (001)" in text
    assert len(c) == 4  # nothing dropped


def test_all_problems_reported_together(files):
    rows = [
        row(0),
        row(0),  # duplicate id
        row(1, ct="data/p1/nothere.npy"),  # missing file
        row(2, xray="data/p2/report.txt"),  # wrong type for an X-ray
        row(3, report="data/p3/absent.txt"),  # looks like a path, missing
        {"patient_id": "005", "label": None, "ct": "", "xray": "", "report": "text"},  # no label
    ]
    with pytest.raises(CohortError) as info:
        Cohort.from_csv(manifest(files, rows))
    problems = info.value.problems
    text = str(info.value)
    assert len(problems) >= 5, problems
    assert "duplicate patient_id '000'" in text
    assert "nothere.npy" in text
    assert "unsupported type '.txt'" in text
    assert "absent.txt" in text
    assert "label missing for 1 patient(s): 005" in text


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (["benign", "Benign", "malignant"], "differ only in case"),
        (["benign ", "benign", "malignant"], "leading/trailing spaces"),
        ([0.5, 1.0, 0.0], "non-integer"),
        ([0, "malignant", 1], "mix types"),
        ([float(i) for i in range(30)], "not a class column"),
    ],
)
def test_label_problems(labels, match):
    df = pd.DataFrame({"patient_id": [f"p{i}" for i in range(len(labels))], "label": labels, "report": ["x"] * len(labels)})
    with pytest.raises(CohortError, match=match):
        Cohort.from_dataframe(df)


def test_join_several_manifests_by_patient(files):
    a = manifest(
        files,
        [
            {"patient_id": "000", "label": 0, "ct": "data/p0/ct.npy"},
            {"patient_id": "001", "label": 1, "ct": "data/p1/ct.npy"},
            {"patient_id": "002", "label": 1, "ct": ""},
        ],
        "a.csv",
    )
    sub = files / "sub"
    sub.mkdir()
    b = manifest(sub, [{"patient_id": "001", "xray": "../data/p1/xray.png"}, {"patient_id": "002", "report": "inline report"}], "b.csv")
    c = Cohort.from_csv([a, b])
    assert c.patient_ids == ["000", "001", "002"]
    assert c["001"].ct is not None and c["001"].xray is not None  # joined by id, not position
    assert c["000"].xray is None and c["002"].ct is None
    assert c["002"].label == 1
    # A patient present only in an unlabelled manifest is reported, not dropped.
    d = manifest(sub, [{"patient_id": "003", "report": "inline"}], "d.csv")
    with pytest.raises(CohortError, match="label missing for 1 patient.*003"):
        Cohort.from_csv([a, d])
    assert c.summary().loc["xray", "missing_ids"] == ["000", "002"]


def test_join_conflicts_reported(files):
    a = manifest(files, [{"patient_id": "000", "label": 0}, {"patient_id": "001", "label": 1}], "a.csv")
    b = manifest(files, [{"patient_id": "000", "label": 1}, {"patient_id": "001", "label": 0}], "b.csv")
    with pytest.raises(CohortError) as info:
        Cohort.from_csv([a, b])
    assert len(info.value.problems) == 2 and "label differs" in info.value.problems[0]


def test_validate_deep_opens_every_file(files):
    (files / "data/p1/ct.npy").write_bytes(b"garbage")
    (files / "data/p2/report.txt").write_bytes(b"\xff\xfe\x00bad")
    c = Cohort.from_csv(manifest(files, [row(0), row(1), row(2)]))  # shallow checks pass
    c.validate(deep=False)
    with pytest.raises(CohortError) as info:
        c.validate(deep=True)
    assert len(info.value.problems) == 2
    assert "patient 001: ct unreadable" in str(info.value)
    assert "patient 002: report unreadable" in str(info.value)


def test_parquet_and_dataframe_with_in_memory_objects(files):
    pytest.importorskip("pyarrow")
    path = files / "m.parquet"
    pd.DataFrame([row(0), row(1)]).to_parquet(path)
    assert Cohort.from_parquet(path)["001"].xray is not None
    vol = mio.Volume(np.zeros((2, 2, 2), np.int16), (1.0, 1.0, 1.0))
    df = pd.DataFrame({"patient_id": ["a", "b"], "label": [0, 1], "ct": [vol, None], "xray": [np.ones((3, 3)), None]})
    c = Cohort.from_dataframe(df)
    assert c["a"].ct is vol and c["b"].ct is None
    assert list(c.labels) == [0, 1]
    assert "ct" in c.frame.columns


def test_constructor_errors(files):
    with pytest.raises(CohortError, match="patient_id"):
        Cohort.from_dataframe(pd.DataFrame({"id": [1], "label": [0]}))
    with pytest.raises(mio.MedfuseFileNotFoundError, match="manifest not found"):
        Cohort.from_csv(files / "none.csv")
    with pytest.raises(TypeError, match="DataFrame"):
        Cohort([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_size"):
        Cohort(pd.DataFrame({"patient_id": ["a"]}), cache_size=-1)
    with pytest.raises(ValueError, match="modality"):
        Cohort.from_dataframe(pd.DataFrame({"patient_id": ["a"], "label": [0]})).has("mri")
