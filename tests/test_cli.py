"""The ``medfuse`` CLI end to end on a small cohort written to real DICOM/PNG/TXT files.

Covers extract (threads, processes, Dask), the checkpoint/resume contract
(an interrupted in-process run and a killed subprocess), atomic output,
train / predict / evaluate, a small demo, and every error path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medfuse.extract as mx
from medfuse.cli import main
from medfuse.data import synthetic_cohort

N = 16
_REAL_RUN_TASK = mx.run_task


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    synthetic_cohort(N, seed=3, missing=0.1, out_dir=out, shape=(24, 64, 64))
    return out


@pytest.fixture(scope="module")
def features(cohort_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("features") / "features.parquet"
    assert main(["extract", str(cohort_dir / "manifest.csv"), "-o", str(out), "--workers", "2", "--no-progress"]) == 0
    return out


def _manifest(cohort_dir: Path) -> pd.DataFrame:
    return pd.read_csv(cohort_dir / "manifest.csv", dtype={"patient_id": str}, keep_default_na=False)


# ------------------------------------------------------------------ extract


def test_extract_threads(features: Path, cohort_dir: Path) -> None:
    frame = pd.read_parquet(features)
    man = _manifest(cohort_dir)
    assert list(frame["patient_id"]) == list(man["patient_id"])  # manifest order, nobody lost
    assert list(frame["label"]) == list(man["label"])
    ct_cols = [c for c in frame.columns if c.startswith("ct__")]
    xr_cols = [c for c in frame.columns if c.startswith("xray__")]
    assert ct_cols and xr_cols and "report" in frame.columns
    has_ct = man["ct"] != ""
    # a patient without CT has an all-NaN CT block; with CT, finite features (a statistic
    # may be undefined, NaN, on a tiny nodule ROI, e.g. RobustMeanAbsoluteDeviation)
    assert frame.loc[~has_ct.to_numpy(), ct_cols].isna().all(axis=None)
    assert (np.isfinite(frame.loc[has_ct.to_numpy(), ct_cols].to_numpy()).mean(axis=1) > 0.9).all()
    assert not Path(str(features) + ".partial").exists()  # checkpoint removed after success
    assert not [p for p in features.parent.iterdir() if p.name.endswith(".tmp")]


def test_extract_matches_extractor(features: Path, cohort_dir: Path) -> None:
    """The CLI's numbers are the extractor's numbers on the files read back."""
    from medfuse.data import Cohort

    frame = pd.read_parquet(features).set_index("patient_id")
    cohort = Cohort.from_csv(cohort_dir / "manifest.csv")
    cf = mx.CohortFeatures()
    pid = next(p for p in cohort.patient_ids if cohort[p].xray is not None)
    want = cf.xray.transform([cohort[pid].xray])[0]
    got = frame.loc[pid, [f"xray__{n}" for n in cf.xray.get_feature_names_out()]].to_numpy(dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_extract_processes_same_as_threads(features: Path, cohort_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    code = main(["extract", str(cohort_dir / "manifest.csv"), "-o", str(out), "--backend", "processes",
                 "--workers", "2", "--no-progress"])
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(features))


def test_extract_dask_local_cluster(features: Path, cohort_dir: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    # dashboard_address=":0": the default port 8787 may be taken by another Dask
    # on the machine, and the warning about it is an error here
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        out = tmp_path / "d.parquet"
        code = main(["extract", str(cohort_dir / "manifest.csv"), "-o", str(out), "--backend", "dask",
                     "--scheduler", cluster.scheduler_address, "--no-progress"])
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(features))


def test_dask_scheduler_unreachable(
    cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(mx, "DASK_CONNECT_TIMEOUT", "1s")
    code = main(["extract", str(cohort_dir / "manifest.csv"), "-o", str(tmp_path / "f.parquet"), "--backend", "dask",
                 "--scheduler", "tcp://127.0.0.1:9", "--no-progress"])
    assert code == 2
    assert "cannot connect to the Dask scheduler" in capsys.readouterr().err


def _manifest_with_broken_xray(cohort_dir: Path, tmp_path: Path, only_xray: bool = False) -> tuple[str, Path]:
    """An absolute-path copy of the manifest where one patient's X-ray is a corrupt PNG."""
    man = _manifest(cohort_dir)
    has_all = (man["xray"] != "") & (man["ct"] != "") & (man["report"] != "")
    i = int(np.flatnonzero(has_all.to_numpy())[0])
    bad_pid = man.loc[i, "patient_id"]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    for m in ("ct", "xray", "report", "audio"):
        man[m] = [str(cohort_dir / p) if p else "" for p in man[m]]
    man.loc[i, "xray"] = str(broken)
    if only_xray:
        man.loc[i, "ct"] = man.loc[i, "report"] = man.loc[i, "audio"] = ""
    man.to_csv(tmp_path / "m.csv", index=False)
    return bad_pid, broken


def test_corrupt_xray_keeps_the_patients_ct_and_report(
    cohort_dir: Path, features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_pid, _broken = _manifest_with_broken_xray(cohort_dir, tmp_path)
    out = tmp_path / "f.parquet"
    args = ["extract", str(tmp_path / "m.csv"), "-o", str(out), "--workers", "2", "--no-progress"]
    assert main(args) == 1  # not silent: the exit code says a file failed
    captured = capsys.readouterr()
    assert f"{N} ok" in captured.out and "0 failed, 1 extracted without a modality" in captured.out
    assert f"xray missing for {bad_pid}" in captured.out and "broken.png" in captured.out
    assert f"patient {bad_pid}: xray failed, extracted without it" in captured.err
    frame = pd.read_parquet(out).set_index("patient_id")
    good = pd.read_parquet(features).set_index("patient_id")
    assert list(frame.index) == list(good.index)  # nobody dropped
    ct_cols = [c for c in frame.columns if c.startswith("ct__")]
    xr_cols = [c for c in frame.columns if c.startswith("xray__")]
    assert frame.loc[bad_pid, xr_cols].isna().all()  # the bad modality is missing ...
    pd.testing.assert_series_equal(frame.loc[bad_pid, ct_cols], good.loc[bad_pid, ct_cols])  # ... the CT is intact
    assert frame.loc[bad_pid, "report"] == good.loc[bad_pid, "report"]
    # The checkpoint is kept without that patient: fixing the file and rerunning redoes it alone.
    ckpt = Path(str(out) + ".partial")
    assert len(list(ckpt.glob("*.row.json"))) == N - 1
    man = pd.read_csv(tmp_path / "m.csv", dtype={"patient_id": str}, keep_default_na=False)
    man.loc[man["patient_id"] == bad_pid, "xray"] = str(cohort_dir / bad_pid / "xray.png")
    man.to_csv(tmp_path / "m.csv", index=False)
    calls = _count_calls(monkeypatch)
    assert main(args) == 0
    assert calls == [bad_pid]
    pd.testing.assert_frame_equal(pd.read_parquet(out).set_index("patient_id"), good)
    assert not ckpt.exists()


def test_strict_fails_the_patient_of_a_corrupt_xray(cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_pid, _broken = _manifest_with_broken_xray(cohort_dir, tmp_path)
    out = tmp_path / "f.parquet"
    code = main(["extract", str(tmp_path / "m.csv"), "-o", str(out), "--workers", "2", "--no-progress", "--strict"])
    assert code == 1
    captured = capsys.readouterr()
    assert f"{N - 1} ok" in captured.out and "1 failed" in captured.out
    assert bad_pid in captured.out and "broken.png" in captured.out
    frame = pd.read_parquet(out)
    assert len(frame) == N - 1 and bad_pid not in set(frame["patient_id"])
    # the checkpoint is kept so that a rerun only retries the failed patient
    assert Path(str(out) + ".partial").is_dir()


def test_patient_whose_only_file_fails_is_reported_and_skipped(
    cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_pid, _broken = _manifest_with_broken_xray(cohort_dir, tmp_path, only_xray=True)
    out = tmp_path / "f.parquet"
    assert main(["extract", str(tmp_path / "m.csv"), "-o", str(out), "--workers", "1", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert f"{N - 1} ok" in captured.out and "1 failed" in captured.out
    assert f"failed: {bad_pid}: PatientFailed: xray: MedfuseIOError" in captured.out
    assert bad_pid not in set(pd.read_parquet(out)["patient_id"])


# ------------------------------------------------------------------ resume / atomicity


def _count_calls(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[str]:
    calls: list[str] = []
    real = _REAL_RUN_TASK

    def counting(features: mx.CohortFeatures, task: mx._Task, strict: bool = False) -> dict:
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt  # a crash in the middle of the run
        calls.append(task.patient_id)
        return real(features, task, strict)

    monkeypatch.setattr(mx, "run_task", counting)
    return calls


def test_interrupted_run_resumes_without_redoing(cohort_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "f.parquet"
    out.write_bytes(b"previous output")  # must survive an interrupted run untouched
    args = ["extract", str(cohort_dir / "manifest.csv"), "-o", str(out), "--workers", "1", "--no-progress"]
    first = _count_calls(monkeypatch, fail_at=4)
    assert main(args) == 130
    assert len(first) == 4
    assert out.read_bytes() == b"previous output"
    ckpt = Path(str(out) + ".partial")
    assert len(list(ckpt.glob("*.row.json"))) == 4
    second = _count_calls(monkeypatch)
    assert main(args) == 0
    assert set(second).isdisjoint(first) and len(second) == N - 4  # finished patients not redone
    frame = pd.read_parquet(out)
    assert list(frame["patient_id"]) == list(_manifest(cohort_dir)["patient_id"])
    assert not ckpt.exists()


def test_restart_discards_checkpoint(cohort_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "f.parquet"
    args = ["extract", str(cohort_dir / "manifest.csv"), "-o", str(out), "--workers", "1", "--no-progress"]
    _count_calls(monkeypatch, fail_at=2)
    assert main(args) == 130
    calls = _count_calls(monkeypatch)
    assert main([*args, "--restart"]) == 0
    assert len(calls) == N


def test_checkpoint_of_other_settings_refused(cohort_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "f.parquet.partial"
    ckpt.mkdir()
    (ckpt / "settings.json").write_text('{"fingerprint": "something else"}')
    code = main(["extract", str(cohort_dir / "manifest.csv"), "-o", str(tmp_path / "f.parquet"), "--no-progress"])
    assert code == 2


def test_killed_subprocess_resumes(cohort_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "f.parquet"
    ckpt = Path(str(out) + ".partial")
    env = dict(os.environ, MEDFUSE_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "medfuse", "extract", str(cohort_dir / "manifest.csv"), "-o", str(out),
         "--workers", "1", "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and len(list(ckpt.glob("*.row.json"))) < 2:
            time.sleep(0.02)
        if proc.poll() is not None:
            pytest.skip("the subprocess finished before it could be killed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()  # never a half-written output
    done = len(list(ckpt.glob("*.row.json")))
    assert 2 <= done < N
    calls = _count_calls(monkeypatch)
    assert main(["extract", str(cohort_dir / "manifest.csv"), "-o", str(out), "--workers", "1", "--no-progress"]) == 0
    assert len(calls) == N - done
    assert len(pd.read_parquet(out)) == N


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "f.parquet"
    good = pd.DataFrame({"a": [1.0, 2.0]})
    mx.atomic_write_parquet(good, out)

    def boom(self: pd.DataFrame, path: str, **kw: object) -> None:
        Path(path).write_bytes(b"PAR1 half")  # a partial write, then a crash
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        mx.atomic_write_parquet(pd.DataFrame({"a": [3.0]}), out)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(pd.read_parquet(out), good)
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]  # no temp file left


def test_atomic_outputs_have_the_mode_of_a_plain_write(tmp_path: Path) -> None:
    # mkstemp makes owner-only files; the renamed outputs must get what open() would give.
    old = os.umask(0o027)
    try:
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"x")
        mx.atomic_write_parquet(pd.DataFrame({"a": [1.0]}), tmp_path / "f.parquet")
        mx._atomic_write_bytes(tmp_path / "r.html", b"<html></html>")
    finally:
        os.umask(old)
    want = plain.stat().st_mode & 0o777
    assert want == 0o640
    assert (tmp_path / "f.parquet").stat().st_mode & 0o777 == want
    assert (tmp_path / "r.html").stat().st_mode & 0o777 == want


# ------------------------------------------------------------------ train / predict / evaluate


def test_train_predict(features: Path, cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.medfuse"
    for fusion in ("early", "late", "attention"):
        assert main(["train", str(features), "--fusion", fusion, "--learner", "logreg", "-o", str(model)]) == 0
    assert model.read_bytes()[:4] == b"PK\x03\x04"  # the zip model format, not a pickle
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    info = capsys.readouterr().out
    assert "kind multimodal" in info and "fusion: attention" in info and f"n_patients: {N}" in info
    preds = tmp_path / "p.csv"
    capsys.readouterr()
    assert main(["predict", str(model), str(cohort_dir / "manifest.csv"), "-o", str(preds), "--workers", "2"]) == 0
    assert f"{N}/{N}" in capsys.readouterr().err  # the progress bar reached the end
    assert main(["predict", str(model), str(cohort_dir / "manifest.csv"), "-o", str(preds), "--no-progress"]) == 0
    assert f"{N}/{N}" not in capsys.readouterr().err
    p = pd.read_csv(preds, dtype={"patient_id": str}, keep_default_na=False)
    assert list(p["patient_id"]) == list(_manifest(cohort_dir)["patient_id"])
    proba = p[["probability_0", "probability_1"]].to_numpy(dtype=float)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert set(p["prediction"]) <= {0, 1}
    assert (p["error"] == "").all() and (p["missing_after_error"] == "").all()


def test_predict_with_a_corrupt_xray_predicts_from_the_rest(
    features: Path, cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.medfuse"
    assert main(["train", str(features), "--fusion", "late", "-o", str(model)]) == 0
    bad_pid, _broken = _manifest_with_broken_xray(cohort_dir, tmp_path)
    preds = tmp_path / "p.csv"
    assert main(["predict", str(model), str(tmp_path / "m.csv"), "-o", str(preds), "--no-progress"]) == 1
    assert f"xray missing for {bad_pid}" in capsys.readouterr().out
    p = pd.read_csv(preds, dtype={"patient_id": str}, keep_default_na=False).set_index("patient_id")
    assert p.loc[bad_pid, "prediction"] in (0, 1) and "broken.png" in p.loc[bad_pid, "missing_after_error"]
    assert (p.drop(index=bad_pid)["missing_after_error"] == "").all()


def test_info_prints_no_empty_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.split(":", 1)[1].strip() for line in lines), lines


def test_evaluate_report(features: Path, cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    code = main(["evaluate", str(features), "--out", str(out), "--folds", "2", "--manifest", str(cohort_dir / "manifest.csv")])
    assert code == 0
    table = pd.read_csv(out / "results.csv")
    assert set(table["model"]) == {"ct", "xray", "report", "audio", "early fusion", "late fusion", "attention fusion"}
    html = (out / "report.html").read_text()
    assert f"{table.loc[0, 'auc_mean']:.3f} ± {table.loc[0, 'auc_std']:.3f}" in html
    assert html.count("data:image/png;base64,") == 2  # ROC + examples
    assert "late fusion" in capsys.readouterr().out


def test_train_predict_evaluate_multiclass(features: Path, cohort_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Three string classes through train (with --cv), info, predict and evaluate; the manifest's 0/1 labels are
    classes the model never saw: predict still predicts and warns, naming them."""
    from medfuse.cli import _read_features, _write_features

    frame, extraction = _read_features(features)
    names = np.array(["fibrosis", "normal", "tuberculosis"])
    frame["label"] = names[np.arange(len(frame)) % 3]
    table = tmp_path / "three.parquet"
    _write_features(frame, table, extraction)
    model = tmp_path / "m3.medfuse"
    assert main(["train", str(table), "--fusion", "late", "--cv", "2", "-o", str(model)]) == 0
    out = capsys.readouterr().out
    assert "3 classes: fibrosis, normal, tuberculosis" in out and "2-fold macro AUC" in out
    assert main(["info", str(model)]) == 0
    info = capsys.readouterr().out
    assert "fibrosis" in info and "tuberculosis" in info  # the card lists the classes
    preds = tmp_path / "p3.csv"
    assert main(["predict", str(model), str(cohort_dir / "manifest.csv"), "-o", str(preds), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "never saw at fit: 0, 1" in err and "warning" in err
    p = pd.read_csv(preds, dtype={"patient_id": str}, keep_default_na=False)
    proba = p[[f"probability_{c}" for c in names]].to_numpy(dtype=float)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(p["prediction"].to_numpy(), names[np.argmax(proba, axis=1)])
    rep = tmp_path / "rep3"
    assert main(["evaluate", str(table), "--out", str(rep), "--folds", "2"]) == 0
    assert "macro AUC" in capsys.readouterr().out
    res = pd.read_csv(rep / "results.csv")
    assert {f"auc_{c}_mean" for c in names} <= set(res.columns)
    html = (rep / "report.html").read_text()
    assert "Confusion matrices" in html and "AUC tuberculosis" in html
    # a class with a single patient cannot be cross-validated: the usage error names it
    frame["label"] = ["asthma", *frame["label"][1:]]
    _write_features(frame, table, extraction)
    err = _err(["evaluate", str(table), "--out", str(rep), "--folds", "2"], capsys)
    assert "'asthma' (1 patient)" in err


def test_demo_task_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid choice" in _err(["demo", "--task", "asthma", "--out", str(tmp_path)], capsys)


def test_demo_disease(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--task", "disease", "--n", "80", "--folds", "2", "--out", str(tmp_path), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "task disease" in out and "macro AUC" in out and "oracle (Bayes probabilities)" in out
    assert "[5/8] deep fusion" in out and "[6/8]" in out and "[7/8] restoration" in out
    html = (tmp_path / "report.html").read_text()
    assert "Confusion matrices" in html


def test_demo_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--task", "malignancy", "--n", "16", "--folds", "2", "--out", str(tmp_path), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "best fusion" in out and "stage times" in out
    assert "oracle (true logit)" in out  # the synthetic cohort's truth, scored on the same folds
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert (tmp_path / "cohort" / "manifest.csv").is_file()


# ------------------------------------------------------------------ help and errors


@pytest.mark.parametrize("cmd", [[], ["demo"], ["extract"], ["train"], ["predict"], ["evaluate"], ["bench"], ["info"]])
def test_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*cmd, "--help"]) == 0
    assert "usage: medfuse" in capsys.readouterr().out


def _err(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    assert main(args) == code
    return capsys.readouterr().err


def test_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "a command is required" in _err([], capsys)


def test_unknown_command_and_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid choice" in _err(["frobnicate"], capsys)
    assert "positive integer" in _err(["extract", "m.csv", "-o", "f.parquet", "--workers", "0"], capsys)
    assert "invalid choice" in _err(["extract", "m.csv", "-o", "f.parquet", "--backend", "mpi"], capsys)
    assert "invalid choice" in _err(["train", "f.parquet", "--fusion", "middle", "-o", "m"], capsys)


def test_extract_missing_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _err(["extract", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "f.parquet")], capsys)
    assert "nope.csv" in err and "not found" in err


def test_extract_manifest_is_folder_or_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is a folder" in _err(["extract", str(tmp_path), "-o", str(tmp_path / "f.parquet")], capsys)
    (tmp_path / "m.txt").write_text("x")
    assert ".csv or .parquet" in _err(["extract", str(tmp_path / "m.txt"), "-o", str(tmp_path / "f.parquet")], capsys)


def test_extract_bad_manifest(cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    man = _manifest(cohort_dir)
    man.loc[1, "patient_id"] = man.loc[0, "patient_id"]  # duplicate id
    man.loc[2, "ct"] = "nowhere/ct"  # missing file
    man.to_csv(tmp_path / "m.csv", index=False)
    err = _err(["extract", str(tmp_path / "m.csv"), "-o", str(tmp_path / "f.parquet")], capsys)
    assert "bad manifest" in err and "duplicate" in err.lower() and "nowhere" in err
    (tmp_path / "nopid.csv").write_text("id,ct\nA,x\n")
    assert "patient_id" in _err(["extract", str(tmp_path / "nopid.csv"), "-o", str(tmp_path / "f.parquet")], capsys)


def test_extract_refuses_manifest_without_modality_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused at extract (naming the columns found and expected), not at train."""
    (tmp_path / "m.csv").write_text("patient_id,label,age\nA,0,50\nB,1,61\nC,0,70\nD,1,44\n")
    err = _err(["extract", str(tmp_path / "m.csv"), "-o", str(tmp_path / "f.parquet")], capsys)
    assert "no modality column" in err and "patient_id, label, age" in err and "ct, xray, report" in err
    assert not (tmp_path / "f.parquet").exists()


def test_extract_bad_output(cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = str(cohort_dir / "manifest.csv")
    assert ".parquet" in _err(["extract", m, "-o", str(tmp_path / "f.csv")], capsys)
    assert "does not exist" in _err(["extract", m, "-o", str(tmp_path / "no" / "f.parquet")], capsys)
    assert "--scheduler" in _err(["extract", m, "-o", str(tmp_path / "f.parquet"), "--scheduler", "tcp://x:1"], capsys)


def test_train_errors(features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "m.joblib")
    assert "not found" in _err(["train", str(tmp_path / "none.parquet"), "-o", out], capsys)
    (tmp_path / "junk.parquet").write_text("not parquet")
    assert "cannot read feature table" in _err(["train", str(tmp_path / "junk.parquet"), "-o", out], capsys)
    pd.DataFrame({"a": [1.0]}).to_parquet(tmp_path / "other.parquet")
    assert "no medfuse features" in _err(["train", str(tmp_path / "other.parquet"), "-o", out], capsys)
    frame = pd.read_parquet(features)
    frame.drop(columns="label").to_parquet(tmp_path / "nolabel.parquet")
    assert "no label column" in _err(["train", str(tmp_path / "nolabel.parquet"), "-o", out], capsys)
    frame.assign(label=1).to_parquet(tmp_path / "one.parquet")
    assert "single class" in _err(["train", str(tmp_path / "one.parquet"), "-o", out], capsys)


def test_predict_errors(features: Path, cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = str(cohort_dir / "manifest.csv")
    out = str(tmp_path / "p.csv")
    assert "not found" in _err(["predict", str(tmp_path / "none.joblib"), m, "-o", out], capsys)
    (tmp_path / "junk.joblib").write_text("junk")
    assert "cannot read model" in _err(["predict", str(tmp_path / "junk.joblib"), m, "-o", out], capsys)
    import joblib

    joblib.dump({"x": 1}, tmp_path / "other.joblib")
    err = _err(["predict", str(tmp_path / "other.joblib"), m, "-o", out], capsys)
    assert "pickle" in err and "runs any code" in err and "--trust-pickle" in err
    err = _err(["predict", str(tmp_path / "other.joblib"), m, "-o", out, "--trust-pickle"], capsys)
    assert "not a medfuse classifier" in err
    err = _err(["predict", str(features), m, "-o", out], capsys)  # a feature table given as the model
    assert "is a Parquet file" in err and "not a medfuse model" in err
    assert "not a medfuse model" in _err(["predict", m, m, "-o", out], capsys)  # a CSV


def test_evaluate_errors(features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert "not a folder" in _err(["evaluate", str(features), "--out", str(tmp_path / "file")], capsys)
    assert "smallest class" in _err(["evaluate", str(features), "--out", str(tmp_path / "r"), "--folds", "9"], capsys)


def test_demo_and_bench_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "too small" in _err(["demo", "--n", "4", "--out", str(tmp_path)], capsys)
    (tmp_path / "file").write_text("x")
    assert "not a folder" in _err(["demo", "--out", str(tmp_path / "file")], capsys)
    assert "only without --quick" in _err(["bench", "--quick", "--json", str(tmp_path / "b.json")], capsys)


def test_bench_quick_runs_every_case_once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Each implementation is called once (not timed) so that a broken case fails here, not in a user's hands.
    import medfuse.bench.quick as qb

    calls: list[str] = []

    def once(fn: object, budget: float, max_runs: int) -> float:
        calls.append(repr(fn))
        fn()  # type: ignore[operator]
        return 1e-3

    monkeypatch.setattr(qb, "time_call", once)
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    for family in ("edges:", "histogram:", "glcm:", "convolve:", "median:", "conv2d:", "attention:", "label:"):
        assert family in out
    assert "reference (NumPy)" in out and len(calls) >= 20
