"""medfuse.data.io: CT (DICOM series, NIfTI, npy/npz), X-ray, report text."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medfuse.data import io as mio

CT_SMALL = get_testdata_file("CT_small.dcm")


def _ds():
    return pydicom.dcmread(CT_SMALL)


def make_series(
    folder: Path,
    n: int = 6,
    *,
    dz: float = 2.5,
    slope: float = 1.0,
    intercept: float = -1024.0,
    skip: tuple[int, ...] = (),
    series_uid: str | None = None,
    seed: int = 0,
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
) -> np.ndarray:
    """Write a series from CT_small.dcm with distinct slices; return expected HU (superior first)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = _ds()
    uid = series_uid or generate_uid()
    rng = np.random.default_rng(seed)
    names = [f"img{k:02d}.dcm" for k in range(n)]
    random.Random(seed).shuffle(names)  # file-name order says nothing about position
    row = np.array(orientation[:3], dtype=float)
    col = np.array(orientation[3:], dtype=float)
    normal = np.cross(row, col)
    origin = np.array([float(v) for v in base.ImagePositionPatient])
    planes = {}
    for k in range(n):
        if k in skip:
            continue
        ds = _ds()
        stored = (base.pixel_array.astype(np.int32) + rng.integers(0, 200, base.pixel_array.shape)).astype(np.int16)
        ds.PixelData = stored.tobytes()
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = [float(v) for v in origin + normal * k * dz]
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.save_as(folder / names[k])
        planes[k] = stored.astype(np.float64) * slope + intercept
    # Superior (largest position along an upward normal) first.
    order = sorted(planes, reverse=bool(normal[2] >= 0))
    return np.stack([planes[k] for k in order])


def test_dicom_series_ordered_by_position_not_name(tmp_path):
    expected = make_series(tmp_path / "s", 6, dz=2.5)
    vol = mio.read_ct(tmp_path / "s")
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, expected.astype(np.int16))
    assert vol.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    assert vol.metadata["modality"] == "CT"
    assert vol.metadata["n_slices"] == 6
    assert vol.metadata["series_uid"]
    # origin is the most superior slice's position
    assert vol.origin[2] == pytest.approx(-75.699997 + 5 * 2.5)


def test_dicom_series_rescale_applied(tmp_path):
    expected = make_series(tmp_path / "s", 4, slope=2.0, intercept=-2048.0)
    vol = mio.read_ct(str(tmp_path / "s"))
    np.testing.assert_array_equal(vol.array, expected.astype(np.int16))
    assert vol.array.min() < -1000


def test_dicom_series_oblique_normal_orders_along_normal(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    expected = make_series(tmp_path / "s", 5, dz=3.0, orientation=(1, 0, 0, 0, c, s))
    vol = mio.read_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.array, expected.astype(np.int16))
    assert vol.spacing[0] == pytest.approx(3.0)


def test_dicom_series_out_of_int16_refused(tmp_path):
    make_series(tmp_path / "s", 3, slope=100.0, intercept=0.0)
    with pytest.raises(mio.MedfuseIOError, match="outside int16"):
        mio.read_ct(tmp_path / "s")


def test_dicom_series_missing_slice_is_error_naming_positions(tmp_path):
    make_series(tmp_path / "s", 6, dz=2.0, skip=(3,))
    with pytest.raises(mio.MedfuseIOError, match=r"missing slices.*between") as info:
        mio.read_ct(tmp_path / "s")
    assert info.value.path == os.fspath(tmp_path / "s")


def test_dicom_series_missing_slice_allowed(tmp_path):
    expected = make_series(tmp_path / "s", 6, dz=2.0, skip=(3,))
    vol = mio.read_ct(tmp_path / "s", allow_gaps=True)
    np.testing.assert_array_equal(vol.array, expected.astype(np.int16))
    assert vol.spacing[0] == pytest.approx(2.0)
    assert len(vol.metadata["gaps_mm"]) == 1


def test_dicom_mixed_series_names_both_uids(tmp_path):
    uid_a, uid_b = generate_uid(), generate_uid()
    make_series(tmp_path / "s", 3, series_uid=uid_a, seed=1)
    make_series(tmp_path / "b", 2, series_uid=uid_b, seed=2)
    for f in (tmp_path / "b").iterdir():
        f.rename(tmp_path / "s" / ("other_" + f.name))
    with pytest.raises(mio.MedfuseIOError, match="mixes 2 DICOM series") as info:
        mio.read_ct(tmp_path / "s")
    assert uid_a in str(info.value) and uid_b in str(info.value)


def test_dicom_folder_with_non_dicom_file(tmp_path):
    make_series(tmp_path / "s", 3)
    (tmp_path / "s" / "notes.txt").write_text("hello")
    with pytest.raises(mio.MedfuseIOError, match="not a DICOM file") as info:
        mio.read_ct(tmp_path / "s")
    assert info.value.path.endswith("notes.txt")


def test_dicom_duplicate_positions(tmp_path):
    make_series(tmp_path / "s", 3, dz=0.0)
    with pytest.raises(mio.MedfuseIOError, match="share a position"):
        mio.read_ct(tmp_path / "s")


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(mio.MedfuseIOError, match="empty"):
        mio.read_ct(tmp_path / "empty")
    with pytest.raises(mio.MedfuseFileNotFoundError, match="CT path not found") as info:
        mio.read_ct(tmp_path / "nope")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(mio.MedfuseIOError, match="unsupported CT file type"):
        p = tmp_path / "x.bmp"
        p.write_bytes(b"12")
        mio.read_ct(p)


def test_nifti_round_trip_with_nontrivial_affine(tmp_path):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    # Ground truth in medfuse order (z: S->I, y: A->P, x: R->L), spacing (3, 0.8, 0.7).
    want = rng.integers(-1000, 1000, (5, 6, 7)).astype(np.int16)
    # Store it as LPI-ordered data with axes permuted: array axes (y, x, z).
    data = want.transpose(1, 2, 0)  # [y, x, z]
    # voxel (j=y, i=x, k=z) -> world RAS: x index goes to -R (left), y to -A, z to -S.
    affine = np.zeros((4, 4))
    affine[0, 1] = -0.7  # array axis 1 (x) -> -R
    affine[1, 0] = -0.8  # array axis 0 (y) -> -A
    affine[2, 2] = -3.0  # array axis 2 (z) -> -S
    affine[:3, 3] = (10.0, 20.0, 30.0)
    affine[3, 3] = 1.0
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    vol = mio.read_ct(path)
    np.testing.assert_array_equal(vol.array, want)
    assert vol.spacing == pytest.approx((3.0, 0.8, 0.7))
    # voxel [0,0,0] is the stored (0,0,0): RAS (10, 20, 30) -> LPS (-10, -20, 30)
    assert vol.origin == pytest.approx((-10.0, -20.0, 30.0))


def test_nifti_float_rounds_and_rejects_nan(tmp_path):
    nib = pytest.importorskip("nibabel")
    data = np.full((2, 3, 4), -999.6, dtype=np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "a.nii")
    assert (mio.read_ct(tmp_path / "a.nii").array == -1000).all()
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "b.nii")
    with pytest.raises(mio.MedfuseIOError, match="NaN"):
        mio.read_ct(tmp_path / "b.nii")


def test_npy_and_npz(tmp_path):
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    np.save(tmp_path / "a.npy", arr)
    vol = mio.read_ct(tmp_path / "a.npy")
    np.testing.assert_array_equal(vol.array, arr)
    assert vol.spacing == (1.0, 1.0, 1.0) and "assumed" in vol.metadata["spacing_source"]
    assert mio.read_ct(tmp_path / "a.npy", spacing=(2, 1, 1)).spacing == (2.0, 1.0, 1.0)
    np.savez(tmp_path / "b.npz", volume=arr.astype(np.float64), spacing=[2.5, 0.7, 0.7], origin=[1, 2, 3])
    vol = mio.read_ct(tmp_path / "b.npz")
    assert vol.array.dtype == np.int16 and vol.spacing == (2.5, 0.7, 0.7) and vol.origin == (1.0, 2.0, 3.0)
    np.savez(tmp_path / "c.npz", a=arr, b=arr)
    with pytest.raises(mio.MedfuseIOError, match="'volume'"):
        mio.read_ct(tmp_path / "c.npz")
    np.save(tmp_path / "d.npy", np.zeros((3, 3)))
    with pytest.raises(mio.MedfuseIOError, match="3D"):
        mio.read_ct(tmp_path / "d.npy")
    np.save(tmp_path / "e.npy", np.full((2, 2, 2), 40000, dtype=np.int32))
    with pytest.raises(mio.MedfuseIOError, match="outside int16"):
        mio.read_ct(tmp_path / "e.npy")
    with pytest.raises(ValueError, match="spacing"):
        mio.read_ct(tmp_path / "a.npy", spacing=(0, 1, 1))


# ----------------------------------------------------------------------- X-ray


def test_png_16bit_round_trip(tmp_path):
    cv2 = pytest.importorskip("cv2")
    img = (np.arange(40 * 30, dtype=np.uint32).reshape(40, 30) * 50 % 65536).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "x.png"), img)
    out = mio.read_xray(tmp_path / "x.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img)


def test_png_8bit_grey_saved_as_rgb_accepted_colour_refused(tmp_path):
    cv2 = pytest.importorskip("cv2")
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    cv2.imwrite(str(tmp_path / "g.png"), np.dstack([grey] * 3))
    np.testing.assert_array_equal(mio.read_xray(tmp_path / "g.png"), grey)
    colour = np.dstack([grey, grey, 255 - grey])
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    with pytest.raises(mio.MedfuseIOError, match="colour channels"):
        mio.read_xray(tmp_path / "c.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(mio.MedfuseIOError, match="cannot decode"):
        mio.read_xray(tmp_path / "bad.png")


def test_xray_npy_and_unsupported(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((4, 5), np.uint16))
    assert mio.read_xray(tmp_path / "x.npy").shape == (4, 5)
    np.save(tmp_path / "y.npy", np.ones((4, 5, 2), np.uint16))
    with pytest.raises(mio.MedfuseIOError, match="2D"):
        mio.read_xray(tmp_path / "y.npy")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(mio.MedfuseIOError, match="unsupported X-ray file type"):
        mio.read_xray(tmp_path / "x.gif")


def _xray_dicom(path: Path, photometric: str) -> np.ndarray:
    ds = _ds()
    px = np.clip(ds.pixel_array, 0, 4095).astype(np.uint16)
    ds.PixelRepresentation = 0
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelData = px.tobytes()
    ds.PhotometricInterpretation = photometric
    ds.WindowCenter = 1000
    ds.WindowWidth = 400
    ds.save_as(path)
    return px


def test_dicom_xray_monochrome1_inverted(tmp_path):
    px = _xray_dicom(tmp_path / "m2.dcm", "MONOCHROME2")
    _xray_dicom(tmp_path / "m1.dcm", "MONOCHROME1")
    np.testing.assert_array_equal(mio.read_xray(tmp_path / "m2.dcm"), px)
    np.testing.assert_array_equal(mio.read_xray(tmp_path / "m1.dcm"), 4095 - px)


def test_tiff_16bit_and_jpeg_8bit(tmp_path):
    cv2 = pytest.importorskip("cv2")
    img16 = (np.arange(30 * 20, dtype=np.uint32).reshape(30, 20) * 97 % 65536).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "x.tif"), img16)
    out = mio.read_xray(tmp_path / "x.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img16)
    img8 = np.full((16, 16), 128, np.uint8)
    assert cv2.imwrite(str(tmp_path / "x.jpg"), img8)
    out = mio.read_xray(tmp_path / "x.jpg")
    assert out.dtype == np.uint8 and out.shape == (16, 16) and abs(int(out.mean()) - 128) <= 2


def test_dicom_xray_voi_monochrome1_inverted_within_range(tmp_path):
    _xray_dicom(tmp_path / "m2.dcm", "MONOCHROME2")
    _xray_dicom(tmp_path / "m1.dcm", "MONOCHROME1")
    w2 = mio.read_xray(tmp_path / "m2.dcm", apply_voi=True)
    w1 = mio.read_xray(tmp_path / "m1.dcm", apply_voi=True)
    np.testing.assert_allclose(w1, 4095 - w2)


def test_dicom_xray_voi_only_on_request(tmp_path):
    px = _xray_dicom(tmp_path / "m2.dcm", "MONOCHROME2")
    raw = mio.read_xray(tmp_path / "m2.dcm")
    win = mio.read_xray(tmp_path / "m2.dcm", apply_voi=True)
    np.testing.assert_array_equal(raw, px)
    assert win.dtype == np.float32
    # Window 1000 +- 200: everything below 800 is at the bottom of the output range.
    assert np.ptp(win[px < 790]) == 0 and not np.array_equal(win, px.astype(np.float32))


# ---------------------------------------------------------------------- reports

ZH = "右肺上叶见一磨玻璃结节，大小约12mm，边缘可见毛刺。诊断意见：考虑恶性。"


def test_report_utf8_bom_and_whitespace(tmp_path):
    p = tmp_path / "r.txt"
    p.write_bytes(b"\xef\xbb\xbf" + "  No  nodule.\r\n\r\n\r\n\tMass\u3000seen. \n\n".encode())
    assert mio.read_report(p) == "No nodule.\n\nMass seen."
    assert mio.read_report(str(p)) == "No nodule.\n\nMass seen."


def test_report_gbk_and_gb18030_fallback(tmp_path):
    (tmp_path / "gbk.txt").write_bytes(ZH.encode("gbk"))
    (tmp_path / "gb.txt").write_bytes(ZH.encode("gb18030"))
    (tmp_path / "u8.txt").write_bytes(ZH.encode("utf-8"))
    for name in ("gbk.txt", "gb.txt", "u8.txt"):
        assert mio.read_report(tmp_path / name) == ZH


def test_report_undecodable_is_error_with_path(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"Nodule \xff\xfe\x80 size")
    with pytest.raises(mio.MedfuseIOError, match="neither UTF-8") as info:
        mio.read_report(p)
    assert info.value.path == os.fspath(p)
    # Latin-1 text decodes as GB18030 but not as plausible Chinese: refused, not guessed.
    q = tmp_path / "latin1.txt"
    q.write_bytes("Nodule \u00e9paississement pleural, l\u00e9sion.".encode("latin-1"))
    with pytest.raises(mio.MedfuseIOError, match="refusing to guess"):
        mio.read_report(q)
    assert mio.read_report(q, encoding="latin-1").startswith("Nodule \u00e9")
    r = tmp_path / "bin.txt"
    r.write_bytes("abc".encode("utf-16"))
    with pytest.raises(mio.MedfuseIOError, match="NUL"):
        mio.read_report(r)


def test_report_path_or_text_rule(tmp_path):
    assert mio.read_report("No  nodule seen.") == "No nodule seen."
    assert mio.read_report("line one\nreport.txt") == "line one\nreport.txt"
    with pytest.raises(mio.MedfuseFileNotFoundError, match="report file not found"):
        mio.read_report("missing_report.txt")
    with pytest.raises(mio.MedfuseFileNotFoundError):
        mio.read_report(tmp_path / "nothing_here")
    with pytest.raises(TypeError, match="path_or_text"):
        mio.read_report(12)  # type: ignore[arg-type]
