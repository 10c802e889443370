"""Golden tests on real DICOM files that packages ship (pydicom and pydicom-data, no network).

- RG1_UNCR.dcm / RG1_UNCI.dcm: a real PA chest radiograph (CR, MONOCHROME1,
  15 bits stored in 16, 1955 x 1841), explicit and implicit VR;
  RG1_J2KR.dcm the same image JPEG 2000 compressed.
- RG3_UNCR.dcm: an extremity CR, MONOCHROME1, 10 bits stored.
- 693_UNCR.dcm: an axial head CT slice (512 x 512, RescaleIntercept -1024,
  padding -3024 HU outside the field of view).
- CT_small.dcm: pydicom's 128 x 128 CT crop.

Each file: what the reader returns is checked against pydicom directly
(inversion, HU), against anatomy (orientation: bright mediastinum between
dark lungs, the abdomen at the bottom; air, brain and bone HU), by a hash of
the reader's output (golden: a change in decoding or inversion shows), and
the features, Canny and CLAHE run on it (Canny/CLAHE equal OpenCV).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
cv2 = pytest.importorskip("cv2")
from pydicom.data import get_testdata_file

import medfuse as mf
from medfuse.data import MedfuseIOError, read_ct, read_xray
from medfuse.features import ImageFeatureExtractor


def _testdata(name: str) -> str:
    path = get_testdata_file(name, download=False)  # never the network at test time
    if path is None:
        pytest.skip(f"{name} needs the pydicom-data package (test extra)")
    return str(path)


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


# ------------------------------------------------------------------ chest CR


@pytest.fixture(scope="module")
def chest() -> np.ndarray:
    return read_xray(_testdata("RG1_UNCR.dcm"))


def test_chest_cr_inversion_orientation_golden(chest: np.ndarray) -> None:
    ds = pydicom.dcmread(_testdata("RG1_UNCR.dcm"))
    assert (ds.Modality, ds.PhotometricInterpretation, int(ds.BitsStored)) == ("CR", "MONOCHROME1", 15)
    assert chest.dtype == np.uint16 and chest.shape == (1955, 1841) == (ds.Rows, ds.Columns)
    # MONOCHROME1: low stored values are bright; inverted within the 15 stored bits
    np.testing.assert_array_equal(chest, (2**15 - 1) - ds.pixel_array.astype(np.int64))
    assert sha(chest) == "83c641eadb827d9c"
    assert list(ds.PatientOrientation) == ["L", "F"]  # columns run to the patient's left, rows to the feet
    h, w = chest.shape
    rows = slice(int(0.3 * h), int(0.55 * h))
    lung_r = np.median(chest[rows, int(0.2 * w) : int(0.35 * w)])
    lung_l = np.median(chest[rows, int(0.65 * w) : int(0.8 * w)])
    mediastinum = np.median(chest[rows, int(0.46 * w) : int(0.54 * w)])
    abdomen = np.median(chest[int(0.9 * h) :, int(0.2 * w) : int(0.8 * w)])
    # dense is bright: spine/heart above both lungs, the abdomen below the diaphragm brighter still
    assert mediastinum > lung_r + 5000 and mediastinum > lung_l + 5000
    assert abdomen > max(lung_r, lung_l) + 5000


def test_chest_cr_voi_and_implicit_vr(chest: np.ndarray) -> None:
    ds = pydicom.dcmread(_testdata("RG1_UNCR.dcm"))
    from pydicom.pixels import apply_voi_lut

    voi = read_xray(_testdata("RG1_UNCR.dcm"), apply_voi=True)
    want = np.float32(2**15 - 1) - np.asarray(apply_voi_lut(ds.pixel_array, ds), dtype=np.float32)
    np.testing.assert_array_equal(voi, want)
    # RG1_UNCI: the same radiograph after a lossy JPEG 2000 round trip, stored implicit VR:
    # read the same way (inverted, same geometry), equal up to the compression error
    lossy = read_xray(_testdata("RG1_UNCI.dcm"))
    assert lossy.shape == chest.shape and lossy.dtype == chest.dtype
    diff = np.abs(lossy.astype(np.int64) - chest)
    assert 0 < diff.mean() < 0.002 * 2**15 and np.corrcoef(lossy.ravel(), chest.ravel())[0, 1] > 0.999


def test_chest_cr_jpeg2000_without_a_decoder_is_a_clear_error(chest: np.ndarray) -> None:
    path = _testdata("RG1_J2KR.dcm")
    try:
        got = read_xray(path)
    except MedfuseIOError as err:
        assert "cannot decode DICOM pixel data" in str(err) and err.path == path
    else:  # a JPEG 2000 plugin is installed: lossless, so the same pixels
        np.testing.assert_array_equal(got, chest)


def test_chest_cr_canny_clahe_features(chest: np.ndarray) -> None:
    clahe = mf.clahe(chest, 2.0, (8, 8))
    np.testing.assert_array_equal(clahe, cv2.createCLAHE(2.0, (8, 8)).apply(chest))
    small = cv2.resize(chest, (chest.shape[1] // 8, chest.shape[0] // 8), interpolation=cv2.INTER_AREA)
    u8 = mf.window(small, 19000, 14000)
    edges = mf.canny(u8, 40, 120)
    np.testing.assert_array_equal(edges, cv2.Canny(u8, 40, 120))
    assert 0.01 < (edges > 0).mean() < 0.3  # a radiograph has edges (ribs, heart, diaphragm), not noise everywhere
    fe = ImageFeatureExtractor().fit([small])
    row = dict(zip(fe.get_feature_names_out(), fe.transform([small])[0]))
    assert all(np.isfinite(v) for v in row.values())
    assert row["fo_Mean"] == pytest.approx(float(small.mean()))
    assert row["fo_Minimum"] == small.min() and row["fo_Maximum"] == small.max()
    assert row["edge_density"] == pytest.approx(0.1213, abs=2e-3)
    assert row["glcm_Contrast"] == pytest.approx(0.3652, abs=5e-3)


def test_extremity_cr_10_bit_inversion() -> None:
    path = _testdata("RG3_UNCR.dcm")
    ds = pydicom.dcmread(path)
    x = read_xray(path)
    assert int(ds.BitsStored) == 10 and x.shape == (1760, 1760) and x.dtype == np.uint16
    np.testing.assert_array_equal(x, 1023 - ds.pixel_array.astype(np.int64))
    assert int(x.max()) <= 1023
    assert sha(x) == sha(1023 - ds.pixel_array.astype(np.uint16))


# ------------------------------------------------------------------ head CT


@pytest.fixture(scope="module")
def head() -> mf.data.Volume:
    return read_ct(_testdata("693_UNCR.dcm"))


def test_head_ct_hu_geometry_golden(head: mf.data.Volume) -> None:
    ds = pydicom.dcmread(_testdata("693_UNCR.dcm"))
    assert head.array.dtype == np.int16 and head.shape == (1, 512, 512)
    np.testing.assert_array_equal(head.array[0], ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept))
    assert sha(head.array) == "dd1c8d7baacc9482"
    assert head.spacing[1:] == pytest.approx((0.478516, 0.478516))
    assert head.origin == pytest.approx((-122.5, -112.4, 47.0))  # ImagePositionPatient of voxel [0, 0, 0]
    # index (z, y, x, 1) -> LPS: x along the rows (+L), y down the columns (+P)
    np.testing.assert_allclose(head.affine @ [0, 10, 20, 1], [-122.5 + 20 * 0.478516, -112.4 + 10 * 0.478516, 47.0, 1])
    ct = head.array[0]
    assert int(ct.min()) == -3024  # padding outside the reconstruction circle
    assert np.median(ct[5:40, 200:300]) == pytest.approx(-1000, abs=30)  # air in front of the head
    assert 15 <= np.median(ct[200:300, 220:300]) <= 45  # brain parenchyma
    assert (ct > 1000).mean() > 0.005  # the skull
    # anterior is up (y index 0 = anterior): the frontal sinus' air is in the upper half of the head
    inside = (ct > -200) & (ct < 3000)
    rows = np.nonzero(inside.any(axis=1))[0]
    assert rows[0] < 150 and rows[-1] > 350


def test_head_ct_canny_clahe_features(head: mf.data.Volume) -> None:
    ct = head.array[0]
    brain = mf.window(ct, 40, 80)
    np.testing.assert_array_equal(mf.clahe(brain, 2.0, (8, 8)), cv2.createCLAHE(2.0, (8, 8)).apply(brain))
    np.testing.assert_array_equal(mf.canny(brain, 50, 150), cv2.Canny(brain, 50, 150))
    edges_hu = mf.canny(ct, 200, 600, sigma=1.0)
    np.testing.assert_array_equal(edges_hu, mf.reference.canny(ct, 200, 600, sigma=1.0))
    # edges lie on interfaces (skull, skin, padding), not inside the brain: the brain's interior is
    # (nearly) edge-free while the skull's outline is found
    brain_inside = cv2.erode(((ct > 0) & (ct < 80)).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    near_bone = cv2.dilate((ct > 1000).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    e = edges_hu > 0
    assert e[brain_inside].mean() < 0.01 and near_bone[e].sum() > 1000
    fe = ImageFeatureExtractor(window=(40, 80)).fit([ct])
    row = dict(zip(fe.get_feature_names_out(), fe.transform([ct])[0]))
    assert all(np.isfinite(v) for v in row.values())
    assert row["fo_Minimum"] == -3024 and row["fo_Maximum"] == int(ct.max())


def test_ct_small_golden() -> None:
    path = _testdata("CT_small.dcm")
    ds = pydicom.dcmread(path)
    v = read_ct(path)
    np.testing.assert_array_equal(
        v.array[0], ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    )
    assert v.shape == (1, 128, 128)
    assert sha(v.array) == sha(v.array.copy())  # hash is of the contiguous int16 array


def test_real_files_through_dicom_folder(tmp_path: Path, chest: np.ndarray, head: mf.data.Volume) -> None:
    import shutil

    from medfuse.data import dicom_folder

    (tmp_path / "export" / "P1").mkdir(parents=True)
    (tmp_path / "export" / "P2" / "ct").mkdir(parents=True)
    shutil.copy(_testdata("RG1_UNCR.dcm"), tmp_path / "export" / "P1" / "chest.dcm")
    shutil.copy(_testdata("693_UNCR.dcm"), tmp_path / "export" / "P2" / "ct" / "1.dcm")
    (tmp_path / "labels.csv").write_text("patient_id,label\nP1,0\nP2,1\n")
    cohort = dicom_folder(tmp_path / "export", tmp_path / "labels.csv")
    np.testing.assert_array_equal(cohort["P1"].xray, chest)
    assert cohort["P1"].ct is None and cohort["P2"].xray is None
    np.testing.assert_array_equal(cohort["P2"].ct.array, head.array)


@pytest.mark.parametrize(
    ("orientation", "view"),
    [
        (["L", "F"], lambda a: a),
        (["R", "F"], lambda a: a[:, ::-1]),
        (["L", "H"], lambda a: a[::-1, :]),
        (["R", "H"], lambda a: a[::-1, ::-1]),
        (["F", "L"], lambda a: a.T),  # stored transposed: rows run head-feet
        (["H", "R"], lambda a: a.T[::-1, ::-1]),
        (["A", "F"], lambda a: a),  # a lateral view: left as stored
        (None, lambda a: a),
    ],
    ids=["LF", "RF", "LH", "RH", "FL", "HR", "lateral", "none"],
)
def test_patient_orientation_gives_the_standard_frontal_display(tmp_path: Path, orientation, view, chest) -> None:
    # RG1 (chest PA) is stored in the standard display (L, F); store its pixels as another orientation would
    ds = pydicom.dcmread(_testdata("RG1_UNCR.dcm"))
    assert list(ds.PatientOrientation) == ["L", "F"]
    standard = read_xray(_testdata("RG1_UNCR.dcm"), orient=True)
    np.testing.assert_array_equal(standard, chest)
    stored = np.ascontiguousarray(view(ds.pixel_array))  # how a detector with that orientation stores it
    ds.Rows, ds.Columns = stored.shape
    ds.PixelData = stored.tobytes()
    if orientation is None:
        del ds.PatientOrientation
    else:
        ds.PatientOrientation = orientation
    p = tmp_path / "o.dcm"
    ds.save_as(p)
    as_stored = 2**15 - 1 - stored.astype(np.int64)
    expected = standard if orientation is not None and orientation[0] != "A" else as_stored
    np.testing.assert_array_equal(read_xray(p, orient=True), expected)
    np.testing.assert_array_equal(read_xray(p), as_stored)  # the default: stored order
