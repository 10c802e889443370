"""medfuse.data.datasets: the Open-I loader and the DICOM-folder + CSV loader, on hand-made fixtures."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from medfuse.data import CohortError
from medfuse.data.datasets import dicom_folder, open_i, parse_open_i_report

# Written for these tests in the published Open-I layout (not copied from the collection).
REPORTS = {
    "1.xml": dict(uid="CXR1", findings="The heart is normal in size. The lungs are clear.",
                  impression="No acute cardiopulmonary disease.", major=["normal"],
                  images=["CXR1_1_IM-0001-4001", "CXR1_1_IM-0001-3001"]),
    "2.xml": dict(uid="CXR2", findings="Borderline cardiomegaly. No focal consolidation.",
                  impression="Mild cardiomegaly.", major=["Cardiomegaly/borderline", "Opacity/lung/base/left/mild"],
                  images=["CXR2_IM-0652-1001"]),
    "10.xml": dict(uid="CXR10", findings="", impression="Calcified granuloma right upper lobe.",
                   major=["Calcified Granuloma/lung/upper lobe/right"], images=["CXR10_IM-0002-1001", "CXR10_IM-0002-2001"]),
    "3.xml": dict(uid="CXR3", findings="Normal chest.", impression="", major=["normal"], images=[]),
}


def report_xml(uid: str, findings: str, impression: str, major: list[str], images: list[str],
               automatic: tuple[str, ...] = ("lung",)) -> bytes:
    def section(label: str, text: str) -> str:
        return f'<AbstractText Label="{label}">{text}</AbstractText>'

    mesh = "".join(f"<major>{m}</major>" for m in major) + "".join(f"<automatic>{a}</automatic>" for a in automatic)
    imgs = "".join(
        f'<parentImage id="{i}"><figureId>F{k + 1}</figureId><caption>Xray Chest PA and Lateral</caption>'
        f"<panel type=\"single\"><url>/hadoop/storage/radiology/extract/{i}.jpg</url></panel></parentImage>"
        for k, i in enumerate(images)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<eCitation><meta type="rr"/>'
        f'<uId id="{uid}"/><pmcId id="{uid[3:]}"/><docSource>CXR</docSource><IUXRId id="{uid[3:]}"/>'
        "<MedlineCitation Owner=\"Indiana University\" Status=\"supplied by publisher\"><Article PubModel=\"Electronic\">"
        "<Journal><JournalIssue><PubDate><Year>2013</Year><Month>08</Month></PubDate></JournalIssue></Journal>"
        "<ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle><Abstract>"
        + section("COMPARISON", "None.") + section("INDICATION", "Chest pain.")
        + section("FINDINGS", findings) + section("IMPRESSION", impression)
        + "</Abstract></Article></MedlineCitation>"
        + f"<MeSH>{mesh}</MeSH>{imgs}</eCitation>"
    ).encode()


def write_images(folder: Path, ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in ids:
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (24, 20), dtype=np.uint8))


@pytest.fixture
def openi_folder(tmp_path: Path) -> tuple[Path, Path]:
    rep = tmp_path / "ecgen-radiology"
    rep.mkdir()
    for name, r in REPORTS.items():
        (rep / name).write_bytes(report_xml(**r))
    imgs = tmp_path / "NLMCXR_png"
    write_images(imgs, [i for r in REPORTS.values() for i in r["images"]])
    return rep, imgs


def make_tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_parse_report_sections_mesh_images() -> None:
    r = parse_open_i_report(report_xml(**REPORTS["2.xml"]), "2.xml")
    assert r["uid"] == "CXR2"
    assert r["findings"] == "Borderline cardiomegaly. No focal consolidation."
    assert r["impression"] == "Mild cardiomegaly."
    assert r["indication"] == "Chest pain." and r["comparison"] == "None."
    assert r["major"] == ["Cardiomegaly/borderline", "Opacity/lung/base/left/mild"]
    assert r["automatic"] == ["lung"]
    assert r["images"] == ["CXR2_IM-0652-1001"]


def test_parse_report_mesh_below_the_root_and_whitespace() -> None:
    xml = (b'<eCitation><uId id="CXR7"/><MedlineCitation><MeSH><major>  Cardiomegaly/mild \n</major>'
           b"<minor>Lung/hyperdistention</minor></MeSH><Article><Abstract>"
           b'<AbstractText Label="findings">Heart  is\n enlarged. XXXX</AbstractText></Abstract></Article>'
           b"</MedlineCitation></eCitation>")
    r = parse_open_i_report(xml, "7.xml")
    assert r["major"] == ["Cardiomegaly/mild"] and r["findings"] == "Heart is enlarged. XXXX"
    assert r["impression"] == "" and r["images"] == [] and r["automatic"] == []


def test_open_i_folder_cohort(openi_folder: tuple[Path, Path]) -> None:
    rep, imgs = openi_folder
    c = open_i(rep, imgs)
    # natural file order (1, 2, 3, 10), ids from <uId>
    assert c.patient_ids == ["CXR1", "CXR2", "CXR3", "CXR10"]
    assert c.labels.tolist() == [0, 1, 0, 1]
    f = c.frame.set_index("patient_id")
    assert f.loc["CXR2", "mesh_cardiomegaly"] == 1.0 and f.loc["CXR1", "mesh_cardiomegaly"] == 0.0
    assert f.loc["CXR2", "mesh_opacity"] == 1.0 and f.loc["CXR10", "mesh_calcified_granuloma"] == 1.0
    assert sorted(c for c in f.columns if c.startswith("mesh_") and c != "mesh_major") == [
        "mesh_calcified_granuloma", "mesh_cardiomegaly", "mesh_opacity"]
    rec = c["CXR1"]
    assert rec.report == "The heart is normal in size. The lungs are clear.\nNo acute cardiopulmonary disease."
    # the first listed image is taken as the frontal one; it is read as written
    expected = cv2.imread(str(imgs / "CXR1_1_IM-0001-4001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(rec.xray, expected)
    assert c["CXR10"].report == "Calcified granuloma right upper lobe."
    assert c["CXR3"].xray is None  # a report without images
    assert c.has("xray").tolist() == [True, True, False, True]


def test_open_i_tgz_equals_folder_and_without_images(openi_folder: tuple[Path, Path], tmp_path: Path) -> None:
    rep, _ = openi_folder
    tgz = make_tgz(tmp_path / "NLMCXR_reports.tgz",
                   {f"ecgen-radiology/{p.name}": p.read_bytes() for p in sorted(rep.iterdir())})
    a, b = open_i(tgz), open_i(rep)
    cols = [c for c in a.frame.columns if c != "source"]
    pd.testing.assert_frame_equal(a.frame[cols], b.frame[cols])
    assert "xray" not in a.frame.columns and a.has("xray").sum() == 0
    assert a["CXR2"].report == b["CXR2"].report


def test_open_i_projections_pick_frontal(openi_folder: tuple[Path, Path], tmp_path: Path) -> None:
    rep, imgs = openi_folder
    proj = tmp_path / "indiana_projections.csv"
    proj.write_text("uid,filename,projection\n1,CXR1_1_IM-0001-4001.dcm.png,Lateral\n1,CXR1_1_IM-0001-3001.dcm.png,Frontal\n"
                    "2,CXR2_IM-0652-1001.dcm.png,Frontal\n10,CXR10_IM-0002-1001.dcm.png,Lateral\n")
    c = open_i(rep, imgs, projections=proj)
    assert c.frame.set_index("patient_id").loc["CXR1", "xray"].name == "CXR1_1_IM-0001-3001.png"
    assert c["CXR10"].xray is None  # only a lateral view is known: no frontal X-ray
    bad = tmp_path / "p.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="projections must be a CSV with columns 'filename' and 'projection'"):
        open_i(rep, imgs, projections=bad)


def test_open_i_reports_every_problem_at_once(tmp_path: Path) -> None:
    rep = tmp_path / "reports"
    rep.mkdir()
    (rep / "1.xml").write_bytes(report_xml(**REPORTS["1.xml"]))
    (rep / "2.xml").write_bytes(b"<eCitation><uId id='CXR2'/><MeSH><major>normal</major>")  # truncated
    (rep / "3.xml").write_bytes(report_xml("CXR3", "x", "y", ["No Indexing"], []))
    (rep / "4.xml").write_bytes(report_xml("CXR4", "x", "y", ["normal", "Cardiomegaly/mild"], []))
    (rep / "5.xml").write_bytes(report_xml("CXR5", "x", "y", [], []))
    (rep / "6.xml").write_bytes(report_xml("CXR1", "x", "y", ["normal"], []))  # duplicate id
    (rep / "7.xml").write_bytes(b"<html><body>Not found</body></html>")
    (rep / "8.xml").write_bytes(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><eCitation>&a;</eCitation>')
    (rep / "9.xml").write_bytes(b'<?xml version="1.0" encoding="udf-8"?><eCitation/>')  # found by tests/fuzz
    imgs = tmp_path / "png"
    write_images(imgs, ["CXR1_1_IM-0001-4001"])  # the second image of report 1 is missing
    with pytest.raises(CohortError) as info:
        open_i(rep, imgs)
    msgs = info.value.problems
    joined = "\n".join(msgs)
    assert len(msgs) == 9, joined
    for needle in ("2.xml: malformed XML", "3.xml (CXR3): MeSH major term 'No Indexing'",
                   "4.xml (CXR4): MeSH major terms say both 'normal' and ['cardiomegaly']",
                   "5.xml (CXR5): no MeSH <major> term", "6.xml: report id 'CXR1' also in 1.xml",
                   "7.xml: not an Open-I report (root element <html>", "8.xml: XML declares a DOCTYPE",
                   "9.xml: malformed XML: bad encoding",
                   "1.xml (CXR1): image(s) CXR1_1_IM-0001-3001.png referenced but not in"):
        assert needle in joined, (needle, joined)


def test_open_i_drop_unlabelled(tmp_path: Path) -> None:
    rep = tmp_path / "reports"
    rep.mkdir()
    (rep / "1.xml").write_bytes(report_xml(**REPORTS["1.xml"]))
    (rep / "2.xml").write_bytes(report_xml(**REPORTS["2.xml"]))
    (rep / "3.xml").write_bytes(report_xml("CXR3", "x", "y", ["No Indexing"], []))
    c = open_i(rep, unlabelled="drop")
    assert c.patient_ids == ["CXR1", "CXR2"] and c.unlabelled == ["CXR3"]


def test_open_i_bad_arguments_and_empty_archives(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Open-I reports not found"):
        open_i(tmp_path / "nope.tgz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CohortError, match=r"no report XML files \(\*\.xml\)"):
        open_i(empty)
    tgz = make_tgz(tmp_path / "r.tgz", {"readme.txt": b"hello"})
    with pytest.raises(CohortError, match=r"no report XML files"):
        open_i(tgz)
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"\x1f\x8b\x08not really gzip")
    with pytest.raises(CohortError, match="not a readable .tgz/.tar archive"):
        open_i(junk)
    with pytest.raises(ValueError, match="unlabelled must be 'error' or 'drop'"):
        open_i(empty, unlabelled="keep")
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="images must be the unpacked NLMCXR_png folder"):
        open_i(empty, f)
    with pytest.raises(FileNotFoundError, match="Open-I image folder not found"):
        open_i(empty, tmp_path / "missing")


# ------------------------------------------------------------------ DICOM folder


def _write_dicom(path: Path, *, modality: str, patient: str, series: str, z: float = 0.0, value: int = 0) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality, ds.PatientID, ds.SeriesInstanceUID = modality, patient, series
    ds.Rows, ds.Columns = 8, 6
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if modality == "CT":
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.PixelSpacing = [0.7, 0.7]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = np.full((8, 6), value, dtype=np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _hospital(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    for k in range(3):
        _write_dicom(root / "A" / "ct" / f"{k}.dcm", modality="CT", patient="A", series="1.2.3", z=-2.0 * k, value=1000 + k)
    _write_dicom(root / "A" / "cxr" / "1.dcm", modality="CR", patient="A", series="1.2.4", value=7)
    _write_dicom(root / "B" / "dx.dcm", modality="DX", patient="B", series="1.2.5", value=9)
    (root / "DICOMDIR").write_bytes(b"")  # skipped
    return root


def test_dicom_folder_cohort(tmp_path: Path) -> None:
    root = _hospital(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("patient_id,label,report\nA,1,Mass in the right upper lobe.\nB,0,\nC,0,Normal chest.\n")
    c = dicom_folder(root, labels)
    assert c.patient_ids == ["A", "B", "C"] and c.labels.tolist() == [1, 0, 0]
    a = c["A"]
    assert a.ct is not None and a.ct.shape == (3, 8, 6)
    assert a.ct.array[:, 0, 0].tolist() == [-24, -23, -22]  # HU = stored - 1024, superior slice first
    assert a.xray is not None and int(a.xray[0, 0]) == 7 and a.report == "Mass in the right upper lobe."
    b = c["B"]
    assert b.ct is None and int(b.xray[0, 0]) == 9 and b.report is None
    assert c["C"].ct is None and c["C"].xray is None and c["C"].report == "Normal chest."
    by_tag = dicom_folder(root, labels, by="tag")
    assert by_tag.has("ct").tolist() == c.has("ct").tolist()


def test_dicom_folder_reports_every_problem(tmp_path: Path) -> None:
    root = _hospital(tmp_path)
    (root / "A" / "ct" / "notes.txt").write_text("not dicom")  # not DICOM, and shares the CT folder
    _write_dicom(root / "D" / "x.dcm", modality="CR", patient="D", series="9")  # no label row
    labels = tmp_path / "labels.csv"
    labels.write_text("patient_id,label\nA,1\nB,\nE,0\n")  # B: empty label; E: no data
    with pytest.raises(CohortError) as info:
        dicom_folder(root, labels)
    joined = "\n".join(info.value.problems)
    for needle in ("A/ct/notes.txt: not a readable DICOM file", "shares folder A/ct with 1 other file(s) (notes.txt)",
                   "1 patient(s) with images but no row in labels.csv: D",
                   "1 patient(s) in labels.csv without images or report: E"):
        assert needle in joined, (needle, joined)
    (root / "A" / "ct" / "notes.txt").unlink()
    labels.write_text("patient_id,label\nA,1\nB,\n")
    with pytest.raises(CohortError, match="label missing for 1 patient"):
        dicom_folder(root, labels, unlabelled="drop")
    labels.write_text("patient_id,label\nA,1\nB,0\n")
    c = dicom_folder(root, labels, unlabelled="drop")
    assert c.unlabelled == ["D"] and c.patient_ids == ["A", "B"]


def test_dicom_folder_bad_arguments(tmp_path: Path) -> None:
    root = _hospital(tmp_path)
    labels = tmp_path / "l.csv"
    labels.write_text("id,y\nA,1\n")
    with pytest.raises(CohortError, match="no 'patient_id' column"):
        dicom_folder(root, labels)
    with pytest.raises(FileNotFoundError, match="labels CSV not found"):
        dicom_folder(root, tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError, match="DICOM folder not found"):
        dicom_folder(tmp_path / "none", labels)
    with pytest.raises(ValueError, match="by must be 'folder' or 'tag'"):
        dicom_folder(root, labels, by="name")
    labels.write_text("patient_id,label,xray\nA,1,a.png\n")
    with pytest.raises(CohortError, match=r"column\(s\) \['xray'\] come from the DICOM folder"):
        dicom_folder(root, labels)
