"""Write the seed corpus for the file-reader fuzzers (tests/fuzz/corpus/).

Small valid files for every reader path: DICOM CT slice and X-ray
(MONOCHROME1/2), NIfTI (.nii, .nii.gz), NumPy (.npy, .npz), PNG 8/16-bit,
JPEG, TIFF 16-bit, reports (UTF-8 English, UTF-8 with BOM, Chinese in
UTF-8 and GB18030). Deterministic, so re-running it changes nothing:

    python tests/fuzz/make_corpus.py [outdir]
"""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _dicom(path: Path, *, xray: bool, photometric: str = "MONOCHROME2") -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(7)
    h, w = 12, 10
    ds.Rows, ds.Columns = h, w
    if xray:
        px = rng.integers(0, 4096, (h, w)).astype(np.uint16)
        ds.PixelRepresentation = 0
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PhotometricInterpretation = photometric
        ds.WindowCenter, ds.WindowWidth = 1000, 400
    else:
        px = rng.integers(-1000, 1500, (h, w)).astype(np.int16)
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = px.tobytes()
    # deterministic bytes: fixed UIDs
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path)


def _nifti(path: Path) -> None:
    import nibabel as nib

    vol = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 100
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    img = nib.Nifti1Image(vol, affine)
    img.header.set_xyzt_units("mm")
    raw = img.to_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)


def _open_i_xml(uid: str, findings: str, impression: str, major: list[str], image: str) -> bytes:
    """An Open-I report in the published layout (written for the corpus)."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<eCitation><uId id="{uid}"/><MedlineCitation><Article>'
        f'<Abstract><AbstractText Label="FINDINGS">{findings}</AbstractText>'
        f'<AbstractText Label="IMPRESSION">{impression}</AbstractText></Abstract></Article></MedlineCitation>'
        "<MeSH>" + "".join(f"<major>{m}</major>" for m in major) + "<automatic>lung</automatic></MeSH>"
        f'<parentImage id="{image}"><url>/x/{image}.jpg</url></parentImage></eCitation>'
    ).encode()


def _open_i(add: Any) -> None:
    import tarfile

    one = _open_i_xml("CXR1", "The lungs are clear.", "Normal chest.", ["normal"], "CXR1_1_IM-0001-4001")
    two = _open_i_xml("CXR2", "Heart enlarged.", "Cardiomegaly.", ["Cardiomegaly/mild"], "CXR2_IM-0652-1001")
    add("openi_report.xml").write_bytes(two)
    for name, mode in (("openi_reports.tar", "w"), ("openi_reports.tgz", "w:gz")):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode=mode) as tar:  # type: ignore[call-overload]
            for member, data in (("ecgen-radiology/1.xml", one), ("ecgen-radiology/2.xml", two)):
                info = tarfile.TarInfo(member)
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
        blob = raw.getvalue()
        if mode == "w:gz":  # gzip header time 0: deterministic bytes
            blob = blob[:4] + b"\x00\x00\x00\x00" + blob[8:]
        add(name).write_bytes(blob)


def _image(path: Path, img: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(path.suffix, img)
    assert ok, path
    path.write_bytes(buf.tobytes())


def wav_bytes(samples: np.ndarray, rate: int, *, bits: int, floating: bool = False) -> bytes:
    """A canonical RIFF/WAVE file (no PEAK chunk, so the bytes are deterministic).

    samples: (frames, channels) float in [-1, 1); integer formats as WAV
    stores them (8-bit unsigned with offset 128, 16/24/32-bit signed LE).
    """
    import struct

    channels = samples.shape[1]
    if floating:
        data = samples.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        data = np.clip(np.round(samples * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        ints = np.clip(np.round(samples * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype("<i4")
        if bits == 16:
            data = ints.astype("<i2").tobytes()
        elif bits == 24:
            data = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints.ravel())
        else:
            data = ints.tobytes()
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 3 if floating else 1, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_corpus(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    written = []

    def add(name: str) -> Path:
        written.append(out / name)
        return out / name

    _open_i(add)
    _dicom(add("ct_slice.dcm"), xray=False)
    _dicom(add("xray_mono2.dcm"), xray=True)
    _dicom(add("xray_mono1.dcm"), xray=True, photometric="MONOCHROME1")
    _nifti(add("ct.nii"))
    _nifti(add("ct.nii.gz"))
    buf = io.BytesIO()
    np.save(buf, (rng.integers(-1000, 1000, (3, 4, 5))).astype(np.int16))
    add("ct.npy").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, volume=np.zeros((2, 3, 4), np.int16), spacing=np.array([2.5, 0.7, 0.7]))
    add("ct.npz").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, rng.integers(0, 4096, (6, 7)).astype(np.uint16))
    add("xray.npy").write_bytes(buf.getvalue())
    _image(add("xray8.png"), rng.integers(0, 256, (9, 11)).astype(np.uint8))
    _image(add("xray16.png"), rng.integers(0, 65536, (9, 11)).astype(np.uint16))
    _image(add("xray.jpg"), rng.integers(0, 256, (8, 8)).astype(np.uint8))
    _image(add("xray16.tif"), rng.integers(0, 65536, (5, 6)).astype(np.uint16))
    add("report_en.txt").write_bytes(b"Findings: no focal consolidation.\r\n\r\nImpression:\tnormal chest.\n")
    add("report_bom.txt").write_bytes("\ufeffNo pleural effusion.\n".encode("utf-8"))
    zh = "\u53f3\u80ba\u4e0a\u53f6\u89c1\u7ed3\u8282\uff0c\u672a\u89c1\u80f8\u8154\u79ef\u6db2\u3002\n"
    add("report_zh_utf8.txt").write_bytes(zh.encode("utf-8"))
    add("report_zh_gb18030.txt").write_bytes(zh.encode("gb18030"))
    t = np.arange(120) / 4000.0
    tone = (0.5 * np.sin(2 * np.pi * 300 * t))[:, None]
    stereo = np.concatenate([tone, 0.25 * rng.standard_normal((120, 1)).clip(-1, 0.99)], axis=1)
    add("audio_u8.wav").write_bytes(wav_bytes(tone, 4000, bits=8))
    add("audio_16.wav").write_bytes(wav_bytes(stereo, 4000, bits=16))
    add("audio_24.wav").write_bytes(wav_bytes(tone, 8000, bits=24))
    add("audio_32.wav").write_bytes(wav_bytes(tone, 4000, bits=32))
    add("audio_f32.wav").write_bytes(wav_bytes(stereo, 4000, bits=32, floating=True))
    import soundfile as sf

    sf.write(add("audio_16.flac"), stereo, 4000, subtype="PCM_16", format="FLAC")
    sf.write(add("audio_24.flac"), tone, 4000, subtype="PCM_24", format="FLAC")
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    for p in write_corpus(target):
        print(f"{p.stat().st_size:6d}  {p}")
