"""Report labeler (medfuse.annotate): hand-labelled sentences in English and
Chinese, the synthetic cohort's truth, dictionaries, weak labels, the CLI,
and NIfTI masks that land on the CT's voxels in world coordinates."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfuse.annotate import (
    DEFAULT_FINDINGS,
    DictionaryError,
    ReportLabeler,
    keyword_labels,
    label_reports,
    load_dictionary,
    score_assertions,
    score_labels,
    stated_labels,
    synthetic_truth,
    write_masks,
)
from medfuse.cli import main
from medfuse.data import CohortError, Volume, read_ct, synthetic, synthetic_cohort
from medfuse.data.io import write_nifti

CASES = Path(__file__).parent / "data" / "report_sentences.tsv"


def _cases() -> list[tuple[str, str, dict[str, float]]]:
    out = []
    for line in CASES.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        lang, text, labels = line.split("\t")
        want = {k: float(v) for k, v in (item.split("=") for item in labels.split())}
        out.append((lang, text, want))
    return out


@pytest.mark.parametrize(("lang", "text", "want"), _cases(), ids=lambda v: v if isinstance(v, str) and len(v) < 3 else None)
def test_hand_labelled_sentences(lang, text, want):
    row = label_reports([text], lang=lang).iloc[0]
    for finding, value in want.items():
        got = row[finding]
        assert (math.isnan(got) and math.isnan(value)) or got == value, (finding, got, value)
    others = [f for f in DEFAULT_FINDINGS if f not in want and f != "no_finding"]
    assert row[others].isna().all(), row[others].dropna().to_dict()


def test_keyword_baseline_ignores_negation_and_hedges():
    texts = ["No pleural effusion.", "Possible pneumonia.", "右侧胸腔积液。"]
    kw = keyword_labels(texts, ["pleural_effusion", "pneumonia"])
    assert kw["pleural_effusion"].tolist()[::2] == [1.0, 1.0] and kw["pneumonia"][1] == 1.0
    lab = label_reports(texts, ["pleural_effusion", "pneumonia"])
    assert lab["pleural_effusion"].tolist()[::2] == [0.0, 1.0] and lab["pneumonia"][1] == -1.0


def test_findings_order_names_and_index():
    s = pd.Series(["Small left pleural effusion.", "No pneumothorax."], index=["a", "b"])
    df = label_reports(s, ["Pleural Effusion", "pneumothorax", "no-finding"])
    assert list(df.columns) == ["pleural_effusion", "pneumothorax", "no_finding"]
    assert list(df.index) == ["a", "b"]
    assert df.loc["a"].tolist()[0] == 1.0 and math.isnan(df.loc["a", "no_finding"])
    assert math.isnan(df.loc["b", "pleural_effusion"]) and df.loc["b"].tolist()[1:] == [0.0, 1.0]
    assert list(label_reports(["x"]).columns) == list(DEFAULT_FINDINGS)


def test_no_finding_follows_chexpert():
    df = label_reports(["Chest tube in place.", "Possible atelectasis.", "Nothing to report here."])
    assert df["no_finding"].tolist()[0] == 1.0 and df["support_devices"][0] == 1.0
    assert math.isnan(df["no_finding"][1])  # an uncertain finding is not "no finding"
    assert df["no_finding"][2] == 1.0


@pytest.mark.parametrize(
    ("texts", "exc", "match"),
    [
        (["fine", ""], ValueError, "report 1 is empty"),
        (["fine", "   \n"], ValueError, "report 1 is empty"),
        (["fine", None], TypeError, "report 1 is NoneType"),
        ([3.5], TypeError, "report 0 is float"),
        ([b"No effusion."], TypeError, "report 0 is bytes; decode"),
        ("No effusion.", TypeError, "not a single string"),
        (42, TypeError, "iterable of report strings"),
    ],
)
def test_bad_reports_are_named(texts, exc, match):
    with pytest.raises(exc, match=match):
        label_reports(texts)


def test_unknown_finding_and_bad_lang():
    with pytest.raises(ValueError, match="unknown finding 'pneumoperitoneum'.*known: no_finding"):
        label_reports(["x"], ["nodule", "pneumoperitoneum"])
    with pytest.raises(ValueError, match="finding name '1abc'"):
        label_reports(["x"], ["1abc"])
    with pytest.raises(ValueError, match="findings is empty"):
        label_reports(["x"], [])
    with pytest.raises(ValueError, match="lang must be"):
        label_reports(["x"], lang="fr")


def test_user_dictionary_file_and_dict(tmp_path):
    path = tmp_path / "extra.txt"
    path.write_text("# mine\npneumoperitoneum: pneumoperitoneum; free air; free intraperitoneal air; 气腹\nnodule: opacity nodulaire\n",
                    encoding="utf-8")
    texts = ["Free air under the diaphragm.", "No pneumoperitoneum.", "未见气腹。", "Opacity nodulaire."]
    df = label_reports(texts, ["pneumoperitoneum", "nodule"], dictionaries=[path])
    assert df["pneumoperitoneum"].tolist()[:3] == [1.0, 0.0, 0.0]
    assert df["nodule"][3] == 1.0
    df2 = label_reports(texts[:2], dictionaries={"pneumoperitoneum": ["free air", "pneumoperitoneum"]})
    assert df2["pneumoperitoneum"].tolist() == [1.0, 0.0] and "pneumoperitoneum" in df2.columns
    assert math.isnan(df2["no_finding"][0])  # a user finding counts for no_finding too
    # the shipped labeler is unchanged
    with pytest.raises(ValueError, match="unknown finding"):
        label_reports(texts, ["pneumoperitoneum"])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("nodule nodule; mass\n", r"extra\.txt, line 1: expected '<name>: <phrase>"),
        ("# c\n\nnodule:\n", r"line 3: entry 'nodule' lists no phrase"),
        ("nodule: a;; b\n", r"line 1: entry 'nodule' has an empty phrase \(position 2"),
        ("9lives: cat\n", r"line 1: entry name '9lives'"),
    ],
)
def test_malformed_dictionary_line_is_named(tmp_path, content, match):
    path = tmp_path / "extra.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DictionaryError, match=match):
        label_reports(["x"], dictionaries=[path])


def test_bad_dictionaries():
    with pytest.raises(DictionaryError, match="entry 'nodule': phrases must be non-empty str; got 3"):
        load_dictionary({"nodule": ["a", 3]})
    with pytest.raises(DictionaryError, match="no_finding is derived"):
        ReportLabeler([{"no_finding": ["normal"]}])
    with pytest.raises(DictionaryError, match="only exclusion"):
        ReportLabeler([{"thing": ["!other thing"]}], replace=True)
    with pytest.raises(DictionaryError, match="unknown cue kind"):
        ReportLabeler(cues=[{"maybe": ["perhaps"]}])
    with pytest.raises(FileNotFoundError, match="dictionary file not found"):
        load_dictionary("/nonexistent/dict.txt")
    with pytest.raises(TypeError, match="path, a dict, or a list"):
        ReportLabeler(3)


def test_user_cues_extend_the_rules():
    assert label_reports(["Pneumonia is improbable."], ["pneumonia"])["pneumonia"][0] == 1.0
    lab = ReportLabeler(cues=[{"negation_post": ["is improbable"]}])
    assert label_reports(["Pneumonia is improbable."], ["pneumonia"], dictionaries=lab)["pneumonia"][0] == 0.0


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_synthetic_cohort_truth(lang):
    cohort = synthetic_cohort(80, seed=11, lang=lang, missing=0.0, shape=(8, 16, 16))
    texts = pd.Series([r.report for r in cohort], index=cohort.patient_ids)
    truth = synthetic_truth(cohort.truth)
    scores = score_labels(label_reports(texts), truth)
    assert scores.loc["nodule", "f1"] >= 0.97
    assert scores.loc[["pleural_effusion", "pneumothorax"], "fp"].sum() == 0
    base = score_labels(keyword_labels(texts), truth)
    assert base.loc[["pleural_effusion", "pneumothorax"], "fp"].sum() > 0  # the negated mentions


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_labeler_reproduces_what_disease_reports_state(lang):
    # The generator records, sentence by sentence, what each report states (present / negated / hedged / not
    # mentioned); the labeler reads it back from the text alone. The latent truth differs on purpose.
    cases = synthetic.draw_disease_cases(600, 23, lang)
    written = [synthetic.disease_report(c) for c in cases]
    texts = pd.Series([t for t, _ in written])
    findings = list(synthetic.STATED_FINDINGS)
    stated = pd.DataFrame([{f: s.get(f, np.nan) for f in findings} for _, s in written])
    assert set(np.unique(stated.to_numpy()[~np.isnan(stated.to_numpy())])) == {-1.0, 0.0, 1.0}
    scores = score_assertions(label_reports(texts, findings, lang=lang), stated)
    for value in ("present", "absent", "uncertain"):
        enough = scores[value] >= 20
        assert enough.sum() >= 3, value
        assert (scores.loc[enough, f"f1_{value}"] >= 0.95).all(), scores.loc[enough, f"f1_{value}"]
    assert (scores["agreement"] >= 0.97).all(), scores["agreement"]
    base = score_assertions(keyword_labels(texts, findings), stated)
    often = scores["present"] >= 20
    assert (scores.loc[often, "f1_present"] >= base.loc[often, "f1_present"]).all()
    assert (base.loc[often, "f1_present"] < 0.9).sum() >= 4  # the negated and hedged mentions fool it
    # the reports are not the latent truth: some latent findings are never stated, some stated ones are not there
    latent = np.array([c.n_cavities > 0 for c in cases])
    said = (stated["cavity"] == 1).to_numpy()
    assert (latent & ~said).sum() > 0 and (said & ~latent).sum() + ((stated["cavity"] == -1) & ~latent).sum() > 0


def test_stated_labels_come_with_the_disease_cohort():
    cohort = synthetic_cohort(10, task="disease", seed=3, lang="mixed", missing=0.0, shape=(8, 16, 16))
    stated = stated_labels(cohort.truth)
    assert list(stated.columns) == list(synthetic.STATED_FINDINGS)
    cases = synthetic.draw_disease_cases(10, 3, "mixed")
    for case, (pid, row) in zip(cases, stated.iterrows()):
        text, want = synthetic.disease_report(case)
        assert cohort[pid].report == text
        assert {k: v for k, v in row.items() if not np.isnan(v)} == want
    with pytest.raises(ValueError, match="stated_"):
        stated_labels(synthetic_cohort(3, seed=1, shape=(8, 16, 16)).truth)


def test_score_assertions_against_hand_counts():
    pred = pd.DataFrame({"a": [1.0, 1.0, 0.0, -1.0, np.nan, np.nan]})
    stated = pd.DataFrame({"a": [1.0, 0.0, 0.0, 1.0, np.nan, -1.0]})
    s = score_assertions(pred, stated).loc["a"]
    assert (s["n"], s["mentioned"], s["present"], s["absent"], s["uncertain"]) == (6, 5, 2, 2, 1)
    assert s["f1_present"] == pytest.approx(2 * 1 / (2 + 2))
    assert s["f1_absent"] == pytest.approx(2 * 1 / (1 + 2))
    assert s["f1_uncertain"] == 0.0
    assert s["agreement"] == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="same index"):
        score_assertions(pred, stated.iloc[::-1])
    with pytest.raises(ValueError, match="expected 1, 0, -1 or NaN"):
        score_assertions(pred, pd.DataFrame({"a": [2.0] * 6}))
    with pytest.raises(ValueError, match="not columns of both predicted and stated"):
        score_assertions(pred, stated, findings=["b"])


def test_score_labels_against_hand_counts():
    pred = pd.DataFrame({"a": [1.0, 1.0, 0.0, -1.0, np.nan]})
    truth = pd.DataFrame({"a": [1, 0, 1, 1, np.nan]})
    s = score_labels(pred, truth).loc["a"]
    assert (s["n"], s["tp"], s["fp"], s["fn"]) == (4, 1, 1, 2)
    assert s["precision"] == 0.5 and s["recall"] == pytest.approx(1 / 3) and s["f1"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="same index"):
        score_labels(pred, truth.iloc[::-1])
    with pytest.raises(ValueError, match=r"\['b'\] are not columns of both predicted and truth"):
        score_labels(pred, truth, findings=["b"])


# ------------------------------------------------------------------ weak labels


@pytest.fixture(scope="module")
def small_cohort_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("annot")
    synthetic_cohort(6, seed=5, lang="mixed", missing=0.2, out_dir=out, shape=(24, 64, 64))
    return out


def test_with_report_labels_matches_label_reports():
    cohort = synthetic_cohort(12, seed=2, lang="mixed", missing=0.3, shape=(8, 16, 16))
    out = cohort.with_report_labels(["nodule", "pleural_effusion", "emphysema"])
    frame = out.frame.set_index("patient_id")
    has = cohort.has("report")
    texts = pd.Series([cohort[p].report for p in has.index[has]], index=list(has.index[has]))
    want = label_reports(texts, ["nodule", "pleural_effusion", "emphysema"])
    pd.testing.assert_frame_equal(frame.loc[want.index, want.columns], want, check_names=False)
    assert frame.loc[~has.to_numpy(), ["nodule"]].isna().all().all()
    assert "nodule" not in cohort.frame.columns  # the original is unchanged
    with pytest.raises(ValueError, match="already exist"):
        out.with_report_labels(["nodule"])
    assert "report_nodule" in out.with_report_labels(["nodule"], prefix="report_").frame.columns


def test_with_report_labels_uncertainty_and_label():
    frame = pd.DataFrame({
        "patient_id": ["a", "b", "c", "d"],
        "report": ["Possible pneumonia.", "No pneumonia.", "Right lower lobe pneumonia.", None],
    })
    from medfuse.data import Cohort

    cohort = Cohort.from_dataframe(frame)
    assert cohort.with_report_labels(["pneumonia"]).frame["pneumonia"].tolist()[:3] == [-1.0, 0.0, 1.0]
    ones = cohort.with_report_labels(["pneumonia"], uncertain="ones", label="pneumonia")
    assert ones.frame["label"].tolist() == [1, 0, 1] and ones.unlabelled == ["d"]
    zeros = cohort.with_report_labels(["pneumonia"], uncertain="zeros", label="Pneumonia")
    assert zeros.frame["label"].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="label= needs uncertain"):
        cohort.with_report_labels(["pneumonia"], label="pneumonia")
    with pytest.raises(ValueError, match="must be one of the findings"):
        cohort.with_report_labels(["pneumonia"], uncertain="ones", label="nodule")
    with pytest.raises(ValueError, match="uncertain must be"):
        cohort.with_report_labels(uncertain="maybe")


def test_with_report_labels_lists_unreadable_reports(tmp_path, small_cohort_dir):
    from medfuse.data import Cohort

    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00\x01binary")
    (tmp_path / "empty.txt").write_bytes(b"  \n")
    (tmp_path / "ok.txt").write_text("No effusion.", encoding="utf-8")
    frame = pd.DataFrame({"patient_id": ["x", "y", "z"], "report": ["bad.txt", "empty.txt", "ok.txt"]})
    cohort = Cohort.from_dataframe(frame, base_dir=tmp_path)
    with pytest.raises(CohortError) as err:
        cohort.with_report_labels()
    msg = str(err.value)
    assert "patient x: report unreadable" in msg and "patient y: report is empty" in msg and "patient z" not in msg


# ------------------------------------------------------------------------ CLI


def test_cli_annotate_lists_failures_and_writes_atomically(tmp_path, small_cohort_dir, capsys):
    import shutil

    d = tmp_path / "c"
    shutil.copytree(small_cohort_dir, d)
    manifest = pd.read_csv(d / "manifest.csv")
    with_report = manifest["report"].dropna().tolist()
    broken = d / with_report[0]
    broken.write_bytes(b"\x00\x01\x02 not text")
    out = tmp_path / "labels.csv"
    rc = main(["annotate", str(d / "manifest.csv"), "-o", str(out), "--findings", "nodule,pleural_effusion",
               "--no-progress"])
    assert rc == 1
    printed = capsys.readouterr().out
    bad_pid = broken.parent.name
    assert f"failed: {bad_pid}: report:" in printed and "NUL bytes" in printed
    got = pd.read_csv(out, dtype={"patient_id": str})
    assert list(got.columns) == ["patient_id", "nodule", "pleural_effusion", "error"]
    assert len(got) == len(manifest)
    row = got.set_index("patient_id").loc[bad_pid]
    assert "NUL bytes" in row["error"] and math.isnan(row["nodule"])
    ok = got[got["error"].isna()]
    assert (ok["nodule"] == 1).all() and len(ok) == len(with_report) - 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".labels.csv")]  # no temp file left
    broken.write_text("No pleural effusion. Nodule in the right upper lobe.", encoding="utf-8")
    assert main(["annotate", str(d / "manifest.csv"), "-o", str(out), "--no-progress"]) == 0
    assert list(pd.read_csv(out).columns) == ["patient_id", *DEFAULT_FINDINGS, "error"]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--findings", "nodule,bogus"], "unknown finding 'bogus'"),
        ([], "nothing to do"),
        (["-o", "labels.parquet"], "must end in .csv"),
        (["-o", "labels.csv", "--dictionary", "nope.txt"], "dictionary file not found"),
        (["--masks", "no_such_dir"], "not an existing folder"),
    ],
)
def test_cli_annotate_usage_errors(tmp_path, small_cohort_dir, capsys, monkeypatch, extra, match):
    monkeypatch.chdir(tmp_path)
    if extra[:1] == ["--findings"]:
        extra = [*extra, "-o", "labels.csv"]
    assert main(["annotate", str(small_cohort_dir / "manifest.csv"), *extra]) == 2
    assert match in capsys.readouterr().err


# ---------------------------------------------------------------------- masks


def _write_series(folder: Path, vol: np.ndarray, origin, row_dir, col_dir, ps, dz, *, reverse_files=False):
    """A CT series written from scratch: slice k at origin + k * dz * (row x col)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    normal = np.cross(row_dir, col_dir)
    series = generate_uid()
    for k in range(vol.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series
        ds.Modality = "CT"
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * dz * normal]
        ds.PixelSpacing = [float(ps[0]), float(ps[1])]
        ds.SliceThickness = float(dz)
        ds.Rows, ds.Columns = vol.shape[1:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = vol[k].astype(np.int16).tobytes()
        name = vol.shape[0] - k if reverse_files else k
        ds.save_as(folder / f"s{name:03d}.dcm", enforce_file_format=True)


def _dicom_world_ras(folder: Path, value: int) -> set[tuple[float, float, float]]:
    """RAS mm of every pixel equal to value, straight from the DICOM headers."""
    import pydicom

    out = set()
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        ps = [float(v) for v in ds.PixelSpacing]
        for r, c in np.argwhere(ds.pixel_array == value):
            lps = ipp + r * ps[0] * iop[3:] + c * ps[1] * iop[:3]
            out.add(tuple(np.round([-lps[0], -lps[1], lps[2]], 3)))
    return out


@pytest.mark.parametrize(
    ("row_dir", "col_dir"),
    [
        ((1, 0, 0), (0, 1, 0)),  # axial
        ((-1, 0, 0), (0, -1, 0)),  # axial, rotated 180 degrees
        ((0, 1, 0), (0, 0, -1)),  # sagittal
        ((math.cos(0.3), math.sin(0.3), 0), (-math.sin(0.3), math.cos(0.3), 0)),  # oblique axial
    ],
)
def test_nifti_mask_lands_on_the_dicom_voxels(tmp_path, row_dir, col_dir):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(4)
    vol = rng.integers(-900, -100, (5, 7, 6)).astype(np.int16)
    marks = [(0, 1, 2), (3, 6, 5), (4, 0, 0), (2, 3, 1)]
    for z, y, x in marks:
        vol[z, y, x] = 500
    folder = tmp_path / "ct"
    _write_series(folder, vol, (-12.5, 30.0, 101.0), np.array(row_dir), np.array(col_dir), (0.8, 0.7), 2.5,
                  reverse_files=True)
    ct = read_ct(folder)
    path = write_nifti(ct.array == 500, ct, tmp_path / "mask.nii.gz")
    img = nib.load(path)
    ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    world = {tuple(np.round((img.affine @ np.r_[v, 1.0])[:3], 3)) for v in ijk}
    assert len(world) == len(marks)
    assert world == _dicom_world_ras(folder, 500)
    back = read_ct(path)  # medfuse reads it back onto the same grid (a series in medfuse's own axes)
    if row_dir == (1, 0, 0) and col_dir == (0, 1, 0):
        np.testing.assert_array_equal(back.array, (ct.array == 500).astype(np.int16))
        np.testing.assert_allclose(back.affine, ct.affine, atol=1e-4)


def test_volume_affine_default_and_checks():
    v = Volume(np.zeros((2, 3, 4), np.int16), (2.0, 0.5, 0.25), (1.0, 2.0, 3.0))
    np.testing.assert_allclose(v.affine @ [1, 2, 3, 1], [1.0 + 0.75, 2.0 + 1.0, 3.0 - 2.0, 1.0])
    with pytest.raises(ValueError, match="affine must be a finite 4 x 4"):
        Volume(np.zeros((2, 2, 2), np.int16), (1.0, 1.0, 1.0), affine=np.eye(3))
    with pytest.raises(ValueError, match="must match the reference volume"):
        write_nifti(np.zeros((3, 3, 3), bool), v, "/tmp/x.nii")
    with pytest.raises(ValueError, match=r"must end in \.nii"):
        write_nifti(np.zeros(v.shape, bool), v, "/tmp/x.png")
    with pytest.raises(TypeError, match="reference must be a medfuse Volume"):
        write_nifti(np.zeros(v.shape, bool), np.zeros(v.shape), "/tmp/x.nii")


def test_write_masks_nodule_where_the_truth_is(tmp_path):
    nib = pytest.importorskip("nibabel")
    out = tmp_path / "c"
    cohort = synthetic_cohort(1, seed=7, missing=0.0, out_dir=out, shape=(32, 96, 96))
    t = cohort.truth.iloc[0]
    masks = tmp_path / "m"
    masks.mkdir()
    paths = write_masks(out / "P000" / "ct", masks)
    assert set(paths) == {"lungs", "nodules"} and paths["lungs"].name == "P000_lungs.nii.gz"
    ct = read_ct(out / "P000" / "ct")
    # Nodule centre in world (RAS) from the truth voxel and the series geometry (axial, origin 0).
    dz, dy, dx = ct.spacing
    centre = np.array([-t["nodule_x"] * dx, -t["nodule_y"] * dy, -t["nodule_z"] * dz])
    img = nib.load(paths["nodules"])
    data = np.asarray(img.dataobj)
    hit = [k for k in np.unique(data) if k > 0 and np.linalg.norm(
        (img.affine @ np.r_[np.argwhere(data == k).mean(axis=0), 1.0])[:3] - centre) < t["nodule_radius_mm"]]
    assert hit, "no nodule mask at the true nodule"
    lungs = nib.load(paths["lungs"])
    assert set(np.unique(np.asarray(lungs.dataobj))) == {0, 1, 2}
    with pytest.raises(ValueError, match="max_nodules must be a positive integer"):
        write_masks(ct, masks, max_nodules=0)
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        write_masks(ct, tmp_path / "nope")


def test_cli_annotate_masks(tmp_path, small_cohort_dir):
    masks = tmp_path / "m"
    masks.mkdir()
    assert main(["annotate", str(small_cohort_dir / "manifest.csv"), "--masks", str(masks), "--no-progress"]) == 0
    manifest = pd.read_csv(small_cohort_dir / "manifest.csv")
    want = {f"{p}_{k}.nii.gz" for p, c in zip(manifest["patient_id"], manifest["ct"]) if isinstance(c, str)
            for k in ("lungs", "nodules")}
    assert {p.name for p in masks.iterdir()} == want


def test_lang_selects_the_clause_rules():
    text = ["No effusion, nodule in the right lower lobe."]
    assert label_reports(text, ["nodule"], lang="en")["nodule"][0] == 0.0  # English: "no A, B" negates both
    assert label_reports(text, ["nodule"], lang="zh")["nodule"][0] == 1.0  # Chinese rules: the comma ends it
    zh = ["右肺下叶结节，未见胸腔积液。"]
    auto = label_reports(zh, ["nodule", "pleural_effusion"])
    assert auto.iloc[0].tolist() == [1.0, 0.0]
    assert label_reports(zh, ["nodule", "pleural_effusion"], lang="zh").iloc[0].tolist() == [1.0, 0.0]


# ---- real-report truth: Open-I / IU MeSH tags (issue 23, item 2) ---------------------------------------------------

def test_mesh_truth_maps_headings_and_treats_untagged_as_absent():
    from medfuse.annotate import mesh_truth

    frame = pd.DataFrame({"mesh_major": [
        "Cardiomegaly/borderline; Opacity/lung/base/left/mild",
        "normal",
        "Pulmonary Atelectasis/base/left; Fractures, Bone/ribs/left",
        "Calcified Granuloma/lung/upper lobe/right; Hernia, Hiatal",
        np.nan,
    ]})
    t = mesh_truth(frame)
    assert t.loc[0, "cardiomegaly"] == 1 and t.loc[0, "lung_opacity"] == 1 and t.loc[0, "no_finding"] == 0
    assert t.loc[0].drop(["cardiomegaly", "lung_opacity"]).eq(0).all()
    assert t.loc[1, "no_finding"] == 1 and t.loc[1].drop("no_finding").eq(0).all()
    assert t.loc[2, "atelectasis"] == 1 and t.loc[2, "fracture"] == 1 and t.loc[2, "pleural_effusion"] == 0
    assert t.loc[3, "calcified_granuloma"] == 1 and t.loc[3].sum() == 1  # the hernia maps to no finding
    assert t.loc[4].isna().all()
    with pytest.raises(ValueError, match="mesh_major"):
        mesh_truth(pd.DataFrame({"report": ["x"]}))


def test_open_i_reports_scored_against_their_mesh_tags(tmp_path: Path):
    """benchmarks/eval_annotate.py --open-i: the labeler on Open-I-format reports against their MeSH tags; a negated
    finding must not count as present, so the labeler beats the keyword baseline's precision."""
    import importlib.util
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_datasets import report_xml

    reports = [
        ("Heart size normal. No pleural effusion or pneumothorax.", "No acute disease.", ["normal"]),
        ("The heart is enlarged.", "Cardiomegaly.", ["Cardiomegaly/mild"]),
        ("Small left pleural effusion.", "Effusion.", ["Pleural Effusion/left/small"]),
        ("No cardiomegaly. No effusion.", "Normal chest.", ["normal"]),
        ("Moderate cardiomegaly with a right pleural effusion.", "", ["Cardiomegaly/moderate", "Pleural Effusion/right"]),
        ("There is no pneumothorax. The heart is not enlarged.", "", ["normal"]),
    ]
    folder = tmp_path / "ecgen-radiology"
    folder.mkdir()
    for k, (findings, impression, major) in enumerate(reports, 1):
        (folder / f"{k}.xml").write_bytes(report_xml(f"CXR{k}", findings, impression, major, []))
    spec = importlib.util.spec_from_file_location("eval_annotate", Path(__file__).parents[1] / "benchmarks" / "eval_annotate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lines = mod.open_i_table(folder)
    rows = {ln.split("|")[1].strip(): ln.split("|")[2:-1] for ln in lines if ln.startswith("| ") and "---" not in ln}
    # | finding | reports | present | precision | recall | F1 | keyword P | keyword R | keyword F1 |
    card, eff = rows["cardiomegaly"], rows["pleural_effusion"]
    assert card[0].strip() == "6" and card[1].strip() == "2" and eff[1].strip() == "2"
    assert float(card[4]) == 1.0 and float(eff[4]) == 1.0  # F1 of the labeler
    assert float(card[5]) < 1.0 and float(eff[5]) < 1.0  # the keyword baseline calls the negated mentions present
    assert "no_finding" in rows and float(rows["no_finding"][4]) == 1.0
