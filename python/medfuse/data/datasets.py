"""Loaders for chest imaging data sets as users download them → a :class:`Cohort`.

medfuse downloads nothing: you fetch the data under its licence and pass
the path of what you fetched.

- :func:`open_i`: the Indiana University chest X-ray collection served by
  Open-I (National Library of Medicine), https://openi.nlm.nih.gov/faq —
  the report archive ``NLMCXR_reports.tgz`` (or the folder it unpacks to,
  ``ecgen-radiology/``: one XML file per report) and, optionally, the
  unpacked PNG images ``NLMCXR_png/``. Check the licence on the Open-I FAQ
  page before use (the collection has been distributed under the Creative
  Commons Attribution-NonCommercial-NoDerivs licence).
- :func:`dicom_folder`: a folder of DICOM studies plus a CSV of labels, the
  common case of a hospital export.

Both check everything before building the cohort and raise one
:class:`~medfuse.data.CohortError` listing every problem with the file names
(malformed XML, an archive without reports, images referenced but missing,
labels that cannot be mapped, unreadable DICOM files, ids without data):
nothing is half-loaded.
"""

from __future__ import annotations

import csv
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union
from xml.etree import ElementTree

from .cohort import Cohort, CohortError, _is_missing
from .io import MedfuseFileNotFoundError

__all__ = ["OPEN_I_NORMAL", "dicom_folder", "open_i", "parse_open_i_report"]

PathLike = Union[str, "os.PathLike[str]"]

OPEN_I_NORMAL = "normal"  # the MeSH <major> term of a report without findings
_NOT_INDEXED = "no indexing"  # Open-I's term for a report the indexers did not label
MAX_REPORT_BYTES = 4 << 20  # one Open-I report is a few kB; a larger member is not a report
_XRAY_MODALITIES = ("CR", "DX", "DR", "RG", "PX", "MG")


# ------------------------------------------------------------------ Open-I


def parse_open_i_report(data: bytes, name: str = "report") -> dict[str, Any]:
    """One Open-I report XML → ``{"uid", "findings", "impression", "comparison", "indication", "major",
    "automatic", "images"}``.

    The format: an ``<eCitation>`` root with ``<uId id="CXR1"/>``, the
    sections as ``<MedlineCitation>/<Article>/<Abstract>/<AbstractText
    Label="FINDINGS">`` (also COMPARISON, INDICATION, IMPRESSION),
    ``<MeSH>`` with ``<major>`` (the indexers' terms, ``normal`` or
    ``Heading/qualifier/...``) and ``<automatic>`` terms, and one
    ``<parentImage id="CXR1_1_IM-0001-3001">`` per image. Empty sections
    are "". Raises ValueError naming ``name`` when the XML is malformed,
    declares a DOCTYPE (entity expansion is refused) or is not an
    ``<eCitation>``.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError(f"{name}: XML declares a DOCTYPE/ENTITY; refused (Open-I reports have none)")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as err:
        raise ValueError(f"{name}: malformed XML: {err}") from None
    except (LookupError, UnicodeError) as err:  # an unknown or wrong encoding declaration (found by tests/fuzz)
        raise ValueError(f"{name}: malformed XML: bad encoding: {err}") from None
    if root.tag != "eCitation":
        raise ValueError(f"{name}: not an Open-I report (root element <{root.tag}>, expected <eCitation>)")
    uid_el = root.find("uId")
    uid = (uid_el.get("id") or "").strip() if uid_el is not None else ""
    sections: dict[str, str] = {}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().upper()
        text = " ".join("".join(el.itertext()).split())
        if label and text:
            sections[label] = (sections[label] + " " + text) if label in sections else text
    mesh = root.find(".//MeSH")  # a child of <eCitation> in the collection; anywhere below is accepted
    major = [" ".join(e.text.split()) for e in mesh.iter("major") if e.text and e.text.strip()] if mesh is not None else []
    automatic = (
        [" ".join(e.text.split()) for e in mesh.iter("automatic") if e.text and e.text.strip()] if mesh is not None else []
    )
    images = [str(e.get("id")).strip() for e in root.iter("parentImage") if (e.get("id") or "").strip()]
    return {
        "uid": uid,
        "findings": sections.get("FINDINGS", ""),
        "impression": sections.get("IMPRESSION", ""),
        "comparison": sections.get("COMPARISON", ""),
        "indication": sections.get("INDICATION", ""),
        "major": major,
        "automatic": automatic,
        "images": images,
    }


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def _report_files(path: Path, problems: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every .xml report in a folder or a tar archive, in natural order."""
    if path.is_dir():
        files = sorted((p for p in path.rglob("*.xml") if p.is_file()), key=lambda p: _natural_key(p.name))
        for f in files:
            size = f.stat().st_size
            if size > MAX_REPORT_BYTES:
                problems.append(f"{f.name}: {size} bytes, too large for a report (limit {MAX_REPORT_BYTES})")
                continue
            yield f.name, f.read_bytes()
        return
    try:
        tar = tarfile.open(path, "r:*")
    except Exception as err:  # tarfile.ReadError, gzip/zlib/bz2/lzma errors, OSError
        raise CohortError([f"{path.name}: not a readable .tgz/.tar archive or folder of report XML: {err}"],
                          os.fspath(path)) from None
    with tar:
        try:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".xml")]
        except Exception as err:  # tarfile, gzip, zlib and bz2 raise several types on corrupt data
            raise CohortError([f"{path.name}: corrupt archive: {err}"], os.fspath(path)) from None
        for m in sorted(members, key=lambda m: _natural_key(Path(m.name).name)):
            if m.size > MAX_REPORT_BYTES:
                problems.append(f"{m.name}: {m.size} bytes, too large for a report (limit {MAX_REPORT_BYTES})")
                continue
            try:
                fh = tar.extractfile(m)
                data = fh.read() if fh is not None else b""
            except Exception as err:  # tarfile, gzip, zlib and bz2 raise several types on corrupt data
                problems.append(f"{m.name}: cannot be read from the archive: {err}")
                continue
            yield m.name, data


def _slug(term: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", term.lower()).strip("_")


def _projections(path: PathLike) -> dict[str, str]:
    """image id (file name without .png) → projection, from a CSV with ``filename`` and ``projection`` columns."""
    p = Path(os.fspath(path))
    if not p.is_file():
        raise MedfuseFileNotFoundError("projections CSV not found", p)
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if "filename" not in cols or "projection" not in cols:
            raise ValueError(f"projections must be a CSV with columns 'filename' and 'projection'; {p.name} has {cols}")
        out = {}
        for row in reader:
            name = Path((row.get("filename") or "").strip()).name
            stem = re.sub(r"(\.dcm)?\.(png|jpe?g)$", "", name, flags=re.IGNORECASE)
            out[stem] = (row.get("projection") or "").strip().lower()
    return out


def open_i(
    reports: PathLike,
    images: PathLike | None = None,
    *,
    projections: PathLike | None = None,
    unlabelled: str = "error",
    cache_size: int = 32,
) -> Cohort:
    """The Open-I / Indiana University chest X-ray collection as a :class:`Cohort`.

    ``reports``: ``NLMCXR_reports.tgz`` (read in place, nothing is
    extracted) or the folder of report XML files it unpacks to.
    ``images``: the unpacked ``NLMCXR_png`` folder (files
    ``<parentImage id>.png``), optional.

    One patient per report, ``patient_id`` its ``<uId>`` (``CXR1``...):

    - ``report``: FINDINGS then IMPRESSION, one per line ("" sections
      left out; missing when both are empty);
    - ``xray``: the frontal image. The XML does not say which image is
      frontal: by default the first ``<parentImage>`` listed is taken;
      ``projections=`` a CSV with ``filename`` and ``projection`` columns
      (``Frontal``/``Lateral``, as in the community's
      ``indiana_projections.csv``) picks the frontal one instead. Every
      image a report lists must exist in ``images`` (a partial download is
      an error);
    - ``label``: 0 when the MeSH ``<major>`` terms are just ``normal``, 1
      otherwise (abnormal);
    - ``mesh_<heading>``: one 0/1 column per finding heading of the major
      terms (``Cardiomegaly/borderline`` → ``mesh_cardiomegaly``);
    - ``mesh_major``: the major terms joined by ``"; "``; ``images``: every
      image id, joined by ``";"``; ``source``: the XML file's name.

    A report whose labels cannot be mapped (no major term, ``No
    Indexing``, ``normal`` together with a finding) is a problem; with
    ``unlabelled="drop"`` such reports are left out instead and their ids
    listed in ``cohort.unlabelled``. Malformed XML, an archive without
    report XML, duplicate ids and missing images are always problems; all
    are raised together in one :class:`CohortError`.
    """
    import pandas as pd

    if unlabelled not in ("error", "drop"):
        raise ValueError(f"unlabelled must be 'error' or 'drop'; got {unlabelled!r}")
    rpath = Path(os.fspath(reports))
    if not rpath.exists():
        raise MedfuseFileNotFoundError("Open-I reports not found (NLMCXR_reports.tgz or its folder)", rpath)
    ipath = None if images is None else Path(os.fspath(images))
    if ipath is not None:
        if not ipath.exists():
            raise MedfuseFileNotFoundError("Open-I image folder not found (the unpacked NLMCXR_png)", ipath)
        if not ipath.is_dir():
            raise ValueError(f"images must be the unpacked NLMCXR_png folder; {ipath} is a file (unpack it first)")
    proj = _projections(projections) if projections is not None else None
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    dropped: list[str] = []
    seen: dict[str, str] = {}
    n_files = 0
    available = {p.stem: p for p in ipath.iterdir() if p.suffix.lower() == ".png"} if ipath is not None else {}
    for name, data in _report_files(rpath, problems):
        n_files += 1
        try:
            rep = parse_open_i_report(data, name)
        except ValueError as err:
            problems.append(str(err))
            continue
        uid = rep["uid"] or Path(name).stem
        if uid in seen:
            problems.append(f"{name}: report id {uid!r} also in {seen[uid]}")
            continue
        seen[uid] = name
        label, why = _open_i_label(rep["major"])
        if label is None:
            if unlabelled == "drop":
                dropped.append(uid)
                continue
            problems.append(f"{name} ({uid}): {why}")
        text = "\n".join(t for t in (rep["findings"], rep["impression"]) if t)
        row: dict[str, Any] = {
            "patient_id": uid,
            "label": label,
            "report": text or None,
            "mesh_major": "; ".join(rep["major"]),
            "images": ";".join(rep["images"]),
            "source": name,
        }
        if ipath is not None:
            missing = [i for i in rep["images"] if i not in available]
            if missing:
                problems.append(
                    f"{name} ({uid}): image(s) {', '.join(m + '.png' for m in missing)} referenced but not in {ipath}"
                )
            frontal = _frontal(rep["images"], proj)
            row["xray"] = available[frontal] if frontal is not None and frontal in available else None
        rows.append(row)
    if n_files == 0 and not problems:
        problems.append(f"no report XML files (*.xml) in {rpath}")
    if problems:
        raise CohortError(problems, os.fspath(rpath))
    headings = sorted({_heading(t) for r in rows for t in r["mesh_major"].split("; ") if t} - {OPEN_I_NORMAL})
    frame = pd.DataFrame(rows)
    for h in headings:
        frame["mesh_" + _slug(h)] = [
            float(any(_heading(t) == h for t in r.split("; ") if t)) for r in frame["mesh_major"]
        ]
    cols = ["patient_id", "label"] + (["xray"] if ipath is not None else []) + ["report"]
    frame = frame[cols + [c for c in frame.columns if c not in cols]]
    frame = frame.astype({c: object for c in ("xray", "report") if c in frame.columns})
    frame["label"] = frame["label"].astype(int)
    cohort = Cohort(frame, cache_size=cache_size, source=f"Open-I {rpath.name}")
    cohort.unlabelled = dropped
    return cohort


def _heading(term: str) -> str:
    return term.split("/")[0].strip().lower()


def _open_i_label(major: Sequence[str]) -> tuple[int | None, str]:
    heads = [_heading(t) for t in major]
    if not heads:
        return None, "no MeSH <major> term: cannot tell normal from abnormal"
    if _NOT_INDEXED in heads:
        return None, "MeSH major term 'No Indexing': the report was not labelled"
    if OPEN_I_NORMAL in heads:
        if len(set(heads)) > 1:
            return None, f"MeSH major terms say both 'normal' and {sorted(set(heads) - {OPEN_I_NORMAL})}"
        return 0, ""
    return 1, ""


def _frontal(ids: Sequence[str], proj: dict[str, str] | None) -> str | None:
    if not ids:
        return None
    if proj is not None:
        for i in ids:
            if proj.get(i, "").startswith(("frontal", "pa", "ap")):
                return i
        return None
    return ids[0]


# ------------------------------------------------------------------- DICOM


def dicom_folder(
    folder: PathLike,
    labels: PathLike,
    *,
    by: str = "folder",
    unlabelled: str = "error",
    cache_size: int = 32,
) -> Cohort:
    """A folder of DICOM studies plus a CSV of labels → a :class:`Cohort`.

    ``labels``: a CSV with ``patient_id`` and ``label`` columns, and
    optionally ``report`` (text, or a ``.txt`` path relative to the CSV).
    Other columns are kept in the cohort's frame.

    Every file under ``folder`` is read as DICOM (header only; ``DICOMDIR``
    and hidden files are skipped). A patient is the first-level subfolder
    (``by="folder"``, default) or the DICOM PatientID (``by="tag"``). Per
    patient:

    - ``ct``: the CT series (Modality CT, grouped by SeriesInstanceUID) with
      the most slices; its files must be alone in their folder (the cohort
      reads a CT as a series folder, see :func:`medfuse.data.read_ct`);
    - ``xray``: the first radiograph (Modality CR, DX, DR, RG, PX or MG),
      by path.

    Problems, raised together in one :class:`CohortError` with the file
    names: files that are not DICOM, a CT series sharing its folder with
    other files, patients with images but no label row (unless
    ``unlabelled="drop"``: then listed in ``cohort.unlabelled``), label
    rows without images or report, and the label checks of
    :class:`Cohort` (empty, mixed or continuous labels).
    """
    import pandas as pd

    from .io import _dcmread

    if by not in ("folder", "tag"):
        raise ValueError(f"by must be 'folder' or 'tag'; got {by!r}")
    if unlabelled not in ("error", "drop"):
        raise ValueError(f"unlabelled must be 'error' or 'drop'; got {unlabelled!r}")
    root = Path(os.fspath(folder))
    if not root.is_dir():
        raise MedfuseFileNotFoundError("DICOM folder not found (or not a folder)", root)
    lpath = Path(os.fspath(labels))
    if not lpath.is_file():
        raise MedfuseFileNotFoundError("labels CSV not found", lpath)
    try:
        table = pd.read_csv(lpath, dtype={"patient_id": str}, keep_default_na=True)
    except Exception as err:
        raise CohortError([f"{lpath.name}: cannot read CSV: {err}"], os.fspath(lpath)) from None
    problems: list[str] = []
    for col in ("patient_id", "label"):
        if col not in table.columns:
            problems.append(f"{lpath.name}: no {col!r} column (columns: {', '.join(map(str, table.columns))})")
    if problems:
        raise CohortError(problems, os.fspath(lpath))
    clash = [c for c in ("ct", "xray") if c in table.columns]
    if clash:
        raise CohortError([f"{lpath.name}: column(s) {clash} come from the DICOM folder; remove them"], os.fspath(lpath))

    series: dict[str, dict[str, list[Path]]] = {}  # patient -> CT series uid -> files
    xrays: dict[str, list[Path]] = {}
    n_files = 0
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.name.upper() == "DICOMDIR" or any(part.startswith(".") for part in f.relative_to(root).parts):
            continue
        n_files += 1
        try:
            ds = _dcmread(f, header_only=True)
        except Exception as err:
            reason = str(err).rsplit(" [", 1)[0]  # MedfuseIOError appends the path, named already
            problems.append(f"{f.relative_to(root)}: not a readable DICOM file: {reason}")
            continue
        rel = f.relative_to(root)
        if by == "folder":
            if len(rel.parts) < 2:
                problems.append(f"{rel}: a file directly in {root.name}/; with by='folder' each patient is a subfolder")
                continue
            pid = rel.parts[0]
        else:
            pid = str(ds.get("PatientID", "") or "").strip()
            if not pid:
                problems.append(f"{rel}: no PatientID (0010,0020); use by='folder'")
                continue
        modality = str(ds.get("Modality", "") or "").strip().upper()
        if modality == "CT":
            uid = str(ds.get("SeriesInstanceUID", "") or f.parent)
            series.setdefault(pid, {}).setdefault(uid, []).append(f)
        elif modality in _XRAY_MODALITIES:
            xrays.setdefault(pid, []).append(f)
        # other modalities (MR, SR, PR, ...) are not used
    if n_files == 0:
        problems.append(f"no files under {root}")

    ct_of: dict[str, Path] = {}
    for pid, by_uid in series.items():
        uid, files = max(by_uid.items(), key=lambda kv: (len(kv[1]), kv[0]))
        folders = {f.parent for f in files}
        if len(folders) != 1:
            problems.append(f"patient {pid}: CT series {uid} is spread over {len(folders)} folders")
            continue
        ser_dir = next(iter(folders))
        others = [p.name for p in ser_dir.iterdir() if p.is_file() and p not in set(files) and p.name.upper() != "DICOMDIR"]
        if others:
            problems.append(
                f"patient {pid}: CT series {uid} shares folder {ser_dir.relative_to(root)} with {len(others)} other "
                f"file(s) ({', '.join(sorted(others)[:3])}); put each series in its own folder"
            )
            continue
        ct_of[pid] = ser_dir
    imaged = sorted(set(ct_of) | set(xrays) | set(series), key=_natural_key)
    ids = [str(v).strip() for v in table["patient_id"] if not _is_missing(v)]
    id_set = set(ids)
    no_label = [p for p in imaged if p not in id_set]
    dropped: list[str] = []
    if no_label:
        if unlabelled == "drop":
            dropped = no_label
        else:
            problems.append(
                f"{len(no_label)} patient(s) with images but no row in {lpath.name}: {', '.join(no_label[:20])}"
            )
    has_report = "report" in table.columns
    no_data = [
        p for p, r in zip(table["patient_id"], table["report"] if has_report else [None] * len(table))
        if not _is_missing(p) and str(p).strip() not in set(imaged) and _is_missing(r)
    ]
    if no_data:
        problems.append(f"{len(no_data)} patient(s) in {lpath.name} without images or report: {', '.join(map(str, no_data[:20]))}")
    if problems:
        raise CohortError(problems, os.fspath(root))
    frame = table.copy()
    frame["patient_id"] = [None if _is_missing(v) else str(v).strip() for v in frame["patient_id"]]
    frame.insert(2, "ct", [os.fspath(ct_of[p]) if p in ct_of else None for p in frame["patient_id"]])
    frame.insert(3, "xray", [os.fspath(sorted(xrays[p])[0]) if p in xrays else None for p in frame["patient_id"]])
    frame = frame.astype({"ct": object, "xray": object})
    try:
        return _with_unlabelled(Cohort.from_dataframe(frame, base_dir=lpath.resolve().parent, cache_size=cache_size),
                                dropped)
    except CohortError as err:
        raise CohortError(err.problems, os.fspath(lpath)) from None


def _with_unlabelled(cohort: Cohort, dropped: list[str]) -> Cohort:
    cohort.unlabelled = list(dropped)
    return cohort

