"""`medfuse enhance` and `medfuse restore-bench` (issue 18, item 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medfuse import restore as R
from medfuse.cli import main

pydicom = pytest.importorskip("pydicom")
cv2 = pytest.importorskip("cv2")


@pytest.fixture
def ct_dicom(tmp_path):
    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file("CT_small.dcm"))
    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("s1.dcm", "s2.dcm"):
        (folder / name).write_bytes(src.read_bytes())
    return folder


def test_enhance_dicom_series_keeps_metadata_and_hu(ct_dicom, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["enhance", str(ct_dicom), "-o", str(out), "--method", "nlm", "--param", "h=30",
                 "--param", "search_size=11"]) == 0
    for name in ("s1.dcm", "s2.dcm"):
        a, b = pydicom.dcmread(ct_dicom / name), pydicom.dcmread(out / name)
        for kw in ("PatientID", "SOPInstanceUID", "RescaleSlope", "RescaleIntercept", "ImagePositionPatient",
                   "PixelSpacing", "Modality"):
            assert a.get(kw) == b.get(kw)
        hu_in = a.pixel_array * float(a.RescaleSlope) + float(a.RescaleIntercept)
        hu_out = b.pixel_array * float(b.RescaleSlope) + float(b.RescaleIntercept)
        want = np.rint(R.denoise(hu_in.astype(np.float32), "nlm", h=30.0, search_size=11))
        np.testing.assert_allclose(hu_out, want, atol=1)
        assert b.pixel_array.dtype == a.pixel_array.dtype
        assert abs(float(hu_out.mean()) - float(hu_in.mean())) < 5  # HU scale kept
    assert "2 written, 0 failed" in capsys.readouterr().out


def test_enhance_png_file(tmp_path):
    img = (np.arange(64 * 80).reshape(64, 80) % 251).astype(np.uint8)
    src, dst = tmp_path / "x.png", tmp_path / "y.png"
    cv2.imwrite(str(src), img)
    assert main(["enhance", str(src), "-o", str(dst), "--method", "clahe", "--param", "clip_limit=2"]) == 0
    np.testing.assert_array_equal(cv2.imread(str(dst), cv2.IMREAD_UNCHANGED), R.enhance(img, "clahe", clip_limit=2))
    img16 = (np.arange(64 * 80).reshape(64, 80) * 7).astype(np.uint16)
    cv2.imwrite(str(src), img16)
    assert main(["enhance", str(src), "-o", str(dst), "--method", "median", "--param", "size=3"]) == 0
    assert cv2.imread(str(dst), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_folder_continues_past_failures(ct_dicom, tmp_path, capsys):
    (ct_dicom / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    (ct_dicom / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    assert main(["enhance", str(ct_dicom), "-o", str(out), "--method", "gaussian"]) == 1
    err = capsys.readouterr().err
    assert "broken.dcm" in err and "notes.txt" in err
    assert sorted(p.name for p in out.iterdir()) == ["s1.dcm", "s2.dcm"]  # no partial or temporary files


def test_refusals(ct_dicom, tmp_path, capsys):
    assert main(["enhance", str(ct_dicom), "-o", str(ct_dicom / "inner"), "--method", "gaussian"]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    assert main(["enhance", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert main(["enhance", str(ct_dicom), "-o", str(tmp_path / "o"), "--method", "nlm"]) == 2
    assert "needs h" in capsys.readouterr().err
    assert main(["enhance", str(ct_dicom), "-o", str(tmp_path / "o"), "--param", "h"]) == 2
    cv2.imwrite(str(ct_dicom / "x.png"), np.zeros((8, 8), np.uint8))
    assert main(["enhance", str(ct_dicom), "-o", str(tmp_path / "o"), "--method", "gaussian"]) == 2
    assert "mixes" in capsys.readouterr().err
    assert main(["enhance", str(ct_dicom / "s1.dcm"), "-o", str(tmp_path / "w.dcm"), "--method", "window",
                 "--param", "center=40", "--param", "width=400"]) == 1
    assert not (tmp_path / "w.dcm").exists()
    assert main(["restore-bench", "--doses", "0"]) == 2


def test_restore_bench(tmp_path, capsys):
    page = tmp_path / "r.html"
    assert main(["restore-bench", "--size", "64", "--slices", "1", "--doses", "0.1", "--no-learned",
                 "--html", str(page)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.strip().startswith("0.1")}
    assert set(rows) >= {"low", "gaussian", "median", "bilateral", "nlm"}
    low_psnr = float(rows["low"][3])
    assert float(rows["nlm"][2]) > low_psnr + 1  # restoration helps
    text = page.read_text()
    assert "data:image/png;base64," in text and "nlm" in text


@pytest.mark.parametrize(("kind", "smooth"), [("lesion", None), ("lowdose", 1.0)])
def test_enhance_dncnn_lesion_weights(ct_dicom, tmp_path, kind, smooth):
    """--method dncnn --param kind=lesion (or lowdose, with --param smooth=1) applies those shipped weights; an
    unknown kind and a bad smooth are usage errors."""
    pytest.importorskip("torch")
    from medfuse.nn.denoiser import load_denoiser

    out = tmp_path / "out"
    extra = [] if smooth is None else ["--param", f"smooth={smooth:g}"]
    assert main(["enhance", str(ct_dicom / "s1.dcm"), "-o", str(out / "s1.dcm"), "--method", "dncnn",
                 "--param", f"kind={kind}", *extra]) == 0
    a, b = pydicom.dcmread(ct_dicom / "s1.dcm"), pydicom.dcmread(out / "s1.dcm")
    hu_in = a.pixel_array * float(a.RescaleSlope) + float(a.RescaleIntercept)
    hu_out = b.pixel_array * float(b.RescaleSlope) + float(b.RescaleIntercept)
    want = R.denoise(hu_in.astype(np.float32), load_denoiser(kind=kind, smooth=smooth))
    np.testing.assert_allclose(hu_out, np.rint(want), atol=1)
    assert main(["enhance", str(ct_dicom), "-o", str(tmp_path / "o2"), "--method", "dncnn",
                 "--param", "kind=sharp"]) == 2
    assert main(["enhance", str(ct_dicom), "-o", str(tmp_path / "o3"), "--method", "dncnn",
                 "--param", "smooth=-1"]) == 2


def _series_folder(tmp_path, positions, uid, seed, names=None):
    from pydicom.data import get_testdata_file

    folder = tmp_path / "vol"
    folder.mkdir(exist_ok=True)
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(seed)
    for k, z in enumerate(positions):
        ds = src.copy()
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = f"{uid}.{k + 1}"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        arr = src.pixel_array.astype(np.int32) + rng.integers(-40, 40, src.pixel_array.shape)
        ds.PixelData = np.clip(arr, 0, 4000).astype(src.pixel_array.dtype).tobytes()
        ds.save_as(folder / (names[k] if names else f"{uid[-1]}{k}.dcm"), enforce_file_format=True)
    return folder


def _hu(path):
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_enhance_series_as_volume(tmp_path, capsys):
    """--param z_weight: each series restored as a volume, slices ordered by position (not file name), series
    kept apart; an unevenly spaced series fails as a whole, the rest is written."""
    from scipy import ndimage

    names = ["c.dcm", "a.dcm", "d.dcm", "b.dcm"]
    folder = _series_folder(tmp_path, [0.0, -10.0, -5.0, -15.0], "1.2.3.1", 1, names)
    _series_folder(tmp_path, [0.0, -5.0, -10.0], "1.2.3.2", 2)
    out = tmp_path / "out"
    assert main(["enhance", str(folder), "-o", str(out), "--method", "gaussian", "--param", "sigma=1",
                 "--param", "z_weight=0.25"]) == 0
    assert "7 written, 0 failed" in capsys.readouterr().out
    for group in (["b.dcm", "a.dcm", "d.dcm", "c.dcm"], ["20.dcm", "21.dcm", "22.dcm"][::-1]):
        hu = np.stack([_hu(folder / n).astype(np.float32) for n in group])  # ascending z
        flat = np.stack([R.denoise(h, "gaussian", sigma=1.0) for h in hu]).astype(np.float64)
        want = ndimage.correlate1d(flat, [0.25, 0.5, 0.25], axis=0, mode="nearest")
        got = np.stack([_hu(out / n) for n in group])
        np.testing.assert_allclose(got, np.rint(want), atol=1)
        assert np.abs(got - np.rint(flat)).max() > 5  # the blend did something
    # an unevenly spaced series fails as a whole (no output), another series in the folder is still written
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in folder.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    ds = pydicom.dcmread(bad / "c.dcm")
    ds.ImagePositionPatient = [0.0, 0.0, 3.0]
    ds.save_as(bad / "c.dcm", enforce_file_format=True)
    (bad / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    out2 = tmp_path / "out2"
    assert main(["enhance", str(bad), "-o", str(out2), "--method", "gaussian", "--param", "z_weight=0.25"]) == 1
    err = capsys.readouterr().err
    assert err.count("evenly spaced") == 4 and "broken.dcm" in err
    assert sorted(p.name for p in out2.iterdir()) == ["20.dcm", "21.dcm", "22.dcm"]


def test_enhance_series_refusals(ct_dicom, tmp_path, capsys):
    o = str(tmp_path / "o")
    assert main(["enhance", str(ct_dicom), "-o", o, "--method", "clahe", "--param", "z_weight=0.25"]) == 2
    assert "denoisers" in capsys.readouterr().err
    for bad in ("0.5", "-1", "x"):
        assert main(["enhance", str(ct_dicom), "-o", o, "--method", "gaussian", "--param", f"z_weight={bad}"]) == 2
        assert "z_weight" in capsys.readouterr().err
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), np.zeros((8, 8), np.uint8))
    assert main(["enhance", str(png), "-o", str(tmp_path / "y.png"), "--method", "gaussian",
                 "--param", "z_weight=0.25"]) == 2
    assert "DICOM series" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "y.png").exists()
    # slices of one series at one position cannot be ordered: every file fails, nothing written
    assert main(["enhance", str(ct_dicom), "-o", o, "--method", "gaussian", "--param", "z_weight=0.25"]) == 1
    assert capsys.readouterr().err.count("share a position") == 2
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_enhance_series_with_a_gap_fails_whole(tmp_path, capsys):
    """A missing slice (a step twice the others) would blend slices that are not neighbours: the series fails."""
    folder = _series_folder(tmp_path, [0.0, -5.0, -15.0, -20.0], "1.2.3.3", 3)
    out = tmp_path / "out"
    assert main(["enhance", str(folder), "-o", str(out), "--method", "gaussian", "--param", "z_weight=0.25"]) == 1
    assert capsys.readouterr().err.count("a gap would blend") == 4
    assert not out.exists() or not any(out.iterdir())
