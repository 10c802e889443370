"""medfuse.data.synthetic_cohort: determinism, anatomy, reports, fusion, files."""

from __future__ import annotations

import re

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pydicom")
pytest.importorskip("cv2")

from scipy import ndimage as ndi

from medfuse.data import Cohort, synthetic_cohort
from medfuse.data import phantoms as _phantoms


def test_same_seed_same_data_other_seed_differs():
    a = synthetic_cohort(6, seed=3, lang="mixed")
    b = synthetic_cohort(6, seed=3, lang="mixed")
    c = synthetic_cohort(6, seed=4, lang="mixed")
    for ra, rb in zip(a, b):
        assert ra.label == rb.label and ra.report == rb.report
        for x, y in ((ra.ct, rb.ct), (ra.xray, rb.xray)):
            assert (x is None) == (y is None)
        if ra.ct is not None:
            np.testing.assert_array_equal(ra.ct.array, rb.ct.array)
        if ra.xray is not None:
            np.testing.assert_array_equal(ra.xray, rb.xray)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not a.truth.equals(c.truth)


def test_anatomy_dtypes_and_intensities():
    c = synthetic_cohort(3, seed=0, missing=0.0)
    rec = c["P000"]
    vol = rec.ct
    assert vol.array.dtype == np.int16 and vol.array.shape == (48, 128, 128)
    assert vol.spacing == pytest.approx((160 / 48, 2.8, 2.8))
    a = vol.array
    lung_like = a[(a > -950) & (a < -750)]
    assert abs(np.median(lung_like) + 850) < 20  # lungs about -850 HU
    assert (a > 500).sum() > 1000  # ribs and spine
    assert (a < -990).sum() > 10000  # air around the body
    assert rec.xray.dtype == np.uint16 and rec.xray.ndim == 2 and rec.xray.max() < 4096


def test_phantom_nodule_parameters():
    kw = {"seed": 5, "lobe": "RUL"}
    none = _phantoms.nodule_ct_phantom(diameter_mm=0.1, **kw)
    small = _phantoms.nodule_ct_phantom(diameter_mm=8.0, **kw)
    big = _phantoms.nodule_ct_phantom(diameter_mm=20.0, **kw)
    box = big.nodule_box(margin=3)

    def dense(ph, thr=-400):
        return int((ph.volume[box] > thr).sum() - (none.volume[box] > thr).sum())

    assert dense(big) > 8 * dense(small) > 0  # volume ~ d**3
    calc = _phantoms.nodule_ct_phantom(diameter_mm=20.0, nodule_hu=350.0, **kw)
    assert np.percentile(calc.volume[box], 99) > np.percentile(big.volume[box], 99) + 150
    ggo = _phantoms.nodule_ct_phantom(diameter_mm=20.0, nodule_hu=-600.0, **kw)
    assert dense(ggo) < dense(big) // 4 and dense(ggo, -700) > dense(big) // 2
    smooth = _phantoms.nodule_ct_phantom(diameter_mm=14.0, **kw)
    spiky = _phantoms.nodule_ct_phantom(diameter_mm=14.0, spiculation=1.0, **kw)
    lobed = _phantoms.nodule_ct_phantom(diameter_mm=14.0, lobulation=1.0, **kw)
    assert dense(spiky, -500) > dense(smooth, -500) and dense(lobed, -500) > dense(smooth, -500)
    # Same seed, same anatomy and noise outside the nodule box.
    np.testing.assert_array_equal(np.delete(spiky.volume, np.s_[box[0]], 0), np.delete(smooth.volume, np.s_[box[0]], 0))
    with pytest.raises(ValueError, match="lobe"):
        _phantoms.nodule_ct_phantom(lobe="XYZ")
    with pytest.raises(ValueError, match="diameter_mm"):
        _phantoms.nodule_ct_phantom(diameter_mm=0)


def test_ct_phantom_and_the_cohort_anatomy_are_one_anatomy():
    """ct_phantom and the cohort phantoms' cached static anatomy paint one body, spine and rib cage: outside the
    lungs (where ct_phantom's vessels and nodule cannot be) they differ by ct_phantom's 15 HU noise only."""
    for shape in ((40, 96, 96), (33, 71, 97)):
        ct = _phantoms.ct_phantom(shape, seed=2).volume.astype(np.float32)
        anatomy = _phantoms._static_anatomy(shape)
        where = (anatomy.lung == 0) & (anatomy.volume > -900)  # no lung, and no air (clipped at -1024 HU)
        assert where.mean() > 0.2 and (anatomy.volume[where] > 500).sum() > 1000  # body and bone
        resid = ct[where] - anatomy.volume[where]
        assert abs(resid.mean()) < 0.5 and 14.0 < resid.std() < 16.0
        assert np.abs(resid).max() < 7 * _phantoms.NOISE_HU


def test_labels_balanced_and_reports_varied():
    c = synthetic_cohort(120, seed=1, lang="mixed", missing=0.0)
    y = c.labels.to_numpy()
    assert 0.3 < y.mean() < 0.7
    reports = [r for r in c.truth.index.map(lambda p: c[p].report)]
    text = " ".join(reports)
    for pattern in ("spiculated", "lobulated", "smooth|circumscribed", "cannot be excluded|cannot exclude",
                    "no evidence of malignancy", "毛刺", "分叶", "考虑", "未见明显恶性征象", r"\d+ mm", r"\d+mm"):
        assert re.search(pattern, text), pattern
    assert len(set(reports)) == len(reports)
    assert set(c.truth["lang"]) == {"en", "zh"}


def test_missing_fraction_and_never_all_missing():
    c = synthetic_cohort(80, seed=2, missing=0.3)
    s = c.summary()
    for m in ("ct", "xray", "report"):
        assert 10 <= s.loc[m, "n_missing"] <= 40
    t = c.truth
    assert (t[["has_ct", "has_xray", "has_report"]].any(axis=1)).all()
    assert s.loc["ct", "missing_ids"] == list(t.index[~t.has_ct])


def test_refusals():
    with pytest.raises(ValueError, match="lang"):
        synthetic_cohort(2, lang="fr")
    with pytest.raises(ValueError, match="missing"):
        synthetic_cohort(2, missing=1.0)
    with pytest.raises(ValueError, match="n must be"):
        synthetic_cohort(0)


def test_files_round_trip_through_from_csv(tmp_path):
    mem = synthetic_cohort(8, seed=7, lang="zh", missing=0.15)
    disk = synthetic_cohort(8, seed=7, lang="zh", missing=0.15, out_dir=tmp_path)
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(manifest.columns) == ["patient_id", "label", "ct", "xray", "report", "audio"]
    assert (manifest == "").to_numpy().sum() == sum(
        (~mem.truth[c]).sum() for c in ("has_ct", "has_xray", "has_report", "has_audio")
    )
    again = Cohort.from_csv(tmp_path / "manifest.csv")
    again.validate(deep=True)
    gb = 0
    for a, b, c in zip(mem, disk, again):
        assert a.patient_id == b.patient_id == c.patient_id and a.label == b.label == c.label
        if a.ct is not None:
            np.testing.assert_array_equal(a.ct.array, c.ct.array)
            assert c.ct.spacing == pytest.approx(a.ct.spacing, abs=1e-4)
            assert c.ct.metadata["format"] == "dicom" and c.ct.metadata["patient_id"] == a.patient_id
        else:
            assert c.ct is None
        if a.xray is not None:
            np.testing.assert_array_equal(a.xray, c.xray)
        if a.audio is not None:  # 16-bit PCM round trip: within half a quantisation step
            assert c.audio[1] == a.audio[1] == 4000
            assert np.abs(c.audio[0] - a.audio[0]).max() <= 2.0**-15
        else:
            assert c.audio is None
        assert a.report == c.report
        if a.report is not None:
            raw = (tmp_path / a.patient_id / "report.txt").read_bytes()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                gb += 1
    assert gb >= 1  # some reports are GB18030, read back through the fallback


# ----------------------------------------------------------- fusion genuinely helps
# Cheap, oracle-free hand features per modality (no access to the truth table).


def ct_features(vol) -> list[float]:
    """The best nodule candidate of medfuse.segment (lung mask, LoG blobs): log radius, score, and its
    segmented mask's log volume, median and p90 HU.

    The CT has the heart, great vessels, airways, domes and vessel trees around the nodule, so a plain
    "largest dense blob near the lungs" finds anatomy; the candidate detector has to tell them apart."""
    from medfuse import segment

    a = vol.array
    lungs = segment.lung_mask(a, spacing=vol.spacing)
    cands = segment.nodule_candidates(a, lungs, spacing=vol.spacing, max_candidates=1, min_score=0.0)
    if not cands:
        return [0.0, 0.0, 0.0, -850.0, -850.0]
    c = cands[0]
    m = segment.nodule_mask(a, c, spacing=vol.spacing, lung_mask=lungs)
    v = a[m] if m.any() else np.array([-850.0])
    size = float(np.log1p(m.sum() * np.prod(vol.spacing)))
    return [float(np.log(c.radius_mm)), float(c.score), size, float(np.median(v)), float(np.percentile(v, 90))]


def xray_features(x) -> list[float]:
    """Brightest small blob (white top-hat) in the central field."""
    xs = ndi.gaussian_filter(x.astype(np.float32), 1.0)
    th = xs - ndi.grey_opening(xs, size=(9, 9))
    h, w = th.shape
    centre = th[h // 10 : h * 9 // 10, w // 10 : w * 9 // 10]
    return [float(centre.max()), float(np.percentile(centre, 99.5))]


_WORDS = {
    "spiculated": r"spiculat|毛刺",
    "lobulated": r"lobulat|分叶",
    "smooth": r"smooth|circumscribed|光滑|光整",
    "grew": r"increased in size|growth|增大",
    "stable": r"unchanged|stable|无明显变化|相仿",
    "calcified": r"calcif|钙化",
    "suspicious": r"suspicious for|highly suspicious|可能性大|考虑肺癌",
    "hedge": r"cannot (be )?exclude|不除外|不能排除",
    "benign": r"benign|良性",
}


def report_features(text: str) -> list[float]:
    m = re.search(r"(\d+(?:\.\d+)?)\s*(mm|cm)", text)
    size = float(m.group(1)) * (10.0 if m.group(2) == "cm" else 1.0) if m else 10.0
    return [float(np.log(size))] + [float(bool(re.search(p, text, re.IGNORECASE))) for p in _WORDS.values()]


def test_fusion_beats_every_single_modality():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    c = synthetic_cohort(300, seed=0, lang="mixed", missing=0.0)
    y = c.labels.to_numpy().astype(int)
    blocks = {"ct": [], "xray": [], "report": []}
    for rec in c:
        blocks["ct"].append(ct_features(rec.ct))
        blocks["xray"].append(xray_features(rec.xray))
        blocks["report"].append(report_features(rec.report))
    X = {k: np.asarray(v) for k, v in blocks.items()}
    X["fused"] = np.hstack([X["ct"], X["xray"], X["report"]])
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    auc = {}
    for name, F in X.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        p = cross_val_predict(model, F, y, cv=cv, method="predict_proba")[:, 1]
        auc[name] = roc_auc_score(y, p)
    best_single = max(auc["ct"], auc["xray"], auc["report"])
    assert auc["ct"] > 0.65 and auc["report"] > 0.65, auc  # each strong view is informative
    assert auc["fused"] > best_single + 0.03, auc
