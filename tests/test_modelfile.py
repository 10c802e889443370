"""Model files (medfuse.learn.modelfile): nothing runs on load, tampering is refused, round trips are exact.

- every model kind (early / late fusion x logreg, svm, rf, gbdt; attention
  fusion) saved and loaded gives identical probabilities, and carries its card;
- a malicious pickle (it creates a file when unpickled) goes through every
  entry point — ``load_model``, ``MultimodalModel.load``, ``read_card``,
  ``medfuse predict``, ``medfuse info`` — and creates nothing; with the
  explicit trust flag it does run (so the payload is real);
- tampered archives (truncated, wrong version, unknown kind, untrusted type,
  shapes that disagree with the config, zip bombs) raise ModelFileError;
- no medfuse source calls pickle/joblib/torch loaders outside the one
  trusted path (AST scan).
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import medfuse
from medfuse.cli import main
from medfuse.data import synthetic_cohort
from medfuse.extract import CohortFeatures, extract_cohort
from medfuse.features import ImageFeatureExtractor
from medfuse.learn import modelfile as mfile
from medfuse.learn.evaluate import MultimodalModel, table_fingerprint
from medfuse.learn.modelfile import (
    ModelFileError,
    ModelParts,
    PickleRefusedError,
    UntrustedTypesError,
    load_model,
    read_card,
    register_kind,
    save_model,
)

PACKAGE = Path(medfuse.__file__).resolve().parent


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    synthetic_cohort(20, seed=11, missing=0.1, out_dir=out, shape=(16, 48, 48))
    return out


@pytest.fixture(scope="module")
def extraction() -> CohortFeatures:
    cheap = {"groups": ("first_order", "histogram")}
    return CohortFeatures(ct=ImageFeatureExtractor(window=(-600.0, 1500.0), **cheap), xray=ImageFeatureExtractor(**cheap))


@pytest.fixture(scope="module")
def table(cohort_dir: Path, extraction: CohortFeatures) -> pd.DataFrame:
    from medfuse.data import Cohort

    res = extract_cohort(Cohort.from_csv(cohort_dir / "manifest.csv"), extraction, workers=2)
    assert not res.failures
    return res.features


@pytest.fixture(scope="module")
def attention_file(table: pd.DataFrame, extraction: CohortFeatures, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "attention.medfuse"
    MultimodalModel("attention", extraction=extraction, random_state=2).fit(table).save(path)
    return path


@pytest.fixture(scope="module")
def late_file(table: pd.DataFrame, extraction: CohortFeatures, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "late.medfuse"
    MultimodalModel("late", "logreg", extraction=extraction).fit(table).save(path)
    return path


# ------------------------------------------------------------------ round trips

KINDS = [(f, learner) for f in ("early", "late") for learner in ("logreg", "svm", "rf", "gbdt")] + [("attention", None)]


@pytest.mark.parametrize(("fusion", "learner"), KINDS, ids=[f"{f}-{learner}" for f, learner in KINDS])
def test_round_trip_identical_predictions(fusion: str, learner: str | None, table: pd.DataFrame,
                                          extraction: CohortFeatures, tmp_path: Path) -> None:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # HistGradientBoosting's OpenMP threads would fight the other engineers' runs
        model = MultimodalModel(fusion, learner or "logreg", extraction=extraction, random_state=3).fit(table)
    path = tmp_path / "model.anything"  # any name is accepted
    model.save(path, card={"notes": "round trip"})
    assert zipfile.is_zipfile(path)
    loaded = MultimodalModel.load(path)
    assert loaded is not model
    np.testing.assert_array_equal(loaded.predict_proba(table), model.predict_proba(table))
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))
    assert loaded.extraction.settings() == extraction.settings()
    manifest = read_card(path)
    card = manifest["card"]
    assert card["medfuse_version"] == medfuse.__version__ and card["notes"] == "round trip"
    assert card["model"]["fusion"] == fusion and card["model"]["learner"] == learner
    assert card["extraction"] == json.loads(json.dumps(extraction.settings()))
    fp = card["training_data"]
    assert fp["n_patients"] == len(table)
    assert fp["label_counts"] == {str(k): int(v) for k, v in table["label"].value_counts().items()}
    assert fp["table_sha256"] == table_fingerprint(table)["table_sha256"]
    # attention weights live in safetensors, checked against the config; the rest in skops
    assert bool(manifest["arrays"]) == (fusion == "attention")


def test_fasttext_report_vectors_round_trip(table: pd.DataFrame, tmp_path: Path) -> None:
    from medfuse.features import ReportVectorizer

    vec = ReportVectorizer(embedding="fasttext", vector_size=8, epochs=2)
    model = MultimodalModel("early", report_vectorizer=vec).fit(table)
    loaded = MultimodalModel.load(model.save(tmp_path / "ft.medfuse"))
    unseen = table.assign(report=["zzunseenword nodule spiculated"] * len(table))  # sub-word vectors of new words
    for t in (table, unseen):
        np.testing.assert_array_equal(loaded.predict_proba(t), model.predict_proba(t))


def test_fingerprint_changes_with_the_table(table: pd.DataFrame) -> None:
    a = table_fingerprint(table)["table_sha256"]
    assert table_fingerprint(table.copy())["table_sha256"] == a
    changed = table.copy()
    col = next(c for c in table.columns if c.startswith("ct__"))
    changed.loc[changed.index[0], col] = 12345.0
    assert table_fingerprint(changed)["table_sha256"] != a
    assert table_fingerprint(table.iloc[1:])["table_sha256"] != a


def test_cli_train_cv_card_and_info(table: pd.DataFrame, extraction: CohortFeatures, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from medfuse.cli import _write_features

    feats = tmp_path / "features.parquet"
    _write_features(table, feats, extraction)
    model = tmp_path / "m.medfuse"
    assert main(["train", str(feats), "--fusion", "early", "--cv", "3", "-o", str(model)]) == 0
    assert "3-fold AUC" in capsys.readouterr().out
    cv = read_card(model)["card"]["cv_metrics"]
    assert cv["folds"] == 3 and 0.0 <= cv["auc_mean"] <= 1.0 and cv["auc_std"] >= 0.0
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "cv_metrics:" in out and "auc_mean" in out and "table_sha256" in out and "columns:" in out
    assert main(["info", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["card"]["cv_metrics"] == cv
    assert main(["info"]) == 0 and "simd" in capsys.readouterr().out  # build info without MODEL
    assert main(["train", str(feats), "--cv", "1", "-o", str(model)]) == 2
    assert "--cv" in capsys.readouterr().err


# ------------------------------------------------------------------ malicious pickles


class _Payload:
    """Unpickling this creates ``marker`` — standing for any code an attacker wants run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


def _evil_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    import joblib

    marker = tmp_path / "PWNED"
    files = []
    for proto in (0, 2, 4, 5):
        f = tmp_path / f"evil_p{proto}.medfuse"
        f.write_bytes(pickle.dumps({"medfuse_model": 1, "model": _Payload(marker)}, protocol=proto))
        files.append(f)
    f = tmp_path / "evil.joblib"
    joblib.dump(_Payload(marker), f, compress=3)
    files.append(f)
    return marker, files


def test_malicious_pickle_runs_nowhere(tmp_path: Path, cohort_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker, files = _evil_files(tmp_path)
    manifest = str(cohort_dir / "manifest.csv")
    for f in files:
        with pytest.raises(ModelFileError):
            load_model(f)
        with pytest.raises(ModelFileError):
            MultimodalModel.load(f)
        with pytest.raises(ModelFileError):
            read_card(f)
        assert main(["predict", str(f), manifest, "-o", str(tmp_path / "p.csv")]) == 2
        assert main(["info", str(f)]) == 2
        assert not marker.exists(), f"loading {f.name} ran its code"
        assert not (tmp_path / "p.csv").exists()
    err = capsys.readouterr().err
    assert "runs any code" in err and "--trust-pickle" in err
    with pytest.raises(PickleRefusedError, match="trusted=True"):
        load_model(files[1])
    # The payload is real: with the explicit trust flag the pickle does run.
    with pytest.raises(ModelFileError):  # a Path.touch result is not a model
        MultimodalModel.load(files[1], trusted=True)
    assert marker.exists()


def test_trusted_pickle_loads_an_old_model(table: pd.DataFrame, cohort_dir: Path, tmp_path: Path) -> None:
    import joblib

    model = MultimodalModel("early", "logreg").fit(table)
    old = tmp_path / "old.joblib"  # what `medfuse train` wrote before model files
    joblib.dump({"medfuse_model": 1, "version": "0.1.0", "model": model}, old)
    with pytest.raises(PickleRefusedError):
        MultimodalModel.load(old)
    loaded = MultimodalModel.load(old, trusted=True)
    np.testing.assert_array_equal(loaded.predict_proba(table), model.predict_proba(table))
    loaded.save(tmp_path / "new.medfuse")  # converted to the safe format
    np.testing.assert_array_equal(MultimodalModel.load(tmp_path / "new.medfuse").predict_proba(table),
                                  model.predict_proba(table))
    out = tmp_path / "p.csv"
    assert main(["predict", str(old), str(cohort_dir / "manifest.csv"), "-o", str(out), "--trust-pickle"]) == 0
    assert len(pd.read_csv(out)) == 20


def test_not_a_model(tmp_path: Path, table: pd.DataFrame) -> None:
    pq = tmp_path / "features.parquet"
    table.to_parquet(pq)
    with pytest.raises(ModelFileError, match="Parquet file"):
        load_model(pq)
    with pytest.raises(ModelFileError, match="Parquet file"):
        load_model(pq, trusted=True)
    (tmp_path / "m.csv").write_text("patient_id,label\n1,0\n")
    with pytest.raises(ModelFileError, match="CSV"):
        load_model(tmp_path / "m.csv")
    with pytest.raises(ModelFileError, match="nor a readable pickle"):
        load_model(tmp_path / "m.csv", trusted=True)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a medfuse model"):
        load_model(tmp_path / "empty")
    with pytest.raises(ModelFileError, match="folder"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "none.medfuse")
    with pytest.raises(TypeError, match="path"):
        load_model(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="trusted"):
        load_model(pq, trusted="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes"):
        load_model(pq, max_bytes=0)
    with pytest.raises(TypeError, match="obj"):
        save_model(object(), tmp_path / "x.medfuse")
    with pytest.raises(ModelFileError, match="without medfuse.json"):
        with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
            zf.writestr("hello.txt", "hi")
        load_model(tmp_path / "other.zip")


# ------------------------------------------------------------------ tampered archives


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return path


def _edit_manifest(src: Path, dst: Path, edit: Any) -> Path:
    m = _members(src)
    manifest = json.loads(m["medfuse.json"])
    edit(manifest)
    m["medfuse.json"] = json.dumps(manifest).encode()
    return _write(dst, m)


def test_truncated_and_damaged(late_file: Path, tmp_path: Path) -> None:
    data = late_file.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        bad = tmp_path / f"cut{cut}.medfuse"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="damaged or truncated"):
            load_model(bad)
    m = _members(late_file)
    # A flipped byte inside the compressed skops member fails in different places depending on where it lands
    # (zlib's inflate, zipfile's CRC check, skops' schema): every one is a ModelFileError. Several positions, so
    # the test does not depend on what one byte of this run's file happens to be.
    start = data.find(b"estimators/model.skops")
    for at in range(start + 100, min(len(data) - 100, start + 4100), 256):
        flipped = bytearray(data)
        flipped[at] ^= 0xFF
        (tmp_path / "flip.medfuse").write_bytes(bytes(flipped))
        with pytest.raises(ModelFileError):
            load_model(tmp_path / "flip.medfuse")
    m["medfuse.json"] = b"{not json"
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(_write(tmp_path / "json.medfuse", m))
    m = _members(late_file)
    del m["estimators/model.skops"]
    with pytest.raises(ModelFileError, match="missing from the archive"):
        load_model(_write(tmp_path / "missing.medfuse", m))


def test_format_version_and_kind(late_file: Path, tmp_path: Path) -> None:
    def version(v: Any) -> Any:
        return lambda m: m.update(format_version=v)

    with pytest.raises(ModelFileError, match="newer medfuse"):
        load_model(_edit_manifest(late_file, tmp_path / "v2.medfuse", version(2)))
    with pytest.raises(ModelFileError, match="unknown format version"):
        load_model(_edit_manifest(late_file, tmp_path / "v0.medfuse", version(0)))
    with pytest.raises(ModelFileError, match="integer"):
        load_model(_edit_manifest(late_file, tmp_path / "vs.medfuse", version("1")))
    with pytest.raises(ModelFileError, match="does not describe"):
        load_model(_edit_manifest(late_file, tmp_path / "fmt.medfuse", lambda m: m.update(format="pickle")))
    with pytest.raises(ModelFileError, match="unknown model kind 'os'"):
        load_model(_edit_manifest(late_file, tmp_path / "kind.medfuse", lambda m: m.update(kind="os")))


def _replace_in_skops(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    m = _members(src)
    inner = zipfile.ZipFile(io.BytesIO(m["estimators/model.skops"]))
    parts = {n: inner.read(n) for n in inner.namelist()}
    assert old in parts["schema.json"]
    parts["schema.json"] = parts["schema.json"].replace(old, new)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in parts.items():
            zf.writestr(n, b)
    m["estimators/model.skops"] = buf.getvalue()
    return _write(dst, m)


def test_untrusted_type_refused_by_name(late_file: Path, tmp_path: Path) -> None:
    # Swap the word-vector class for subprocess.Popen (an attacker's choice of constructor).
    bad = _replace_in_skops(late_file, tmp_path / "popen.medfuse", b'"gensim.models.keyedvectors"', b'"subprocess"')
    bad = _replace_in_skops(bad, tmp_path / "popen2.medfuse", b'"KeyedVectors"', b'"Popen"')
    with pytest.raises(UntrustedTypesError, match=r"subprocess\.Popen") as err:
        load_model(bad)
    assert err.value.types == ["subprocess.Popen"]
    evil_fn = _replace_in_skops(late_file, tmp_path / "fn.medfuse", b'"_identity"', b'"system"')
    evil_fn = _replace_in_skops(evil_fn, tmp_path / "fn2.medfuse", b'"medfuse.features.text"', b'"os"')
    with pytest.raises(UntrustedTypesError, match=r"os\.system"):
        load_model(evil_fn)
    with pytest.raises(UntrustedTypesError):
        MultimodalModel.load(evil_fn)


def test_weights_disagree_with_config(attention_file: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    m = _members(attention_file)
    arrays = st_load(m["arrays.safetensors"])
    manifest = json.loads(m["medfuse.json"])
    d = manifest["config"]["attention"]["d_model"]
    # a projection of the wrong width, declared consistently in the manifest: the config check catches it
    arrays["attention.W.ct"] = np.zeros((arrays["attention.W.ct"].shape[0] + 1, d))
    manifest["arrays"]["tensors"]["attention.W.ct"]["shape"] = list(arrays["attention.W.ct"].shape)
    m["arrays.safetensors"] = st_save(arrays)
    m["medfuse.json"] = json.dumps(manifest).encode()
    with pytest.raises(ModelFileError, match=r"attention\.W\.ct has shape"):
        load_model(_write(tmp_path / "shape.medfuse", m))
    # a tensor whose shape differs from what the manifest declares
    m = _members(attention_file)
    arrays = st_load(m["arrays.safetensors"])
    arrays["attention.Wq"] = arrays["attention.Wq"][:, :-1].copy()
    m["arrays.safetensors"] = st_save(arrays)
    with pytest.raises(ModelFileError, match=r"tensor 'attention\.Wq' has shape"):
        load_model(_write(tmp_path / "declared.medfuse", m))
    # a missing tensor; a damaged safetensors member
    m = _members(attention_file)
    arrays = st_load(m["arrays.safetensors"])
    del arrays["attention.bo"]
    m["arrays.safetensors"] = st_save(arrays)
    with pytest.raises(ModelFileError, match="missing"):
        load_model(_write(tmp_path / "missing.medfuse", m))
    m = _members(attention_file)
    m["arrays.safetensors"] = m["arrays.safetensors"][:50]
    with pytest.raises(ModelFileError, match="damaged"):
        load_model(_write(tmp_path / "st.medfuse", m))


def test_inconsistent_estimators(table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    import medfuse.learn.evaluate as ev

    model = MultimodalModel("early", "logreg").fit(table)
    model.classifier_.learner_ = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])  # fitted on 4 columns
    with pytest.raises(ValueError, match="learner takes 4 features"):
        model.save(tmp_path / "bad.medfuse")
    monkeypatch.setattr(ev, "_check_fitted", lambda m: None)  # an attacker's writer skips the check
    model.save(tmp_path / "bad.medfuse")
    monkeypatch.undo()
    with pytest.raises(ModelFileError, match="inconsistent multimodal model: learner takes 4 features"):
        load_model(tmp_path / "bad.medfuse")


def _forge_declared_size(path: Path, member: str, size: int) -> None:
    """Rewrite the central directory's uncompressed size of ``member`` (what a zip bomb declares)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    i = 0
    while True:
        i = data.find(b"PK\x01\x02", i)
        assert i >= 0, member
        n = struct.unpack_from("<H", data, i + 28)[0]
        if bytes(data[i + 46 : i + 46 + n]) == name:
            struct.pack_into("<I", data, i + 24, size)
            path.write_bytes(bytes(data))
            return
        i += 4


def test_zip_bombs(late_file: Path, tmp_path: Path) -> None:
    m = _members(late_file)
    m["padding.bin"] = bytes(64 << 20)  # 64 MiB of zeros, ~64 KiB compressed
    bomb = _write(tmp_path / "bomb.medfuse", m)
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(ModelFileError, match="zip bomb"):
        load_model(bomb, max_bytes=32 << 20)
    huge = tmp_path / "huge.medfuse"
    huge.write_bytes(late_file.read_bytes())
    _forge_declared_size(huge, "estimators/model.skops", 0xFFFF_FF00)  # declares ~4 GiB
    with pytest.raises(ModelFileError, match="more than max_bytes"):
        load_model(huge)
    # a lie the other way: declares little, holds more -> the read stops at the declared size
    small = tmp_path / "small.medfuse"
    small.write_bytes(late_file.read_bytes())
    _forge_declared_size(small, "estimators/model.skops", 1000)
    with pytest.raises(ModelFileError):
        load_model(small)
    # a bomb inside the skops part (its own zip)
    m = _members(late_file)
    inner = zipfile.ZipFile(io.BytesIO(m["estimators/model.skops"]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n in inner.namelist():
            zf.writestr(n, inner.read(n))
        zf.writestr("bomb.npy", bytes(64 << 20))
    m["estimators/model.skops"] = buf.getvalue()
    with pytest.raises(ModelFileError, match="zip bomb"):
        load_model(_write(tmp_path / "inner.medfuse", m), max_bytes=32 << 20)


# ------------------------------------------------------------------ other kinds (deep / RL models)


class _Toy:
    """A stand-in for a torch/RL model: config + named weights, no skops part."""

    def __init__(self, width: int, weights: dict[str, np.ndarray]) -> None:
        self.width = width
        self.weights = weights


def _toy_from_parts(parts: ModelParts) -> _Toy:
    w = int(parts.config["width"])
    if parts.arrays["w"].shape != (w, w):
        raise ValueError(f"w has shape {parts.arrays['w'].shape}; width {w} needs {(w, w)}")
    return _Toy(w, dict(parts.arrays))


def test_register_a_kind_with_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mfile, "_KINDS", dict(mfile._KINDS))
    register_kind("toy", _Toy, to_parts=lambda t: ModelParts(config={"width": t.width}, arrays=t.weights),
                  from_parts=_toy_from_parts, card=lambda t: {"model": {"width": t.width}})
    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=(3, 3)).astype(np.float32), "steps": np.arange(5, dtype=np.int64),
               "mask": rng.random(4) > 0.5}
    path = save_model(_Toy(3, weights), tmp_path / "toy.medfuse", card={"episodes": 10})
    toy = load_model(path)
    assert isinstance(toy, _Toy) and toy.width == 3
    for k, v in weights.items():
        assert toy.weights[k].dtype == v.dtype
        np.testing.assert_array_equal(toy.weights[k], v)
    card = read_card(path)["card"]
    assert card["kind"] == "toy" and card["model"] == {"width": 3} and card["episodes"] == 10
    bad = _edit_manifest(path, tmp_path / "bad.medfuse", lambda m: m["config"].update(width=4))
    with pytest.raises(ModelFileError, match=r"inconsistent toy model: w has shape \(3, 3\)"):
        load_model(bad)
    with pytest.raises(ValueError, match="name"):
        register_kind("Bad Name", _Toy, to_parts=lambda t: ModelParts(), from_parts=_toy_from_parts)


def test_torch_state_dict_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(mfile, "_KINDS", dict(mfile._KINDS))

    def from_parts(parts: ModelParts) -> Any:
        net = torch.nn.Sequential(torch.nn.Linear(parts.config["n_in"], 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        net.load_state_dict({k: torch.from_numpy(v) for k, v in parts.arrays.items()})  # strict: names and shapes
        return net

    register_kind("test-torch", torch.nn.Sequential,
                  to_parts=lambda net: ModelParts(config={"n_in": net[0].in_features},
                                                  arrays={k: v.detach().numpy() for k, v in net.state_dict().items()}),
                  from_parts=from_parts)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    path = save_model(net, tmp_path / "net.medfuse")
    x = torch.randn(7, 5)
    assert torch.equal(load_model(path)(x), net(x))
    bad = _edit_manifest(path, tmp_path / "bad.medfuse", lambda m: m["config"].update(n_in=6))
    with pytest.raises(ModelFileError, match="size mismatch"):
        load_model(bad)


# ------------------------------------------------------------------ checkpoints and source scan


def test_extract_checkpoint_never_unpickles(tmp_path: Path, extraction: CohortFeatures) -> None:
    from medfuse.extract import _Checkpoint, _Task

    marker = tmp_path / "PWNED"
    ck = _Checkpoint(tmp_path / "ckpt", extraction)
    task = _Task(0, "p1", 1, None, None, "text")
    ck._path(task).write_bytes(pickle.dumps(_Payload(marker)))  # a planted file with the row's name
    assert ck.load(task) is None and not marker.exists()
    row = {"patient_id": "p1", "label": 1, "ct__x": float("nan"), "xray__y": 2.5, "report": None}
    ck.save(task, row)
    back = ck.load(task)
    assert back is not None and back["label"] == 1 and np.isnan(back["ct__x"]) and back["report"] is None


LOADERS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("joblib", "load"), ("torch", "load"),
    ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"), ("pd", "read_pickle"),
    ("pandas", "read_pickle"), ("shelve", "open"), ("marshal", "loads"), ("marshal", "load"),
}


def _unsafe_calls(tree: ast.AST) -> list[tuple[str, int, str]]:
    """(function, line, call) of every unpickling call; torch.load only without weights_only=True."""
    out = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call):
                f = child.func
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in LOADERS:
                    safe = f.value.id == "torch" and any(
                        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in child.keywords)
                    if not safe:
                        out.append((func, child.lineno, f"{f.value.id}.{f.attr}"))
                if isinstance(f, ast.Attribute) and f.attr == "load" and any(
                        k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                        for k in child.keywords):
                    out.append((func, child.lineno, "np.load(allow_pickle=...)"))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for alias in child.names:
                    mod = child.module if isinstance(child, ast.ImportFrom) else alias.name
                    if isinstance(child, ast.ImportFrom) and (mod, alias.name) in {
                            ("pickle", "load"), ("pickle", "loads"), ("joblib", "load"), ("torch", "load")}:
                        out.append((func, child.lineno, f"from {mod} import {alias.name}"))
            visit(child, name)

    visit(tree, "<module>")
    return out


def test_no_unpickling_outside_the_trusted_path() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        calls = _unsafe_calls(ast.parse(path.read_text(encoding="utf-8")))
        if calls:
            found[path.relative_to(PACKAGE).as_posix()] = calls
    # The one allowed call: load_model(..., trusted=True) -> _load_trusted_pickle.
    assert found == {"learn/modelfile.py": [("_load_trusted_pickle", found["learn/modelfile.py"][0][1], "joblib.load")]}
    src = (PACKAGE / "learn" / "modelfile.py").read_text()
    callers = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "_load_trusted_pickle"]
    assert len(callers) == 1  # called once, under `if trusted and ...`


def test_scanner_finds_unsafe_calls() -> None:
    code = ("import pickle, torch, joblib, numpy as np\n"
            "def f(p):\n    return pickle.load(open(p, 'rb'))\n"
            "def g(p):\n    return torch.load(p)\n"
            "def h(p):\n    return torch.load(p, weights_only=True)\n"
            "def i(p):\n    return np.load(p, allow_pickle=True)\n"
            "from joblib import load\n")
    calls = _unsafe_calls(ast.parse(code))
    assert [(c[0], c[2]) for c in calls] == [("f", "pickle.load"), ("g", "torch.load"), ("i", "np.load(allow_pickle=...)"),
                                             ("<module>", "from joblib import load")]
