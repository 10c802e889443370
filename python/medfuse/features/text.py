"""Report text features: tokenisation (English, Chinese), negation, embeddings.

:class:`ReportVectorizer` turns report strings into a dense feature matrix:
the TF-IDF-weighted mean of word vectors (gensim Word2Vec or FastText
trained on the fitted corpus, or given KeyedVectors), followed (by default)
by a TF-IDF block. Tokens inside a negation scope are marked ``NEG_<token>``.

Tokenisation (:func:`tokenize`):

- a text containing CJK characters is cut with jieba (a private
  ``jieba.Tokenizer``, initialised on first use with the medical user
  dictionary shipped in ``medfuse/resources/medical_dict_zh.txt``; jieba's
  start-up log is silenced). Latin words inside it are lower-cased;
- any other text: the regex ``[a-z]+(?:[-'][a-z]+)*|\\d+(?:\\.\\d+)?`` on
  the lower-cased text (so "ground-glass" and "12.5" stay whole), plus
  punctuation tokens used only as negation terminators;
- negation (NegEx-style, :func:`mark_negation`) runs on the token stream
  with the trigger and terminator lists of both languages; trigger phrases
  are removed, the tokens in scope are prefixed ``NEG_``;
- stop words (``stopwords_en.txt``, ``stopwords_zh.txt``) and punctuation
  are dropped last.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import zlib
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["ReportVectorizer", "mark_negation", "tokenize"]

# ------------------------------------------------------------------ negation

# Phrases are written as token sequences: English words separated by spaces;
# Chinese phrases are matched against the concatenation of jieba tokens.
EN_PRE_TRIGGERS = (
    "no", "not", "without", "negative for", "free of", "absence of", "absent", "no evidence of",
    "no sign of", "no signs of", "no evidence for", "denies", "denied", "never", "cannot", "none",
    "nor", "neither", "no suspicious", "there is no", "there are no", "rules out",
)
EN_POST_TRIGGERS = (
    "ruled out", "is ruled out", "was ruled out", "are ruled out", "excluded", "is excluded",
    "was excluded", "unlikely", "not seen", "not identified", "not detected", "not present",
    "is absent", "are absent", "was absent", "is not seen", "are not seen", "is not identified",
)
# Hedges and look-alikes that must NOT start a negation ("cannot exclude").
EN_PSEUDO = (
    "cannot exclude", "cannot be excluded", "can not be excluded", "not excluded", "not be excluded",
    "not ruled out", "cannot rule out", "cannot be ruled out", "not be ruled out", "rule out",
    "no change", "no significant change", "no interval change", "no increase", "not only",
    "not necessarily", "without change", "no further", "not certain", "not clear",
)
EN_TERMINATORS = (
    "but", "however", "although", "though", "except", "apart from", "aside from", "yet",
    "whereas", "nevertheless", "which", "who", "still", "otherwise", "although",
)
ZH_PRE_TRIGGERS = (
    "无", "未见", "未", "否认", "排除", "没有", "不伴", "不伴有", "未发现", "未见明显", "未闻及",
    "未触及", "无明显", "非", "未见异常",
)
ZH_POST_TRIGGERS = ("已排除", "可排除", "可能性小", "可能性不大")
ZH_PSEUDO = ("不除外", "不能排除", "不排除", "无法排除", "难以排除", "未除外", "不能除外", "无法除外", "待排除", "待排")
ZH_TERMINATORS = ("但", "但是", "然而", "不过", "可见", "伴", "伴有", "而", "另见", "此外")
PUNCT_TERMINATORS = frozenset(".;,:!?。；，：！？")  # "、" continues an enumeration
NEG_WINDOW = 8  # content tokens a trigger can reach

_PRE = frozenset(EN_PRE_TRIGGERS) | frozenset(ZH_PRE_TRIGGERS)
_POST = frozenset(EN_POST_TRIGGERS) | frozenset(ZH_POST_TRIGGERS)
_PSEUDO = frozenset(EN_PSEUDO) | frozenset(ZH_PSEUDO)
_TERM = frozenset(EN_TERMINATORS) | frozenset(ZH_TERMINATORS)
_MAX_PHRASE = 4
_NUMBER_OR_UNIT = re.compile(r"\d+(?:\.\d+)?|mm|cm|ml|hu")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_EN_TOKEN = re.compile(r"[a-z]+(?:[-'][a-z]+)*|\d+(?:\.\d+)?|[.;,:!?]")
_ZH_KEEP = re.compile(r"[\w\u3400-\u4dbf\u4e00-\u9fff.;,:!?。；，：！？]")


def _phrase_at(tokens: Sequence[str], i: int) -> tuple[str, int] | None:
    """Longest trigger/pseudo/terminator phrase starting at i: (kind, length)."""
    for length in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
        window = tokens[i : i + length]
        keys = {" ".join(window), "".join(window)}
        for kind, table in (("pseudo", _PSEUDO), ("post", _POST), ("pre", _PRE), ("term", _TERM)):
            if keys & table:
                return kind, length
    return None


def mark_negation(tokens: Sequence[str], window: int = NEG_WINDOW) -> list[str]:
    """NegEx-style scopes over a token list (punctuation tokens included).

    A pre-trigger ("no", "without", "negative for", 无, 未见, ...) negates
    up to ``window`` following content tokens; a post-trigger ("ruled
    out", "unlikely", 可能性不大, ...) negates the content tokens since the
    last terminator. Scopes end at punctuation (except "、"), at terminator
    words ("but", "however", 但, 然而, ...) and at the next trigger. Pseudo
    triggers ("cannot exclude", "not ruled out", 不除外, 不能排除) are
    hedges: they negate nothing and are kept as one token
    ("cannot_be_excluded"). Triggers
    and terminators are dropped from the output; punctuation is kept (for
    the caller to drop). Marked tokens become ``NEG_<token>``; numbers and
    units (mm, cm, ml, hu) are never marked and do not use up the window.
    """
    out: list[str] = []
    clause_start = 0  # index in out where the current clause starts
    remaining = 0
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        if tok in PUNCT_TERMINATORS:
            out.append(tok)
            remaining = 0
            clause_start = len(out)
            i += 1
            continue
        found = _phrase_at(tokens, i)
        if found is not None:
            kind, length = found
            if kind == "pseudo":  # one token, e.g. "cannot_be_excluded", "不除外"
                words = tokens[i : i + length]
                out.append("".join(words) if _CJK.search(words[0]) else "_".join(words))
                i += length
                continue
            if kind == "term":
                remaining = 0
                clause_start = len(out)
            elif kind == "pre":
                remaining = window
            else:  # post: negate back to the clause start
                start = max(clause_start, len(out) - window)
                for k in range(start, len(out)):
                    if not out[k].startswith("NEG_") and out[k] not in PUNCT_TERMINATORS:
                        out[k] = "NEG_" + out[k]
                remaining = 0
            i += length
            continue
        if remaining > 0 and not _NUMBER_OR_UNIT.fullmatch(tok):
            out.append("NEG_" + tok)
            if tok not in _stop_words():
                remaining -= 1
        else:
            out.append(tok)  # measurements ("12", "mm") are never negated
        i += 1
    return out


# -------------------------------------------------------------- tokenisation


def _data_text(name: str) -> str:
    return resources.files("medfuse").joinpath("resources").joinpath(name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    words: set[str] = set()
    for name in ("stopwords_en.txt", "stopwords_zh.txt"):
        for line in _data_text(name).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                words.add(line.lower())
    return frozenset(words)


_JIEBA_LOCK = threading.Lock()
_JIEBA: Any = None


def _jieba_tokenizer() -> Any:
    """A private jieba.Tokenizer with the medical dictionary, built once, quietly."""
    global _JIEBA
    if _JIEBA is not None:
        return _JIEBA
    with _JIEBA_LOCK:
        if _JIEBA is None:
            import jieba

            logger = logging.getLogger("jieba")
            level = logger.level
            logger.setLevel(logging.WARNING)  # "Building prefix dict ..." goes to stderr otherwise
            try:
                tok = jieba.Tokenizer()
                tok.initialize()
                for line in _data_text("medical_dict_zh.txt").splitlines():
                    parts = line.split()
                    if parts and not parts[0].startswith("#"):
                        freq = int(parts[1]) if len(parts) > 1 else None
                        tag = parts[2] if len(parts) > 2 else None
                        tok.add_word(parts[0], freq, tag)
            finally:
                logger.setLevel(level)
            _JIEBA = tok
    return _JIEBA


def tokenize(text: str, *, negation: bool = True, stop_words: bool = True) -> list[str]:
    """Tokens of one report (see the module doc): lower-cased, NEG_-marked."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    if _CJK.search(text):
        raw = []
        for t in _jieba_tokenizer().cut(text):
            t = t.strip().lower()
            if not t or not _ZH_KEEP.match(t):
                continue
            if _CJK.search(t) or t in PUNCT_TERMINATORS:
                raw.append(t)
            else:
                raw.extend(_EN_TOKEN.findall(t))
    else:
        raw = _EN_TOKEN.findall(text.lower())
    tokens = mark_negation(raw) if negation else raw
    stops = _stop_words() if stop_words else frozenset()
    out = []
    for t in tokens:
        if t in PUNCT_TERMINATORS:
            continue
        base = t.removeprefix("NEG_")
        if base in stops:
            continue
        out.append(t)
    return out


# ---------------------------------------------------------------- vectorizer


def _stable_hash(text: str) -> int:
    """Process-independent hash for gensim's vector initialisation."""
    return zlib.crc32(text.encode("utf-8"))


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _as_texts(X: Any, name: str = "X") -> list[str]:
    """Validate report input: a 1D sequence of str (or one text column)."""
    if isinstance(X, str):
        raise TypeError(f"{name} must be an iterable of report strings, not a single str; wrap it in a list")
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:
        if X.shape[1] != 1:
            raise ValueError(f"{name} must be 1D or a single text column; got shape {X.shape}")
        X = X.iloc[:, 0]
    arr = X if isinstance(X, np.ndarray) else None
    if arr is not None:
        if arr.ndim == 2 and arr.shape[1] == 1:
            X = arr[:, 0]
        elif arr.ndim != 1:
            raise ValueError(f"{name} must be 1D or a single text column; got shape {arr.shape}")
    try:
        texts = list(X)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of report strings; got {type(X).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(
                f"{name} must contain report strings (ReportVectorizer takes text, not numbers); "
                f"element {i} is {type(t).__name__}"
            )
    if not texts:
        raise ValueError(f"{name} is empty: found 0 reports; at least 1 is required")
    return texts


class ReportVectorizer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Reports → dense features: pooled word vectors (+ optional TF-IDF).

    Parameters
    ----------
    embedding : {"word2vec", "fasttext"}
        Model trained on the fitted corpus (ignored when ``keyed_vectors``
        is given).
    keyed_vectors : gensim KeyedVectors or None
        Pre-trained vectors to use instead of training (not modified).
    vector_size, window, epochs, sg : int
        gensim training parameters (``sg=1`` skip-gram, 0 CBOW).
    min_count : int
        Tokens seen fewer times in the fitted corpus are left out of the
        pooled mean (the model itself trains on every token, so tiny
        corpora still work).
    tfidf : bool
        Append a TF-IDF block (sklearn TfidfVectorizer on the same tokens
        and their n-grams, ``max_features`` most frequent terms, l2-normed
        rows), dense. On by default: on a corpus of a few thousand reports a
        Word2Vec model trained on it is weak, and the pooled vectors alone
        lose to plain TF-IDF (``benchmarks/eval_text.py`` measures it).
    ngram_range : (int, int)
        Smallest and largest n of the TF-IDF block's word n-grams (after
        negation marking and stop words; ``(1, 2)`` adds word pairs such as
        "pleural effusion", "NEG_focal NEG_consolidation"). 1 <= lo <= hi
        <= 4. Default words only: pairs scored slightly lower on every
        corpus measured (``benchmarks/eval_text.py``), the negation marks
        already carrying what "no effusion" needs. The pooled word vectors
        always use single words.
    sublinear_tf : bool
        TF-IDF term frequency ``1 + log(tf)`` instead of ``tf`` (a finding
        repeated in a report counts little more than once).
    min_df : int
        TF-IDF terms in fewer fitted reports are dropped (1 keeps all).
    max_features : int or None
        Size cap of the TF-IDF block (the most frequent terms).
    negation, stop_words : bool
        Mark negated tokens ``NEG_<token>``; drop stop words.
    seed : int
        gensim seed; training uses one worker and a process-independent
        hash, so results are identical across runs and processes.

    Input: an iterable of str (list, 1D array, Series, or a one-column
    DataFrame/array). Missing reports must be handled by the caller (None
    is refused). A report with no known token gets a zero vector. Output
    columns: ``<embedding>_<i>`` then ``tfidf_<term>``; float64.
    """

    def __init__(
        self,
        *,
        embedding: str = "word2vec",
        keyed_vectors: Any = None,
        vector_size: int = 32,
        window: int = 5,
        min_count: int = 1,
        epochs: int = 20,
        sg: int = 1,
        tfidf: bool = True,
        ngram_range: tuple[int, int] = (1, 1),
        sublinear_tf: bool = True,
        min_df: int = 1,
        max_features: int | None = 2000,
        negation: bool = True,
        stop_words: bool = True,
        seed: int = 0,
    ) -> None:
        self.embedding = embedding
        self.keyed_vectors = keyed_vectors
        self.vector_size = vector_size
        self.window = window
        self.min_count = min_count
        self.epochs = epochs
        self.sg = sg
        self.tfidf = tfidf
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.min_df = min_df
        self.max_features = max_features
        self.negation = negation
        self.stop_words = stop_words
        self.seed = seed

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags

    def _tokenize_all(self, texts: Iterable[str]) -> list[list[str]]:
        return [tokenize(t, negation=self.negation, stop_words=self.stop_words) for t in texts]

    def _check_params(self) -> None:
        if self.keyed_vectors is None and self.embedding not in ("word2vec", "fasttext"):
            raise ValueError(f"embedding must be 'word2vec' or 'fasttext'; got {self.embedding!r}")
        for name in ("vector_size", "window", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, (int, np.integer)) or self.min_count < 1:
            raise ValueError(f"min_count must be a positive integer; got {self.min_count!r}")
        ng = self.ngram_range
        if (
            not isinstance(ng, (tuple, list))
            or len(ng) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in ng)
            or not 1 <= ng[0] <= ng[1] <= 4
        ):
            raise ValueError(f"ngram_range must be two integers (lo, hi) with 1 <= lo <= hi <= 4; got {ng!r}")
        if isinstance(self.min_df, bool) or not isinstance(self.min_df, (int, np.integer)) or self.min_df < 1:
            raise ValueError(f"min_df must be a positive integer (a number of reports); got {self.min_df!r}")
        if self.max_features is not None and (
            isinstance(self.max_features, bool) or not isinstance(self.max_features, (int, np.integer)) or self.max_features < 1
        ):
            raise ValueError(f"max_features must be a positive integer or None; got {self.max_features!r}")

    def fit(self, X: Any, y: Any = None) -> ReportVectorizer:
        """Tokenise, fit IDF weights and train (or adopt) word vectors."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._check_params()
        docs = self._tokenize_all(_as_texts(X))
        # IDF for pooling weights over the whole vocabulary.
        self.idf_vectorizer_ = TfidfVectorizer(analyzer=_identity, lowercase=False, norm=None)
        self._fit_tfidf(self.idf_vectorizer_, docs)
        if self.tfidf:
            self.tfidf_vectorizer_ = TfidfVectorizer(
                analyzer=_identity, lowercase=False, max_features=self.max_features,
                sublinear_tf=bool(self.sublinear_tf), min_df=1,
            )
            grams = self._ngrams(docs)
            if int(self.min_df) > 1:  # sklearn refuses a min_df that leaves no term; keep the cap lenient
                df: dict[str, int] = {}
                for d in grams:
                    for t in set(d):
                        df[t] = df.get(t, 0) + 1
                kept = [[t for t in d if df[t] >= int(self.min_df)] for d in grams]
                grams = kept if any(kept) else grams
            self._fit_tfidf(self.tfidf_vectorizer_, grams)
        if self.keyed_vectors is not None:
            kv = self.keyed_vectors
            if not hasattr(kv, "key_to_index") or not hasattr(kv, "vector_size"):
                raise TypeError("keyed_vectors must be a gensim KeyedVectors")
            self.wv_ = kv
            self.embedding_name_ = "kv"
        else:
            self.wv_ = self._train(docs)
            self.embedding_name_ = self.embedding
        self.vector_size_ = int(self.wv_.vector_size)
        return self

    def _ngrams(self, docs: list[list[str]]) -> list[list[str]]:
        """Each document's word n-grams for ``ngram_range`` (words joined by one space)."""
        lo, hi = (int(v) for v in self.ngram_range)
        out = []
        for d in docs:
            grams = list(d) if lo == 1 else []
            for n in range(max(lo, 2), hi + 1):
                grams.extend(" ".join(d[i : i + n]) for i in range(len(d) - n + 1))
            out.append(grams)
        return out

    @staticmethod
    def _fit_tfidf(vec: Any, docs: list[list[str]]) -> None:
        if any(docs):
            vec.fit(docs)
        else:  # no token at all: a vocabulary of one dummy term keeps shapes sane
            vec.fit([["<empty>"]])

    def _train(self, docs: list[list[str]]) -> Any:
        from gensim.models import FastText, Word2Vec

        sentences = [d for d in docs if d] or [["<empty>"]]
        common: dict[str, Any] = {
            "vector_size": int(self.vector_size),
            "window": int(self.window),
            "min_count": 1,  # min_count is applied when pooling, so tiny corpora still train
            "workers": 1,
            "seed": int(self.seed),
            "sg": int(self.sg),
            "epochs": int(self.epochs),
            "hashfxn": _stable_hash,
        }
        cls = FastText if self.embedding == "fasttext" else Word2Vec
        model = cls(sentences=sentences, **common)
        counts: dict[str, int] = {}
        for d in docs:
            for t in d:
                counts[t] = counts.get(t, 0) + 1
        self.token_counts_ = counts
        return model.wv

    def transform(self, X: Any) -> npt.NDArray[np.float64]:
        """Feature matrix (n_reports, n_features), float64."""
        check_is_fitted(self, "wv_")
        docs = self._tokenize_all(_as_texts(X))
        emb = np.zeros((len(docs), self.vector_size_), dtype=np.float64)
        idf = self.idf_vectorizer_.idf_
        vocab = self.idf_vectorizer_.vocabulary_
        counts = getattr(self, "token_counts_", None)
        fasttext = self.keyed_vectors is None and self.embedding == "fasttext"
        for r, doc in enumerate(docs):
            tf: dict[str, int] = {}
            for t in doc:
                tf[t] = tf.get(t, 0) + 1
            total = 0.0
            acc = np.zeros(self.vector_size_, dtype=np.float64)
            for t, c in sorted(tf.items()):
                if counts is not None and counts.get(t, 0) < self.min_count and not fasttext:
                    continue
                if t not in self.wv_.key_to_index and not fasttext:
                    continue
                w = c * (float(idf[vocab[t]]) if t in vocab else float(idf.max()))
                acc += w * np.asarray(self.wv_[t], dtype=np.float64)
                total += w
            if total > 0:
                emb[r] = acc / total
        if not self.tfidf:
            return emb
        block = self.tfidf_vectorizer_.transform(self._ngrams(docs)).toarray().astype(np.float64)
        return np.hstack([emb, block])

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """``<embedding>_<i>`` for the vector block, ``tfidf_<term>`` for TF-IDF."""
        check_is_fitted(self, "wv_")
        names = [f"{self.embedding_name_}_{i}" for i in range(self.vector_size_)]
        if self.tfidf:
            names += [f"tfidf_{t}" for t in self.tfidf_vectorizer_.get_feature_names_out()]
        return np.asarray(names, dtype=object)
