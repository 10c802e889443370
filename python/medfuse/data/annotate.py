"""Finding labels read out of radiology reports (English and Chinese).

:func:`label_reports` gives one column per finding with the CheXpert
convention: 1 present, 0 absent (negated), -1 uncertain (hedged), NaN not
mentioned. The method, rule-based like the CheXpert labeler and NegBio:

1. **Mentions.** Each finding has phrases (synonyms) in both languages in
   ``medfuse/resources/report_findings.txt`` (format documented in that
   file; users add their own files or dicts). English phrases match whole
   words (case-insensitive, "-" = space, plural -s/-es); Chinese phrases
   match anywhere. Exclusion phrases ("!pericardial effusion") keep a
   longer look-alike out of a finding.
2. **Sentences and clauses.** Sentences end at ``. ; ! ? 。 ； ！ ？``
   (not a decimal point) and line breaks; a clause also ends at ``:``/``：``,
   at terminator words ("but", "however", 但, 可见 ...) and, in a sentence
   with Chinese characters, at commas. A cue never reaches across a clause.
3. **Assertion.** Cues (``medfuse/resources/report_cues.txt``): negation
   and uncertainty, each before the finding ("no", "possible", 未见, 考虑)
   or after it ("is ruled out", "cannot be excluded", 已吸收, 可能), and
   pseudo-cues ("no change", "probably benign", 无明显变化) that look like
   one but are none. The nearest cue before a mention (within 8 words, or
   12 Chinese characters) and the nearest after it (within 5 words / 8
   characters) decide: uncertain if either is an uncertainty cue, else
   negated if either is a negation cue, else present.
4. **Report level** (CheXpert's aggregation): present if any mention is
   present, else uncertain if any is uncertain, else absent; NaN without
   a mention. So "No new nodule. Stable 6 mm nodule." is present, and
   "No new nodule." alone absent.
5. **no_finding**: 1 when no finding other than ``support_devices`` is
   present or uncertain, NaN otherwise (CheXpert's rule).

:func:`keyword_labels` is the baseline without steps 2-3 (a phrase seen
means present). :func:`score_labels` gives per-finding precision, recall and
F1 of "present" against a truth table; :func:`synthetic_truth` maps a
synthetic cohort's ``truth`` table to finding columns (the latent
findings), :func:`stated_labels` to what its reports state, and
:func:`score_assertions` compares the labeler's 1/0/-1/NaN with those.
"""

from __future__ import annotations

import bisect
import functools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "CHEXPERT_FINDINGS",
    "DEFAULT_FINDINGS",
    "DictionaryError",
    "ReportLabeler",
    "keyword_labels",
    "label_reports",
    "load_dictionary",
    "mesh_truth",
    "normalise_name",
    "score_assertions",
    "score_labels",
    "stated_labels",
    "synthetic_truth",
]

CHEXPERT_FINDINGS = (
    "no_finding", "enlarged_cardiomediastinum", "cardiomegaly", "lung_lesion", "lung_opacity", "edema",
    "consolidation", "pneumonia", "atelectasis", "pneumothorax", "pleural_effusion", "pleural_other",
    "fracture", "support_devices",
)
EXTRA_FINDINGS = (
    "nodule", "mass", "tuberculosis", "cavity", "tree_in_bud", "calcified_granuloma", "fibrosis",
    "reticulation", "honeycombing", "traction_bronchiectasis", "emphysema",
)
DEFAULT_FINDINGS = CHEXPERT_FINDINGS + EXTRA_FINDINGS
NOT_PATHOLOGY = frozenset({"no_finding", "support_devices"})  # left out of no_finding's rule
CUE_KINDS = ("negation_pre", "negation_post", "uncertain_pre", "uncertain_post", "pseudo", "terminator")
PRE_WINDOW = (8, 12)  # (English words, Chinese characters) from a cue before a mention
POST_WINDOW = (5, 8)  # ... from a mention to a cue after it

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_WORD = re.compile(r"[A-Za-z0-9]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SENTENCE_END = re.compile(r"(?<!\d)\.|\.(?!\d)|[;!?\n。；！？]")
_CLAUSE_END = re.compile(r"[:：]")
_ZH_COMMA = re.compile(r"[，,]")


class DictionaryError(ValueError):
    """A malformed dictionary line or entry; the message names the file and line."""


def normalise_name(name: object, what: str = "finding") -> str:
    """'Pleural Effusion' / 'pleural-effusion' -> 'pleural_effusion'."""
    if not isinstance(name, str):
        raise TypeError(f"{what} names must be str; got {type(name).__name__} ({name!r})")
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    if not _NAME.match(key):
        raise ValueError(f"{what} name {name!r} is not a name (letters, digits, '_', starting with a letter)")
    return key


def _phrase_key(phrase: str) -> str:
    return re.sub(r"[\s\-]+", " ", phrase.strip().lower())


def _parse_lines(text: str, source: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {number}"
        name, sep, rest = line.partition(":")
        if not sep:
            raise DictionaryError(f"{where}: expected '<name>: <phrase>; <phrase>; ...'; got {raw!r}")
        try:
            key = normalise_name(name, "entry")
        except ValueError as err:
            raise DictionaryError(f"{where}: {err}") from None
        phrases = [p.strip() for p in rest.split(";")]
        if not any(p.lstrip("!").strip() for p in phrases):
            raise DictionaryError(f"{where}: entry {key!r} lists no phrase")
        empty = [i + 1 for i, p in enumerate(phrases) if not p.lstrip("!").strip()]
        if empty:
            raise DictionaryError(f"{where}: entry {key!r} has an empty phrase (position {empty[0]}; a stray ';'?)")
        out.setdefault(key, []).extend(phrases)
    return out


def load_dictionary(source: str | os.PathLike[str] | Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Read a dictionary file (format of ``report_findings.txt``) or check a dict.

    A dict maps a finding name to its phrases (``"!phrase"`` excludes).
    Returns ``{name: [phrase, ...]}``; a malformed line or entry raises
    :class:`DictionaryError` naming the file and line (or the dict key).
    """
    if isinstance(source, Mapping):
        out: dict[str, list[str]] = {}
        for name, phrases in source.items():
            try:
                key = normalise_name(name, "dictionary key")
            except (TypeError, ValueError) as err:
                raise DictionaryError(str(err)) from None
            if isinstance(phrases, str):
                phrases = [phrases]
            try:
                items = list(phrases)
            except TypeError:
                raise DictionaryError(f"dictionary entry {key!r}: expected a list of phrases; got "
                                      f"{type(phrases).__name__}") from None
            for p in items:
                if not isinstance(p, str) or not p.lstrip("!").strip():
                    raise DictionaryError(f"dictionary entry {key!r}: phrases must be non-empty str; got {p!r}")
            if not items:
                raise DictionaryError(f"dictionary entry {key!r} lists no phrase")
            out.setdefault(key, []).extend(p.strip() for p in items)
        return out
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"a dictionary must be a file path or a dict; got {type(source).__name__}")
    path = Path(os.fspath(source))
    if not path.is_file():
        raise FileNotFoundError(f"dictionary file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DictionaryError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return _parse_lines(text, os.fspath(path))


def _shipped(name: str) -> dict[str, list[str]]:
    text = resources.files("medfuse").joinpath("resources").joinpath(name).read_text(encoding="utf-8")
    return _parse_lines(text, f"medfuse/resources/{name}")


def _trie(keys: Iterable[str]) -> str:
    """A regex matching any of the keys, as a character trie (fast with hundreds
    of phrases); where one key extends another the longer is tried first. A
    space in a key matches any run of spaces and hyphens."""
    root: dict[str, Any] = {}
    for k in keys:
        node = root
        for ch in k:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [(r"[\s\-]+" if ch == " " else re.escape(ch)) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:  # a key ends here: the longer continuation is optional (greedy)
            return body + "?" if len(alts) == 1 and len(body) == 1 else "(?:" + body + ")?"
        return body

    return emit(root)


def _alternation(phrases: Iterable[str], *, plural: bool) -> str | None:
    """One regex for the phrases: Latin ones as whole words, CJK anywhere, longest first."""
    keys = sorted({_phrase_key(p) for p in phrases if p})
    latin = [k for k in keys if not _CJK.search(k)]
    cjk = [k for k in keys if _CJK.search(k)]
    parts = []
    if latin:
        parts.append(r"(?<![A-Za-z0-9])(?:" + _trie(latin) + ")" + (r"(?:e?s)?" if plural else "") + r"(?![A-Za-z0-9])")
    if cjk:
        parts.append("(?:" + _trie(cjk) + ")")
    return "|".join(parts) if parts else None


@dataclass(frozen=True)
class _Cue:
    start: int
    end: int
    kinds: frozenset[str]


class ReportLabeler:
    """Compiled dictionaries; :meth:`label` one report. Build once, reuse.

    ``dictionaries``: extra finding files or dicts (added to the shipped
    ones, or replacing them with ``replace=True``); ``cues``: extra cue
    files or dicts whose keys are the cue kinds of ``report_cues.txt``.
    """

    def __init__(
        self,
        dictionaries: Sequence[Any] | None = None,
        *,
        cues: Sequence[Any] | None = None,
        replace: bool = False,
    ) -> None:
        entries: dict[str, list[str]] = {} if replace else {k: list(v) for k, v in _shipped("report_findings.txt").items()}
        for d in _as_list(dictionaries, "dictionaries"):
            for k, v in load_dictionary(d).items():
                entries.setdefault(k, []).extend(v)
        if "no_finding" in entries:
            raise DictionaryError("no_finding is derived from the other findings and cannot have phrases")
        cue_entries = {k: list(v) for k, v in _shipped("report_cues.txt").items()}
        for d in _as_list(cues, "cues"):
            for k, v in load_dictionary(d).items():
                cue_entries.setdefault(k, []).extend(v)
        unknown = sorted(set(cue_entries) - set(CUE_KINDS))
        if unknown:
            raise DictionaryError(f"unknown cue kind(s) {unknown}; expected {', '.join(CUE_KINDS)}")
        self.phrases = entries
        self.findings: tuple[str, ...] = ("no_finding", *entries)
        self._finding_re: list[tuple[str, re.Pattern[str]]] = []
        # A cheap pre-check per finding: the first word of a Latin phrase must
        # be among the report's words, a CJK phrase a substring of it.
        self._first_words: dict[str, frozenset[str]] = {}
        self._cjk_phrases: dict[str, tuple[str, ...]] = {}
        for name, phrases in entries.items():
            keys = [_phrase_key(p) for p in phrases if not p.startswith("!")]
            self._first_words[name] = frozenset(
                _LATIN_WORD.findall(k)[0] for k in keys if not _CJK.search(k) and _LATIN_WORD.search(k)
            )
            self._cjk_phrases[name] = tuple(k for k in keys if _CJK.search(k))
            pos = _alternation([p for p in phrases if not p.startswith("!")], plural=True)
            neg = _alternation([p[1:] for p in phrases if p.startswith("!")], plural=True)
            if pos is None:
                raise DictionaryError(f"finding {name!r} has only exclusion phrases")
            pattern = (f"(?P<x>{neg})|" if neg else "") + f"(?P<p>{pos})"
            self._finding_re.append((name, re.compile(pattern, re.IGNORECASE)))
        kinds: dict[str, set[str]] = {}
        for kind, phrases in cue_entries.items():
            for p in phrases:
                kinds.setdefault(_phrase_key(p.lstrip("!")), set()).add(kind)
        self._cue_kinds = {k: frozenset(v) for k, v in kinds.items()}
        alt = _alternation(kinds, plural=False)
        self._cue_re = re.compile(alt or r"(?!x)x", re.IGNORECASE)

    # ------------------------------------------------------------ one report

    def mentions(self, text: str, lang: str = "auto") -> dict[str, list[tuple[int, int, int]]]:
        """{finding: [(start, end, status), ...]} for one report (status 1, 0, -1).

        ``lang``: "auto" applies the Chinese clause rules (commas end a
        clause, distances in characters) to clauses with Chinese
        characters and the English ones elsewhere; "en" or "zh" force one.
        """
        _check_lang(lang)
        bounds = self._boundaries(text, lang)
        cues: list[_Cue] = []
        for m in self._cue_re.finditer(text):
            kinds = self._cue_kinds.get(_phrase_key(m.group(0)), frozenset())
            if "terminator" in kinds and len(kinds) == 1:
                bounds.append(m.start())
            else:
                cues.append(_Cue(m.start(), m.end(), kinds))
        bounds.sort()
        cue_ends = [c.end for c in cues]
        cue_starts = [c.start for c in cues]
        out: dict[str, list[tuple[int, int, int]]] = {}
        for name, rx in self._candidates(text):
            found = []
            for m in rx.finditer(text):
                if m.group("p") is None:
                    continue  # an exclusion phrase
                s, e = m.start(), m.end()
                found.append((s, e, self._status(text, s, e, bounds, cues, cue_starts, cue_ends, lang)))
            if found:
                out[name] = found
        return out

    def _candidates(self, text: str) -> list[tuple[str, re.Pattern[str]]]:
        """The findings whose regex can match: a fast filter, never a decision."""
        lower = text.lower()
        words = set(_LATIN_WORD.findall(lower))
        words |= {w[:-1] for w in words if w.endswith("s")} | {w[:-2] for w in words if w.endswith("es")}
        has_cjk = _CJK.search(text) is not None
        return [
            (name, rx)
            for name, rx in self._finding_re
            if not self._first_words[name].isdisjoint(words)
            or (has_cjk and any(p in lower for p in self._cjk_phrases[name]))
        ]

    @staticmethod
    def _boundaries(text: str, lang: str) -> list[int]:
        bounds = [m.start() for m in _SENTENCE_END.finditer(text)]
        bounds += [m.start() for m in _CLAUSE_END.finditer(text)]
        if lang == "zh":
            bounds += [m.start() for m in _ZH_COMMA.finditer(text)]
        elif lang == "auto" and _CJK.search(text):
            start = 0
            for end in [*sorted(bounds), len(text)]:
                if _CJK.search(text, start, end):  # a sentence with Chinese: its commas end clauses
                    bounds += [m.start() + start for m in _ZH_COMMA.finditer(text[start:end])]
                start = end + 1
        return bounds

    @staticmethod
    def _units(text: str, a: int, b: int) -> int:
        return len(_WORD.findall(text, a, b)) if b > a else 0

    def _status(
        self,
        text: str,
        s: int,
        e: int,
        bounds: list[int],
        cues: list[_Cue],
        cue_starts: list[int],
        cue_ends: list[int],
        lang: str,
    ) -> int:
        k = bisect.bisect_right(bounds, s - 1)
        lo = bounds[k - 1] if k > 0 else -1
        k2 = bisect.bisect_left(bounds, e)
        hi = bounds[k2] if k2 < len(bounds) else len(text)
        zh = lang == "zh" or (lang == "auto" and bool(_CJK.search(text, max(lo, 0), hi)))
        pre_w, post_w = (PRE_WINDOW[1], POST_WINDOW[1]) if zh else (PRE_WINDOW[0], POST_WINDOW[0])
        found: set[str] = set()
        i = bisect.bisect_right(cue_ends, s) - 1  # nearest cue ending before the mention
        while i >= 0 and cues[i].start >= s:
            i -= 1
        if i >= 0 and cues[i].start > lo:
            c = cues[i]
            if self._units(text, c.end, s) <= pre_w:
                if "uncertain_pre" in c.kinds:
                    found.add("uncertain")
                elif "negation_pre" in c.kinds:
                    found.add("negation")
        j = bisect.bisect_left(cue_starts, e)  # nearest cue starting after it
        if j < len(cues) and cues[j].end <= hi:
            c = cues[j]
            if self._units(text, e, c.start) <= post_w:
                if "uncertain_post" in c.kinds:
                    found.add("uncertain")
                elif "negation_post" in c.kinds:
                    found.add("negation")
        if "uncertain" in found:
            return -1
        return 0 if "negation" in found else 1

    def label(self, text: str, lang: str = "auto") -> dict[str, float]:
        """{finding: 1.0 / 0.0 / -1.0} for the findings mentioned, plus no_finding."""
        out: dict[str, float] = {}
        for name, found in self.mentions(text, lang).items():
            statuses = {st for _, _, st in found}
            out[name] = 1.0 if 1 in statuses else (-1.0 if -1 in statuses else 0.0)
        if not any(v != 0.0 for k, v in out.items() if k not in NOT_PATHOLOGY):
            out["no_finding"] = 1.0
        return out

    def keywords(self, text: str) -> dict[str, float]:
        """The baseline: 1.0 for every finding with a phrase in the text."""
        out = {}
        for name, rx in self._candidates(text):
            if any(m.group("p") is not None for m in rx.finditer(text)):
                out[name] = 1.0
        if not any(k not in NOT_PATHOLOGY for k in out):
            out["no_finding"] = 1.0
        return out

    def check_findings(self, findings: Any) -> list[str]:
        if findings is None:
            return [f for f in DEFAULT_FINDINGS if f in self.findings] + [
                f for f in self.findings if f not in DEFAULT_FINDINGS
            ]
        if isinstance(findings, str):
            findings = [findings]
        try:
            names = list(findings)
        except TypeError:
            raise TypeError(f"findings must be a list of finding names or None; got {type(findings).__name__}") from None
        if not names:
            raise ValueError("findings is empty; pass None for every finding")
        out = []
        for n in names:
            key = normalise_name(n)
            if key not in self.findings:
                raise ValueError(
                    f"unknown finding {n!r}; known: {', '.join(self.findings)} (add one with dictionaries=)"
                )
            if key not in out:
                out.append(key)
        return out


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike, Mapping)):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{name} must be a path, a dict, or a list of them; got {type(value).__name__}") from None


@functools.lru_cache(maxsize=1)
def _default_labeler() -> ReportLabeler:
    return ReportLabeler()


def _labeler(dictionaries: Any) -> ReportLabeler:
    if isinstance(dictionaries, ReportLabeler):
        return dictionaries
    return _default_labeler() if dictionaries is None else ReportLabeler(dictionaries)


def _texts(texts: Any) -> tuple[list[str], Any]:
    """The reports as a list, and the index of the output frame."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list (or Series) of reports, not a single string; wrap it in a list")
    index = getattr(texts, "index", None) if hasattr(texts, "iloc") else None
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"texts must be an iterable of report strings; got {type(texts).__name__}") from None
    labels = list(index) if index is not None else list(range(len(items)))
    for i, t in zip(labels, items):
        if isinstance(t, (bytes, bytearray)):
            raise TypeError(f"report {i!r} is bytes; decode it first (medfuse.data.read_report reads files)")
        if not isinstance(t, str):
            raise TypeError(f"report {i!r} is {type(t).__name__}, not text")
        if not t.strip():
            raise ValueError(f"report {i!r} is empty")
    return items, index


def _check_lang(lang: str) -> None:
    if lang not in ("auto", "en", "zh"):
        raise ValueError(f"lang must be 'auto', 'en' or 'zh'; got {lang!r}")


def _frame(rows: list[dict[str, float]], names: list[str], index: Any) -> Any:
    import numpy as np
    import pandas as pd

    data = np.full((len(rows), len(names)), np.nan)
    col = {n: j for j, n in enumerate(names)}
    for i, r in enumerate(rows):
        for k, v in r.items():
            j = col.get(k)
            if j is not None:
                data[i, j] = v
    return pd.DataFrame(data, columns=names, index=index)


def label_reports(
    texts: Any,
    findings: Sequence[str] | None = None,
    lang: str = "auto",
    *,
    dictionaries: Any = None,
) -> Any:
    """Label reports: a DataFrame, one float column per finding (1, 0, -1, NaN).

    Parameters
    ----------
    texts : list / Series / array of report strings (a Series keeps its
        index). Empty, ``None``, bytes or non-text reports raise, naming
        the report.
    findings : finding names (case and spaces do not matter: "Pleural
        Effusion" = "pleural_effusion") or None for all (the 14 CheXpert
        observations, then nodule, mass, tuberculosis, cavity, tree_in_bud,
        calcified_granuloma, fibrosis, reticulation, honeycombing,
        traction_bronchiectasis, emphysema, then those of ``dictionaries``).
        Unknown names raise ValueError listing the known ones.
    lang : "auto", "en" or "zh". Both languages' phrases and cues are always
        matched; ``lang`` picks the clause rules. Chinese: a comma ends a
        clause and cue distances are counted in characters (12 before, 8
        after); English: commas do not end a clause ("no A, B or C" negates
        all three) and distances are in words (8 / 5). "auto" (right for
        mixed cohorts) decides per sentence from its characters.
    dictionaries : extra dictionary files or dicts ({finding: [phrases]}),
        added to the shipped one, or a :class:`ReportLabeler`.
    """
    _check_lang(lang)
    labeler = _labeler(dictionaries)
    names = labeler.check_findings(findings)
    items, index = _texts(texts)
    return _frame([labeler.label(t, lang) for t in items], names, index)


def keyword_labels(
    texts: Any, findings: Sequence[str] | None = None, *, dictionaries: Any = None
) -> Any:
    """Baseline: 1 where a finding's phrase occurs (no negation, no hedges), else NaN."""
    labeler = _labeler(dictionaries)
    names = labeler.check_findings(findings)
    items, index = _texts(texts)
    return _frame([labeler.keywords(t) for t in items], names, index)


def _scored_columns(predicted: Any, other: Any, name: str, findings: Sequence[str] | None) -> list[Any]:
    """The finding columns to score: ``findings``, or those ``predicted`` and ``other`` share; both frames must have
    them and the same index (``name`` is ``other``'s parameter name, for the messages)."""
    cols = list(findings) if findings is not None else [c for c in other.columns if c in predicted.columns]
    missing = [c for c in cols if c not in predicted.columns or c not in other.columns]
    if missing:
        raise ValueError(f"findings {missing} are not columns of both predicted and {name}")
    if not predicted.index.equals(other.index):
        raise ValueError(f"predicted and {name} must have the same index (one row per report, same order)")
    return cols


def score_labels(predicted: Any, truth: Any, *, findings: Sequence[str] | None = None) -> Any:
    """Per-finding precision, recall, F1 of "present" (1) against truth.

    ``truth`` is a frame of 1/0 (or True/False; NaN = unknown, the row is
    left out for that finding) with finding columns, aligned with
    ``predicted`` by index. A prediction counts as positive only when it is
    1 (uncertain and not mentioned are negative). Returns a DataFrame
    indexed by finding: n, positives, tp, fp, fn, precision, recall, f1
    (NaN where undefined).
    """
    import numpy as np
    import pandas as pd

    cols = _scored_columns(predicted, truth, "truth", findings)
    rows = []
    for c in cols:
        t = pd.to_numeric(truth[c], errors="coerce").to_numpy(dtype=float)
        known = ~np.isnan(t)
        p = predicted[c].to_numpy(dtype=float)[known] == 1.0
        y = t[known] == 1.0
        tp, fp, fn = int(np.sum(p & y)), int(np.sum(p & ~y)), int(np.sum(~p & y))
        prec = tp / (tp + fp) if tp + fp else math.nan
        rec = tp / (tp + fn) if tp + fn else math.nan
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
        rows.append({"finding": c, "n": int(known.sum()), "positives": int(y.sum()), "tp": tp, "fp": fp, "fn": fn,
                     "precision": prec, "recall": rec, "f1": f1})
    return pd.DataFrame(rows).set_index("finding")


# Open-I / IU MeSH <major> headings (lower case, before the first "/", as medfuse.data.datasets.open_i names its
# mesh_<heading> columns) -> the labeler's finding. Only headings that name one finding unambiguously.
MESH_FINDINGS: dict[str, str] = {
    "cardiomegaly": "cardiomegaly",
    "pulmonary atelectasis": "atelectasis",
    "atelectasis": "atelectasis",
    "pleural effusion": "pleural_effusion",
    "pneumothorax": "pneumothorax",
    "consolidation": "consolidation",
    "pneumonia": "pneumonia",
    "pulmonary edema": "edema",
    "edema": "edema",
    "opacity": "lung_opacity",
    "nodule": "nodule",
    "mass": "mass",
    "fractures, bone": "fracture",
    "calcified granuloma": "calcified_granuloma",
    "emphysema": "emphysema",
    "pulmonary emphysema": "emphysema",
    "pulmonary fibrosis": "fibrosis",
    "fibrosis": "fibrosis",
    "tuberculosis": "tuberculosis",
    "medical device": "support_devices",
    "implanted medical device": "support_devices",
    "catheters, indwelling": "support_devices",
}


def mesh_truth(frame: Any) -> Any:
    """Finding columns (1/0) from an Open-I cohort's MeSH ``<major>`` terms.

    ``frame``: a :func:`medfuse.data.datasets.open_i` cohort's table (or
    any frame with its ``mesh_major`` column, terms joined by ``"; "``).
    A finding is 1 when a major term's heading maps to it
    (:data:`MESH_FINDINGS`: ``Cardiomegaly/borderline`` → cardiomegaly,
    ``Pulmonary Atelectasis/base/left`` → atelectasis ...), else 0 — the
    indexers tagged what the report describes as present, so an untagged
    finding counts as absent; ``no_finding`` is 1 for reports tagged
    ``normal``. Rows whose terms are missing are NaN. The human annotation
    the labeler is scored against on real reports (issue 23, item 2).
    """
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame) or "mesh_major" not in frame.columns:
        raise ValueError("frame must be a DataFrame with the 'mesh_major' column of medfuse.data.datasets.open_i")
    cols = sorted(set(MESH_FINDINGS.values())) + ["no_finding"]
    out = pd.DataFrame(np.nan, index=frame.index, columns=cols)
    for idx, terms in frame["mesh_major"].items():
        if not isinstance(terms, str) or not terms.strip():
            continue
        heads = {t.split("/")[0].strip().lower() for t in terms.split(";") if t.strip()}
        row = dict.fromkeys(cols, 0.0)
        for h in heads:
            if h in MESH_FINDINGS:
                row[MESH_FINDINGS[h]] = 1.0
        row["no_finding"] = 1.0 if heads == {"normal"} else 0.0
        out.loc[idx] = pd.Series(row)
    return out


def synthetic_truth(truth: Any) -> Any:
    """Finding columns (1/0/NaN) from a synthetic cohort's ``truth`` table.

    The lung-nodule model puts one nodule in every case (``diameter_mm``)
    and never an effusion or a pneumothorax: nodule = 1, pleural_effusion =
    pneumothorax = 0; every other finding is unknown (NaN; e.g. the
    reports' "mild emphysema" is template text the truth does not record).
    A truth column named like a finding (``cavity``, ``honeycombing``, ...:
    0/1 or bool; a number counts as present when non-zero) is used as that
    finding's truth: the disease model's truth (``synthetic_cohort(task=
    "disease")``) has ``nodule``, ``pleural_effusion``, ``consolidation``,
    ``cavity``, ``tree_in_bud``, ``calcified_granuloma``, ``fibrosis``
    (extent > 0), ``reticulation``, ``honeycombing`` and
    ``traction_bronchiectasis``. That is the latent truth: its reports miss
    some findings on purpose (a radiologist's sensitivity), so recall
    against it is below 1 by design.
    """
    import numpy as np
    import pandas as pd

    out = pd.DataFrame(index=truth.index)
    if "diameter_mm" in truth.columns:
        out["nodule"] = (pd.to_numeric(truth["diameter_mm"], errors="coerce") > 0).astype(float)
        out["pleural_effusion"] = 0.0
        out["pneumothorax"] = 0.0
    for name in DEFAULT_FINDINGS:
        if name in truth.columns and name != "no_finding":
            out[name] = pd.to_numeric(truth[name].astype(object).map(
                lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else float(bool(v))
            ), errors="coerce")
    return out


def stated_labels(truth: Any) -> Any:
    """What each synthetic report states per finding (1 / 0 / -1 / NaN), from a cohort's ``truth``.

    The disease model's truth (``synthetic_cohort(task="disease")``) has a
    ``stated_<finding>`` column per finding its report generator can state
    (:data:`medfuse.data.synthetic.STATED_FINDINGS`), recorded with each
    sentence written: the target a report labeler should reproduce, where
    the latent findings (:func:`synthetic_truth`) differ by design. Rows
    without a report keep their values (the text existed before the
    modality was dropped). Raises ValueError when there is no such column.
    """
    import pandas as pd

    cols = [c for c in truth.columns if str(c).startswith("stated_")]
    if not cols:
        raise ValueError("truth has no stated_<finding> columns (made by synthetic_cohort(task='disease'))")
    out = truth[cols].apply(pd.to_numeric, errors="coerce").astype(float)
    out.columns = [str(c)[len("stated_"):] for c in cols]
    return out


def score_assertions(predicted: Any, stated: Any, *, findings: Sequence[str] | None = None) -> Any:
    """Per finding: how well predicted labels reproduce the stated ones, value by value.

    ``predicted`` and ``stated`` hold 1 / 0 / -1 / NaN (the CheXpert
    convention) with finding columns and the same index. Returns a
    DataFrame indexed by finding with ``n`` (rows), ``mentioned`` (stated
    not NaN), ``present``, ``absent``, ``uncertain`` (how many stated each),
    ``f1_present``, ``f1_absent``, ``f1_uncertain`` (F1 of each value as a
    class: NaN when neither side has it) and ``agreement`` (fraction of
    rows where the two are equal, NaN = NaN counting as equal).
    """
    import numpy as np
    import pandas as pd

    cols = _scored_columns(predicted, stated, "stated", findings)
    rows = []
    for c in cols:
        s = pd.to_numeric(stated[c], errors="coerce").to_numpy(dtype=float)
        p = pd.to_numeric(predicted[c], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isnan(s) & ~np.isin(s, (1.0, 0.0, -1.0))
        if bad.any():
            raise ValueError(f"stated[{c!r}] holds {s[bad][0]!r}; expected 1, 0, -1 or NaN")
        row: dict[str, Any] = {"finding": c, "n": len(s), "mentioned": int(np.sum(~np.isnan(s)))}
        for name, v in (("present", 1.0), ("absent", 0.0), ("uncertain", -1.0)):
            row[name] = int(np.sum(s == v))
        for name, v in (("present", 1.0), ("absent", 0.0), ("uncertain", -1.0)):
            a, b = p == v, s == v
            denom = int(a.sum() + b.sum())
            row[f"f1_{name}"] = 2 * int(np.sum(a & b)) / denom if denom else math.nan
        row["agreement"] = float(np.mean((p == s) | (np.isnan(p) & np.isnan(s)))) if len(s) else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("finding")
