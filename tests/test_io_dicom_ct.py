"""read_ct on DICOM: CT only, spacing rules (which source gives dz), enhanced multi-frame CT.

Real files: pydicom's own CT_small.dcm and MR_small.dcm, and from the
pydicom-data package (installed as a package, no network) RG1_UNCR.dcm (a CR
chest radiograph) and eCT_Supplemental.dcm (an enhanced CT, 2 frames).
Expected values are computed here with pydicom directly.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from medfuse.data import io as mio


def _testdata(name: str) -> str:
    path = get_testdata_file(name, download=False)  # never the network at test time
    if path is None:
        pytest.skip(f"{name} needs the pydicom-data package (test extra)")
    return str(path)


CT_SMALL = _testdata("CT_small.dcm")


def _single(tmp_path, name="one.dcm", **changes):
    ds = pydicom.dcmread(CT_SMALL)
    for k, v in changes.items():
        if v is None:
            if k in ds:
                delattr(ds, k)
        else:
            setattr(ds, k, v)
    p = tmp_path / name
    ds.save_as(p)
    return p


# ---------------------------------------------------------------- CT only


def test_cr_radiograph_refused_as_ct():
    cr = _testdata("RG1_UNCR.dcm")
    assert pydicom.dcmread(cr, stop_before_pixels=True).Modality == "CR"
    with pytest.raises(mio.MedfuseIOError, match=r"Modality 'CR'.*not CT.*read_xray.*allow_non_ct") as info:
        mio.read_ct(cr)
    assert info.value.path == cr


def test_mr_refused_unless_allowed():
    mr = _testdata("MR_small.dcm")
    with pytest.raises(mio.MedfuseIOError, match=r"Modality 'MR'.*not CT.*allow_non_ct=True"):
        mio.read_ct(mr)
    vol = mio.read_ct(mr, allow_non_ct=True)
    ds = pydicom.dcmread(mr)
    np.testing.assert_array_equal(vol.array[0], ds.pixel_array.astype(np.int16))
    assert vol.metadata["modality"] == "MR"
    assert vol.spacing == pytest.approx((float(ds.SliceThickness), *map(float, ds.PixelSpacing)))


def test_missing_modality_refused(tmp_path):
    p = _single(tmp_path, Modality=None)
    with pytest.raises(mio.MedfuseIOError, match=r"no Modality"):
        mio.read_ct(p)


def test_cr_in_a_manifest_ct_column_is_a_read_error(tmp_path):
    import shutil

    from medfuse.data import Cohort

    pd = pytest.importorskip("pandas")
    shutil.copy(_testdata("RG1_UNCR.dcm"), tmp_path / "chest.dcm")
    pd.DataFrame({"patient_id": ["A"], "label": [0], "ct": ["chest.dcm"]}).to_csv(tmp_path / "m.csv", index=False)
    cohort = Cohort.from_csv(tmp_path / "m.csv")
    with pytest.raises(mio.MedfuseIOError, match="not CT"):
        cohort["A"]


# ---------------------------------------------------------------- pixel spacing


@pytest.mark.parametrize("value", [[0.0, 0.0], [0.7, 0.0], None], ids=["zero", "zero-column", "missing"])
def test_zero_or_missing_pixel_spacing_refused_at_read(tmp_path, value):
    p = _single(tmp_path, PixelSpacing=value)
    with pytest.raises(mio.MedfuseIOError, match=r"PixelSpacing.*positive.*spacing="):
        mio.read_ct(p)
    assert mio.read_ct(p, spacing=(2, 0.5, 0.5)).spacing == (2.0, 0.5, 0.5)  # the argument overrides


def test_cr_with_zero_pixel_spacing_refused_even_when_allowed():
    with pytest.raises(mio.MedfuseIOError, match=r"PixelSpacing \['0\.000', '0\.000'\].*must be positive"):
        mio.read_ct(_testdata("RG1_UNCR.dcm"), allow_non_ct=True)


# ---------------------------------------------------------------- where dz comes from


def _series(folder, n, dz, **changes):
    folder.mkdir()
    base = pydicom.dcmread(CT_SMALL)
    origin = np.array([float(v) for v in base.ImagePositionPatient])
    uid = generate_uid()
    for k in range(n):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [float(v) for v in origin + np.array([0, 0, k * dz])]
        for key, v in changes.items():
            setattr(ds, key, v)
        ds.save_as(folder / f"{k}.dcm")


def test_dz_from_positions_wins_over_spacing_between_slices_and_thickness(tmp_path):
    _series(tmp_path / "s", 4, 1.25, SpacingBetweenSlices=9.0, SliceThickness=7.0)
    vol = mio.read_ct(tmp_path / "s")
    assert vol.spacing[0] == pytest.approx(1.25)
    assert vol.metadata["spacing_source"].startswith("dz from slice positions")
    assert vol.metadata["slice_thickness"] == pytest.approx(7.0)


def test_one_slice_dz_from_spacing_between_slices_first(tmp_path):
    vol = mio.read_ct(_single(tmp_path, SpacingBetweenSlices=3.0, SliceThickness=5.0))
    assert vol.spacing[0] == 3.0 and "SpacingBetweenSlices" in vol.metadata["spacing_source"]


@pytest.mark.parametrize("sbs", [None, 0.0], ids=["absent", "zero"])
def test_one_slice_dz_from_slice_thickness_when_no_spacing_between(tmp_path, sbs):
    vol = mio.read_ct(_single(tmp_path, SpacingBetweenSlices=sbs, SliceThickness=4.0))
    assert vol.spacing[0] == 4.0 and "SliceThickness" in vol.metadata["spacing_source"]


def test_one_slice_without_any_dz_refused(tmp_path):
    p = _single(tmp_path, SpacingBetweenSlices=None, SliceThickness=None)
    with pytest.raises(mio.MedfuseIOError, match=r"slice spacing is unknown.*spacing="):
        mio.read_ct(p)
    assert mio.read_ct(p, spacing=(2.0, 1.0, 1.0)).spacing == (2.0, 1.0, 1.0)


# ---------------------------------------------------------------- enhanced (multi-frame) CT


def _expected_enhanced(ds):
    """Frames, (dz, dy, dx) and HU computed with pydicom only, independently of medfuse."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    per = ds.PerFrameFunctionalGroupsSequence

    def item(k, name):
        if name in per[k]:
            return per[k][name][0]
        return shared[name][0]

    iop = np.array(item(0, "PlaneOrientationSequence").ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    z = [float(np.dot(np.array(item(k, "PlanePositionSequence").ImagePositionPatient, float), normal))
         for k in range(len(per))]
    order = np.argsort(z)[::-1] if normal[2] >= 0 else np.argsort(z)  # superior (largest LPS z) first
    px = ds.pixel_array
    hu = []
    for k in order:
        t = item(int(k), "PixelValueTransformationSequence")
        hu.append(px[k] * float(t.RescaleSlope) + float(t.RescaleIntercept))
    ps = item(0, "PixelMeasuresSequence").PixelSpacing
    steps = np.abs(np.diff(np.sort(z)))
    lps_z = [float(item(int(k), "PlanePositionSequence").ImagePositionPatient[2]) for k in order]
    return np.stack(hu), (float(steps.min()), float(ps[0]), float(ps[1])), lps_z


def test_enhanced_ct_frames_ordered_by_position_with_functional_group_spacing_and_rescale():
    path = _testdata("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    assert int(ds.NumberOfFrames) == 2 and "PixelSpacing" not in ds and "RescaleIntercept" not in ds
    want, spacing, lps_z = _expected_enhanced(ds)
    vol = mio.read_ct(path)
    np.testing.assert_array_equal(vol.array, want.astype(np.int16))
    assert vol.spacing == pytest.approx(spacing)
    assert lps_z[0] > lps_z[1]  # head first
    assert vol.origin[2] == pytest.approx(lps_z[0])
    assert vol.metadata["n_frames"] == 2


def test_enhanced_ct_per_frame_rescale_and_order_not_frame_number(tmp_path):
    ds = pydicom.dcmread(_testdata("eCT_Supplemental.dcm"))
    # Four frames: the file's two, twice, with positions out of order and a per-frame rescale.
    px = ds.pixel_array
    frames = np.stack([px[0], px[1], px[1], px[0]])
    ds.NumberOfFrames = 4
    ds.PixelData = frames.astype(px.dtype).tobytes()
    base = ds.PerFrameFunctionalGroupsSequence[0]
    pos0 = [float(v) for v in base.PlanePositionSequence[0].ImagePositionPatient]
    items = []
    for k, dz_index in enumerate([2, 0, 3, 1]):
        it = copy.deepcopy(base)
        it.PlanePositionSequence[0].ImagePositionPatient = [pos0[0], pos0[1], pos0[2] + 2.5 * dz_index]
        t = Dataset()
        t.RescaleSlope = 1 + k % 2
        t.RescaleIntercept = -1000 - 10 * k
        t.RescaleType = "HU"
        it.PixelValueTransformationSequence = Sequence([t])
        items.append(it)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    p = tmp_path / "enhanced.dcm"
    ds.save_as(p)
    ds = pydicom.dcmread(p)
    want, spacing, lps_z = _expected_enhanced(ds)
    vol = mio.read_ct(p)
    np.testing.assert_array_equal(vol.array, want.astype(np.int16))
    assert vol.spacing == pytest.approx(spacing) and spacing[0] == pytest.approx(2.5)
    assert list(np.diff(lps_z)) == pytest.approx([-2.5] * 3)


def test_multi_frame_without_functional_groups_refused(tmp_path):
    ds = pydicom.dcmread(_testdata("eCT_Supplemental.dcm"))
    del ds.PerFrameFunctionalGroupsSequence
    p = tmp_path / "bad.dcm"
    ds.save_as(p)
    with pytest.raises(mio.MedfuseIOError, match="no PerFrameFunctionalGroupsSequence"):
        mio.read_ct(p)


# ---------------------------------------------------------------- pixel data read without pydicom's decoders


def _native_files():
    """pydicom's and pydicom-data's uncompressed files (every one that decodes),
    found on disk (pydicom's get_testdata_files would try the network)."""
    from pathlib import Path

    from pydicom.data import data_manager

    roots = [Path(data_manager.DATA_ROOT) / "test_files"]
    roots += [Path(src.data_path) for src in data_manager.external_data_sources().values()]
    out = []
    for path in sorted({str(f) for root in roots for f in root.rglob("*.dcm")}):
        try:
            head = pydicom.dcmread(path, stop_before_pixels=True)
            if str(getattr(head, "file_meta", Dataset()).get("TransferSyntaxUID", "")) not in mio._NATIVE_LE:
                continue
            ds = pydicom.dcmread(path)
            want = ds.pixel_array
        except Exception:
            continue
        out.append((path, ds, want))
    return out


def test_native_pixels_equal_pydicom_on_real_files():
    """Every shipped uncompressed file: the direct read gives pydicom's array
    (values and dtype), and files it does not take go through pydicom."""
    files = _native_files()
    assert len(files) >= 10
    direct = 0
    for path, ds, want in files:
        got = mio._pixels(ds)
        assert got.dtype == want.dtype, path
        np.testing.assert_array_equal(got, want, err_msg=path)
        direct += want.ndim == 2 and int(ds.get("SamplesPerPixel", 1) or 1) == 1
    assert direct >= 5  # the direct path really ran on real files


@pytest.mark.parametrize("allocated,stored,signed", [(16, 16, 0), (16, 16, 1), (16, 12, 0), (16, 12, 1),
                                                     (16, 1, 1), (8, 8, 0), (8, 8, 1), (8, 5, 1), (8, 3, 0)])
@pytest.mark.parametrize("explicit", [False, True])
def test_native_pixels_unused_bits_as_pydicom(tmp_path, allocated, stored, signed, explicit):
    """Garbage in the unused high bits, odd sizes, a padding byte: the direct
    read equals pydicom's pixel_array (which shifts the unused bits out)."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    rng = np.random.default_rng(allocated * 100 + stored * 2 + signed)
    rows, cols = 7, 5
    dt = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    info = np.iinfo(dt)
    px = rng.integers(info.min, info.max, (rows, cols), endpoint=True).astype(dt)
    ds = pydicom.dcmread(CT_SMALL)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, stored, stored - 1, signed
    raw = px.tobytes()
    ds.PixelData = raw + (b"\0" if len(raw) % 2 else b"")
    ds["PixelData"].VR = "OW" if allocated == 16 else "OB"
    p = tmp_path / "x.dcm"
    ds.save_as(p, enforce_file_format=True)
    back = pydicom.dcmread(p)
    want = back.pixel_array
    got = mio._pixels(back)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_native_pixels_short_data_goes_to_pydicom(tmp_path):
    """Pixel data shorter than Rows x Columns: not read directly; pydicom's own
    error reaches the caller as a MedfuseIOError naming the file."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    p = tmp_path / "short.dcm"
    ds.save_as(p)
    with pytest.raises(mio.MedfuseIOError, match="pixel data") as info:
        mio.read_ct(p)
    assert str(info.value.path) == str(p)


_NUMBER_KEYWORDS = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                    "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept"]


def _as_numbers(v):
    if v is None or v == "":
        return v
    try:
        return [float(x) for x in v]
    except TypeError:
        return [float(v)]


def test_number_text_equals_pydicom_on_real_files():
    """The DS/IS values read straight from the raw bytes equal pydicom's decoded values on every shipped file."""
    from pathlib import Path

    from pydicom.data import data_manager

    roots = [Path(data_manager.DATA_ROOT) / "test_files"]
    roots += [Path(src.data_path) for src in data_manager.external_data_sources().values()]
    seen = 0
    for path in sorted({str(f) for root in roots for f in root.rglob("*.dcm")}):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            want = {kw: _as_numbers(ds.get(kw)) for kw in _NUMBER_KEYWORDS}
        except Exception:
            continue
        fresh = pydicom.dcmread(path, stop_before_pixels=True)  # undecoded: the raw-bytes path
        for kw in _NUMBER_KEYWORDS:
            assert _as_numbers(mio._number_text(fresh, kw)) == want[kw], (path, kw)
            seen += want[kw] not in (None, "")
    assert seen >= 50


@pytest.mark.parametrize("raw,want", [(b"1.5", 1.5), (b" -2.25e1 ", -22.5), (b"1\\2\\3 ", [1.0, 2.0, 3.0]),
                                      (b"", None), (b"  ", ""), (b"0", 0.0), (b"12 ", 12.0)])
def test_number_text_parses_ds_strings(tmp_path, raw, want):
    ds = pydicom.dcmread(CT_SMALL)
    ds["SliceThickness"].value = raw.decode()
    p = tmp_path / "x.dcm"
    ds.save_as(p)
    fresh = pydicom.dcmread(p, stop_before_pixels=True)
    assert mio._number_text(fresh, "SliceThickness") == want
    assert _as_numbers(mio._number_text(fresh, "SliceThickness")) == _as_numbers(pydicom.dcmread(p).get("SliceThickness"))


def test_number_text_falls_back_to_pydicom_on_bad_text(tmp_path):
    """Text that is not a number: pydicom's own value (and read_ct's existing rules) decide."""
    ds = pydicom.dcmread(CT_SMALL)
    p = tmp_path / "x.dcm"
    ds.save_as(p)
    raw = p.read_bytes()
    fresh = pydicom.dcmread(p, stop_before_pixels=True)
    elem = fresh.get_item("SliceThickness")
    patched = raw[: elem.value_tell] + b"x" * elem.length + raw[elem.value_tell + elem.length:]
    p.write_bytes(patched)
    bad = pydicom.dcmread(p, stop_before_pixels=True)
    got = mio._number_text(bad, "SliceThickness")
    assert got == pydicom.dcmread(p, stop_before_pixels=True).get("SliceThickness") == "xxxxxxxx"
