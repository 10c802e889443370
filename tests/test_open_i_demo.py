"""`medfuse demo --open-i PATH` on a small hand-made Open-I download (reports archive + PNG folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfuse.cli import main
from test_datasets import make_tgz, report_xml, write_images

NORMAL = ("The heart is normal in size. The lungs are clear.", "No acute cardiopulmonary disease.")
ABNORMAL = ("The heart is enlarged. Small right pleural effusion.", "Cardiomegaly with effusion.")


def write_download(root: Path, n: int = 24) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files, ids = {}, []
    for k in range(1, n + 1):
        abnormal = k % 2 == 0
        findings, impression = ABNORMAL if abnormal else NORMAL
        major = ["Cardiomegaly/mild", "Pleural Effusion/right/small"] if abnormal else ["normal"]
        img = f"CXR{k}_IM-{k:04d}-1001"
        ids.append(img)
        files[f"ecgen-radiology/{k}.xml"] = report_xml(f"CXR{k}", findings, impression, major, [img])
    files["ecgen-radiology/999.xml"] = report_xml("CXR999", "x", "y", ["No Indexing"], [])  # left out
    make_tgz(root / "NLMCXR_reports.tgz", files)
    write_images(root / "NLMCXR_png", ids)
    return root


def test_demo_open_i_runs_and_learns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    download = write_download(tmp_path / "openi")
    out = tmp_path / "out"
    code = main(["demo", "--open-i", str(download), "--out", str(out), "--folds", "3", "--workers", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "24 of 24 reports; 1 unlabelled report(s) left out" in text
    assert (out / "report.html").is_file() and (out / "features.parquet").is_file()
    import pandas as pd

    table = pd.read_csv(out / "results.csv")
    assert set(table["model"]) >= {"xray", "report", "late fusion"} and not {"ct", "audio"} & set(table["model"])
    report_auc = float(table.loc[table["model"] == "report", "auc_mean"].iloc[0])
    # the reports separate the classes perfectly: the report model must find it
    assert report_auc > 0.9, table


def test_demo_open_i_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--open-i", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["demo", "--open-i", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no report XML, NLMCXR_reports.tgz or ecgen-radiology/" in capsys.readouterr().err
    assert main(["demo", "--images", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--images goes with --open-i" in capsys.readouterr().err
    download = write_download(tmp_path / "small", n=4)
    assert main(["demo", "--open-i", str(download), "--out", str(tmp_path / "o")]) == 2
    assert "too few for 5-fold cross-validation" in capsys.readouterr().err
