"""Model files that execute nothing when they are loaded.

A medfuse model file (suffix ``.medfuse`` by convention; any name is
accepted) is one zip archive:

- ``medfuse.json`` — the manifest: ``format`` ("medfuse-model"),
  ``format_version``, the model ``kind``, the model card (medfuse version,
  creation time, training-data fingerprint, metrics, extraction settings),
  the kind's JSON ``config``, and a table of the other members with the
  types, shapes and sizes they hold;
- ``estimators/<name>.skops`` — scikit-learn-style objects written with
  :mod:`skops.io` (no pickle). On load every type named inside is checked
  against an explicit allow-list (:data:`TRUSTED_TYPES` plus the kind's own
  list); any other type is refused, listed by name, *before* anything is
  built;
- ``arrays.safetensors`` — named tensors (numpy arrays here; torch
  ``state_dict`` tensors for the deep models), in the safetensors format:
  a JSON header and raw little-endian bytes, nothing executable. Shapes and
  dtypes are checked against the manifest and against the kind's config.

Reading refuses, with a :class:`ModelFileError` (a ``ValueError``) naming
the file: truncated or damaged archives, a format version this medfuse does
not know, unknown kinds, untrusted types, members larger than
``max_bytes`` uncompressed (zip bombs), arrays whose shapes disagree with
the config, and anything that is not a medfuse model (a Parquet table, a
CSV, ...). Pickle files — medfuse's model format before this module —
are refused unless the caller passes ``trusted=True``
(``medfuse predict --trust-pickle``): unpickling runs whatever code the
file's author put in it.

New model kinds (the deep and RL learners) register themselves with
:func:`register_kind`; :func:`save_model` / :func:`load_model` dispatch on
the object's class and the manifest's ``kind``. A kind, in the module that
defines the model, e.g. a torch network::

    from medfuse.learn.modelfile import ModelParts, register_kind

    def _to_parts(m):   # JSON config + named arrays (+ skops objects, if any)
        return ModelParts(config={"hidden": m.hidden, "classes": list(m.classes_)},
                          arrays={k: v.detach().cpu().numpy() for k, v in m.net_.state_dict().items()})

    def _from_parts(parts):   # rebuild; raise ValueError (or torch's RuntimeError) on any mismatch
        m = DeepFusionClassifier(hidden=parts.config["hidden"])
        m.net_ = m._build()
        m.net_.load_state_dict({k: torch.from_numpy(v) for k, v in parts.arrays.items()})  # strict
        return m

    register_kind("deep-fusion", DeepFusionClassifier, to_parts=_to_parts, from_parts=_from_parts,
                  card=lambda m: {"model": {"class": "DeepFusionClassifier", "hidden": m.hidden}})

then add ``"deep-fusion": "<its module>"`` to ``_KIND_MODULES`` below, so a
file of that kind finds its loader without the caller importing the module
first, and list any class its skops parts hold in ``trusted_types`` (only
plain data holders: loading builds them without calling ``__init__``).
Never store objects whose loading would run code (pickled callables,
``torch.save`` files): arrays go through safetensors, the rest through
JSON config or skops. ``tests/test_modelfile.py`` has a numpy kind and a
torch ``state_dict`` kind as working examples.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_BYTES",
    "SUFFIX",
    "TRUSTED_TYPES",
    "ModelFileError",
    "ModelKind",
    "ModelParts",
    "PickleRefusedError",
    "UntrustedTypesError",
    "load_model",
    "read_card",
    "register_kind",
    "save_model",
    "sniff",
]

FORMAT = "medfuse-model"
FORMAT_VERSION = 1
SUFFIX = ".medfuse"
MANIFEST = "medfuse.json"
ARRAYS = "arrays.safetensors"
MAX_BYTES = 2 << 30  # total uncompressed bytes a model file may declare (2 GiB)
MAX_MEMBERS = 256  # zip members, outer archive and each skops part
MAX_MANIFEST_BYTES = 16 << 20

# Types medfuse's own models need beyond skops' built-in list (scikit-learn
# estimators, numpy arrays and scalars, Python containers). Each is a plain
# data holder whose construction runs no user-controlled code: skops builds
# it with ``cls.__new__`` and sets its attributes (themselves checked).
TRUSTED_TYPES: tuple[str, ...] = (
    "medfuse.learn.evaluate.MultimodalModel",
    "medfuse.learn.evaluate._Design",
    "medfuse.learn.fusion.EarlyFusionClassifier",
    "medfuse.learn.fusion.LateFusionClassifier",
    "medfuse.learn.fusion.AttentionFusionClassifier",
    "medfuse.features.text.ReportVectorizer",
    "medfuse.features.text._identity",  # the TF-IDF analyzer: returns its argument
    "medfuse.features.image.ImageFeatureExtractor",
    "medfuse.features.audio.AudioFeatureExtractor",
    "medfuse.extract.CohortFeatures",
    "gensim.models.keyedvectors.KeyedVectors",  # the report word vectors: arrays + vocabulary dicts
    "gensim.models.fasttext.FastTextKeyedVectors",
    "numpy.dtype",
    # scikit-learn internals of the named learners (svm, rf, gbdt)
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


class ModelFileError(ValueError):
    """A file that is not a loadable medfuse model; ``.path`` names it."""

    def __init__(self, path: str | os.PathLike[str] | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class UntrustedTypesError(ModelFileError):
    """The file names types outside the allow-list; ``.types`` lists them."""

    def __init__(self, path: str | os.PathLike[str] | None, member: str, types: Iterable[str]) -> None:
        self.types = sorted(types)
        super().__init__(
            path,
            f"{member} holds types that medfuse does not trust, refused before loading anything: "
            f"{', '.join(self.types)}. If you know where this file comes from and these are your own "
            "classes, pass them as extra_types=[...] to load_model",
        )


class PickleRefusedError(ModelFileError):
    """A pickle (or joblib) file, refused because loading it would run its code."""


PICKLE_RISK = (
    "is a pickle/joblib file (what `medfuse train` wrote before medfuse model files, or another tool's file). "
    "Loading a pickle runs any code its author put in it, with your permissions: refused. "
    "Load it only if you made it yourself or fully trust whoever did and how it reached you "
    "(`medfuse predict --trust-pickle`, or load_model(path, trusted=True)), then save it again "
    "in the safe format (model.save('model.medfuse'))"
)


# ------------------------------------------------------------------ kinds


@dataclass
class ModelParts:
    """What a model kind writes: JSON config, skops-persisted objects, named arrays."""

    config: dict[str, Any] = field(default_factory=dict)
    estimators: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelKind:
    """A registered model kind.

    ``name``: stable identifier written in the manifest (never a class path).
    ``cls``: the class :func:`save_model` recognises (subclasses too).
    ``to_parts(obj) -> ModelParts``: split the fitted object into JSON-able
    config, objects for skops, and named arrays (torch tensors: convert
    with ``t.detach().cpu().numpy()``, or store a ``state_dict`` through
    ``safetensors.torch`` yourself).
    ``from_parts(parts) -> obj``: rebuild it; check that array shapes agree
    with the config and raise ``ValueError`` naming what disagrees (it
    becomes a :class:`ModelFileError`).
    ``trusted_types``: extra type names (``module.Class``) its skops parts
    hold, beyond :data:`TRUSTED_TYPES`.
    ``card(obj) -> dict``: default model-card fields for this object.
    """

    name: str
    cls: type
    to_parts: Callable[[Any], ModelParts]
    from_parts: Callable[[ModelParts], Any]
    trusted_types: tuple[str, ...] = ()
    card: Callable[[Any], dict[str, Any]] | None = None


_KINDS: dict[str, ModelKind] = {}

# Kinds defined by medfuse modules that register on import. A file naming
# one of these kinds imports its module (a fixed medfuse module, never a
# name taken from the file). Add a line when a new kind lands.
_KIND_MODULES: dict[str, str] = {
    "multimodal": "medfuse.learn.evaluate",
    "deep-fusion": "medfuse.learn.deep.classifier",
}


def register_kind(
    name: str,
    cls: type,
    *,
    to_parts: Callable[[Any], ModelParts],
    from_parts: Callable[[ModelParts], Any],
    trusted_types: Iterable[str] = (),
    card: Callable[[Any], dict[str, Any]] | None = None,
) -> ModelKind:
    """Register (or replace) a model kind; see :class:`ModelKind`. Returns it."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_.-]{0,63}", name):
        raise ValueError(f"name must be a short lowercase identifier ([a-z][a-z0-9_.-]*); got {name!r}")
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class; got {cls!r}")
    kind = ModelKind(name, cls, to_parts, from_parts, tuple(str(t) for t in trusted_types), card)
    _KINDS[name] = kind
    return kind


def _kind_of(obj: Any) -> ModelKind:
    for mod in _KIND_MODULES.values():
        try:
            importlib.import_module(mod)
        except ImportError:  # an optional kind (the deep models without torch): its objects cannot exist here
            continue
    for kind in _KINDS.values():
        if isinstance(obj, kind.cls):
            return kind
    known = ", ".join(sorted(k.cls.__name__ for k in _KINDS.values()))
    raise TypeError(f"obj must be a fitted medfuse model ({known}); got {type(obj).__name__}")


def _kind_named(path: Path, name: Any) -> ModelKind:
    if isinstance(name, str) and name in _KIND_MODULES and name not in _KINDS:
        importlib.import_module(_KIND_MODULES[name])
    if not isinstance(name, str) or name not in _KINDS:
        raise ModelFileError(path, f"unknown model kind {name!r}; this medfuse reads {', '.join(sorted(_KINDS) or _KIND_MODULES)}")
    return _KINDS[name]


# ------------------------------------------------------------------ writing


def _type_names(skops_bytes: bytes) -> list[str]:
    """Every type the skops bytes name that skops does not trust by itself."""
    import skops.io as sio

    return sorted(sio.get_untrusted_types(data=skops_bytes))


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return repr(v)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def save_model(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    card: Mapping[str, Any] | None = None,
    extra_types: Iterable[str] = (),
) -> Path:
    """Write a fitted model to ``path`` (atomically) in the medfuse model format.

    ``card``: model-card fields to add to (or override) the kind's defaults
    (e.g. ``{"cv_metrics": {...}, "notes": "..."}``); JSON-able values.
    ``extra_types``: type names of your own classes inside the model (a
    custom learner) that skops does not know; the same names must be given
    to :func:`load_model`. Returns the path.
    """
    import skops.io as sio

    import medfuse

    from ..data.io import _atomic_write_bytes

    kind = _kind_of(obj)
    p = Path(os.fspath(path))
    if p.is_dir():
        raise ValueError(f"path {p} is a folder; give a file name (e.g. model{SUFFIX})")
    if card is not None and not isinstance(card, Mapping):
        raise TypeError(f"card must be a dict of model-card fields or None; got {type(card).__name__}")
    parts = kind.to_parts(obj)
    allowed = set(TRUSTED_TYPES) | set(kind.trusted_types) | {str(t) for t in extra_types}
    members: dict[str, bytes] = {}
    est_table: dict[str, Any] = {}
    for name, est in parts.estimators.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(f"estimator part name {name!r} must be [A-Za-z0-9_.-]")
        data = sio.dumps(est)
        types = _type_names(data)
        bad = [t for t in types if t not in allowed]
        if bad:
            raise ValueError(
                f"the model holds types outside medfuse's allow-list, which load_model would refuse: "
                f"{', '.join(bad)}; pass extra_types=[...] here and to load_model if they are your own classes"
            )
        member = f"estimators/{name}.skops"
        members[member] = data
        est_table[name] = {"member": member, "types": types}
    arr_table: dict[str, Any] = {}
    if parts.arrays:
        from safetensors.numpy import save as st_save

        arrays = {k: np.ascontiguousarray(v) for k, v in parts.arrays.items()}
        members[ARRAYS] = st_save(arrays)
        arr_table = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()}
    full_card: dict[str, Any] = {"medfuse_version": medfuse.__version__, "created": _now(), "kind": kind.name}
    if kind.card is not None:
        full_card.update(kind.card(obj))
    if card:
        full_card.update(dict(card))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind.name,
        "card": _jsonable(full_card),
        "config": _jsonable(parts.config),
        "estimators": est_table,
        "arrays": {"member": ARRAYS, "tensors": arr_table} if arr_table else {},
        "sizes": {m: len(b) for m, b in members.items()},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True, allow_nan=True))
        for m, b in members.items():
            zf.writestr(m, b)
    _atomic_write_bytes(p, buf.getvalue())
    return p


# ------------------------------------------------------------------ reading

_PICKLE_MAGICS = (
    b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda",  # zlib (joblib compress=...)
    b"\x1f\x8b",  # gzip
    b"BZh",  # bz2
    b"\xfd7zXZ\x00",  # xz / lzma
    b"\x04\x22\x4d\x18",  # lz4
    b"ZF",  # joblib's old zlib container
)


def sniff(path: str | os.PathLike[str]) -> str:
    """What a file looks like from its first bytes: "medfuse" (a zip), "pickle", "parquet", or "other"."""
    with open(os.fspath(path), "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "medfuse"
    if head.startswith(b"PAR1"):
        return "parquet"
    if (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head.startswith(_PICKLE_MAGICS):
        return "pickle"
    return "other"


def _describe_other(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "is a CSV file (a manifest or predictions?), not a medfuse model"
    return "is not a medfuse model file (expected a zip archive made by `medfuse train` or model.save)"


def _check_path(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike); got {type(path).__name__}")
    p = Path(os.fspath(path))
    if not p.exists():
        from ..data.io import MedfuseFileNotFoundError

        raise MedfuseFileNotFoundError(f"model {p} not found", path=p)
    if p.is_dir():
        raise ModelFileError(p, "is a folder, not a model file")
    return p


def _open_archive(p: Path, max_bytes: int) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    kind = sniff(p)
    if kind == "parquet":
        raise ModelFileError(p, "is a Parquet file (a feature table from `medfuse extract`?), not a medfuse model; "
                                "make a model with `medfuse train FEATURES -o model.medfuse`")
    if kind == "pickle":
        raise PickleRefusedError(p, PICKLE_RISK)
    if kind != "medfuse":
        raise ModelFileError(p, _describe_other(p))
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
        raise ModelFileError(p, f"damaged or truncated model archive ({err})") from None
    try:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ModelFileError(p, f"archive has {len(infos)} members; a medfuse model has at most {MAX_MEMBERS}")
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise ModelFileError(
                p, f"archive declares {total} bytes uncompressed, more than max_bytes={max_bytes} "
                   "(a zip bomb, or a model larger than allowed: raise max_bytes if you trust it)")
        names = {i.filename for i in infos}
        if MANIFEST not in names:
            raise ModelFileError(p, f"zip archive without {MANIFEST}: not a medfuse model file")
        raw = _read_member(p, zf, MANIFEST, MAX_MANIFEST_BYTES)
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise ModelFileError(p, f"{MANIFEST} is not valid JSON ({err})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ModelFileError(p, f"{MANIFEST} does not describe a {FORMAT} file")
        version = manifest.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ModelFileError(p, f"format_version must be an integer; got {version!r}")
        if version > FORMAT_VERSION:
            raise ModelFileError(p, f"format version {version} was written by a newer medfuse; this one reads "
                                    f"up to version {FORMAT_VERSION}: upgrade medfuse")
        if version < 1:
            raise ModelFileError(p, f"unknown format version {version}")
        for key, typ in (("card", dict), ("config", dict), ("estimators", dict), ("arrays", dict)):
            if not isinstance(manifest.get(key), typ):
                raise ModelFileError(p, f"{MANIFEST}: {key!r} must be a JSON object")
        return zf, manifest
    except BaseException:
        zf.close()
        raise


def _read_member(p: Path, zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ModelFileError(p, f"member {name} listed in {MANIFEST} is missing from the archive") from None
    if info.file_size > limit:
        raise ModelFileError(p, f"member {name} declares {info.file_size} bytes, more than the limit {limit}")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as err:
        # zlib.error: a damaged deflate stream fails while decompressing, before zipfile reaches the CRC check
        raise ModelFileError(p, f"damaged or truncated model archive: cannot read {name} ({err})") from None
    if len(data) > limit:
        raise ModelFileError(p, f"member {name} is larger than the limit {limit}")
    return data


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a model file (format, kind, card, config, members) — reads JSON only, builds nothing."""
    p = _check_path(path)
    zf, manifest = _open_archive(p, MAX_BYTES)
    zf.close()
    return manifest


def _load_estimator(p: Path, zf: zipfile.ZipFile, name: str, entry: Any, allowed: set[str], budget: int) -> Any:
    import skops.io as sio

    if not isinstance(entry, dict) or not isinstance(entry.get("member"), str):
        raise ModelFileError(p, f"{MANIFEST}: estimators[{name!r}] must name its member")
    member = entry["member"]
    data = _read_member(p, zf, member, budget)
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
        infos = inner.infolist()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
        raise ModelFileError(p, f"{member} is damaged ({err})") from None
    if len(infos) > 100_000 or sum(i.file_size for i in infos) > budget:
        raise ModelFileError(p, f"{member} declares more than max_bytes={budget} uncompressed (zip bomb?)")
    try:
        types = set(sio.get_untrusted_types(data=data))
    except Exception as err:  # a damaged schema: skops raises KeyError/TypeError/ValueError...
        raise ModelFileError(p, f"{member} is damaged ({type(err).__name__}: {err})") from None
    bad = types - allowed
    if bad:
        raise UntrustedTypesError(p, member, bad)
    try:
        return sio.load(io.BytesIO(data), trusted=sorted(types))
    except UntrustedTypesError:
        raise
    except Exception as err:
        raise ModelFileError(p, f"{member} cannot be loaded ({type(err).__name__}: {err})") from None


def _load_arrays(p: Path, zf: zipfile.ZipFile, entry: dict[str, Any], budget: int) -> dict[str, np.ndarray]:
    if not entry:
        return {}
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    member = entry.get("member")
    declared = entry.get("tensors")
    if not isinstance(member, str) or not isinstance(declared, dict):
        raise ModelFileError(p, f"{MANIFEST}: 'arrays' must name its member and tensors")
    data = _read_member(p, zf, member, budget)
    try:
        arrays = st_load(data)
    except (SafetensorError, ValueError, TypeError, OverflowError) as err:
        raise ModelFileError(p, f"{member} is damaged ({err})") from None
    if set(arrays) != set(declared):
        missing = sorted(set(declared) - set(arrays))
        extra = sorted(set(arrays) - set(declared))
        raise ModelFileError(p, f"{member} tensors disagree with {MANIFEST}: missing {missing}, unexpected {extra}")
    for k, a in arrays.items():
        d = declared[k]
        if not isinstance(d, dict) or list(a.shape) != d.get("shape") or str(a.dtype) != d.get("dtype"):
            raise ModelFileError(p, f"tensor {k!r} has shape {list(a.shape)} {a.dtype}; {MANIFEST} declares {d}")
    return arrays


def _load_trusted_pickle(p: Path) -> Any:
    """The only place medfuse unpickles a file: called when the user passed trusted=True."""
    import joblib

    try:
        obj = joblib.load(p)
    except Exception as err:
        raise ModelFileError(p, f"is not a medfuse model file, nor a readable pickle ({type(err).__name__}: {err})") from None
    if isinstance(obj, dict) and obj.get("medfuse_model") == 1 and "model" in obj:
        return obj["model"]  # the format `medfuse train` wrote before model files
    return obj


def load_model(
    path: str | os.PathLike[str],
    *,
    trusted: bool = False,
    extra_types: Iterable[str] = (),
    max_bytes: int = MAX_BYTES,
) -> Any:
    """Load a model file written by :func:`save_model` (or ``medfuse train``).

    Builds only allow-listed types, and nothing runs on the way in.
    ``trusted=True`` additionally accepts pickle/joblib files (the format
    before model files): **only for files you made or fully trust** —
    unpickling runs arbitrary code. ``extra_types``: type names of your own
    classes to accept (see :func:`save_model`). ``max_bytes``: refuse
    archives declaring more uncompressed bytes than this.

    Raises :class:`ModelFileError` (a ``ValueError``; subclasses
    :class:`UntrustedTypesError`, :class:`PickleRefusedError`) or
    ``medfuse.data.MedfuseFileNotFoundError``.
    """
    if not isinstance(trusted, bool):
        raise TypeError(f"trusted must be True or False; got {trusted!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer; got {max_bytes!r}")
    if isinstance(extra_types, str):
        raise TypeError("extra_types must be a list of type names, not a str")
    p = _check_path(path)
    if trusted and sniff(p) in ("pickle", "other"):  # any pickle protocol (0 and 1 have no magic bytes)
        return _load_trusted_pickle(p)
    zf, manifest = _open_archive(p, int(max_bytes))
    with zf:
        kind = _kind_named(p, manifest.get("kind"))
        allowed = set(TRUSTED_TYPES) | set(kind.trusted_types) | {str(t) for t in extra_types}
        parts = ModelParts(config=manifest["config"])
        for name, entry in manifest["estimators"].items():
            parts.estimators[name] = _load_estimator(p, zf, name, entry, allowed, int(max_bytes))
        parts.arrays = _load_arrays(p, zf, manifest["arrays"], int(max_bytes))
    try:
        return kind.from_parts(parts)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RuntimeError) as err:  # RuntimeError: torch load_state_dict
        raise ModelFileError(p, f"inconsistent {kind.name} model: {err}") from None
