"""DeepFusionClassifier: CNN + RNN encoders and attention fusion, trained end to end.

Input (``fit`` / ``predict_proba``): a :class:`~medfuse.data.Cohort`, a
sequence of :class:`~medfuse.data.PatientRecord`, or a
:class:`~medfuse.learn.deep.DeepInputs` from
:func:`~medfuse.learn.deep.prepare_inputs` (prepare a cohort once, then
slice it per fold: ``inputs.subset(idx)``). ``y`` defaults to the cohort's
labels: two classes (one logit, binary cross-entropy) or more (one logit
per class, softmax and cross-entropy), strings or numbers, not mixed;
``classes_`` sorted, ``predict_proba`` columns in that order.

Behaviour with missing data (documented, tested): a patient missing some
modalities is trained on and predicted (absent modality tokens are masked
out of the attention); a patient with none is scored by the learned prior
(the [CLS] token alone); a modality absent from every patient only leaves
its encoder untrained. Labels with one class raise ValueError.

The fitted model is ``config_`` (a JSON-able dict) plus ``state_dict_``
(name -> NumPy array); pickling stores exactly those (no torch objects), so
the model can move to a safetensors file as is.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

from ...nn._torch import require_torch, torch_threads
from .._columns import image_blocks
from .inputs import DeepInputs, prepare_inputs

__all__ = ["DeepFusionClassifier"]

_PAD, _UNK = "<pad>", "<unk>"


class DeepFusionClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Deep multimodal classifier (see the module doc and :mod:`medfuse.learn.deep.network`).

    Parameters
    ----------
    d_model, heads, layers : fusion transformer width, heads, depth.
    widths : channels of the 3 stride-2 convolutions of each image encoder.
    embedding_dim, rnn_hidden, rnn : report encoder ("gru" or "lstm").
    word2vec : initialise the embeddings from a Word2Vec model trained on
        the training reports (gensim, ``embedding_dim`` wide); else random.
    min_count : tokens seen fewer times in training become ``<unk>``.
    ops : "medfuse" (medfuse's conv2d / attention operators) or "torch".
    max_epochs, batch_size, lr, weight_decay : Adam training.
    validation_fraction, patience : early stopping on the validation loss
        of a stratified split of the training patients; the best epoch's
        weights are kept. ``validation_fraction=0`` trains ``max_epochs``.
    xray_size, ct_size, ct_input, ct_patch_mm, max_tokens : input
        preparation (:func:`~medfuse.learn.deep.prepare_inputs`), used when
        X is not already a DeepInputs.
    audio, audio_mels, audio_frames : the lung-sound encoder (a CNN on the
        log-mel spectrogram, ``audio_mels`` x ``audio_frames``); used when the
        inputs hold audio.
    feature_blocks : one token per hand-made feature block (ct__*, xray__*,
        audio__* of the feature table given to ``prepare(X, features=...)``),
        each an MLP (``block_hidden`` wide) on the columns standardised on
        the training patients; used when the inputs hold a table.
    bag : the report as a bag of tokens, one more token.
    wide : a linear map of the standardised table added to the logits.
    wide_text : a linear map of the report's TF-IDF added to the logits too
        (sublinear term frequency and smooth idf over the model's vocabulary,
        rows l2-normed, columns standardised, all on the training patients:
        the text part of early fusion's linear model), trained end to end
        from zero with the rest (with ``wide_init="logreg"`` the warm start
        fits the table and the TF-IDF together). On by default: on cohort
        seeds 1-5 (n = 200, 5-fold CV) it changed the macro AUC by -0.004,
        -0.001, +0.003, -0.003, +0.019 (mean +0.003; deep minus early fusion
        from -0.004 to -0.001 on average, worst seed -0.017 -> -0.005), at no
        measurable cost; without the bag-of-tokens token -0.003 / -0.001 on
        seeds 1 / 2; with the warm start (C = 1) -0.012 on seed 1.
    wide_init : "random" (torch's default initialisation) or "logreg" (a
        "wide & deep" start: each network's wide path starts as a
        multinomial, or binary, logistic regression fitted on its training
        split's standardised table (and report TF-IDF, with ``wide_text``)
        with inverse L2 strength ``wide_C``, and
        the deep branch's output layer at zero, so training starts at the
        linear solution; the start's validation loss competes in early
        stopping, so it is kept when no epoch beats it). "random" is the
        default: on cohort seeds 1 and 2 (n = 200, 5-fold CV) the warm start
        lowered the macro AUC (C = 1: -0.014; C = 0.1: -0.002 to -0.005).
    wide_C : the warm start's inverse L2 strength (sklearn's ``C``), > 0.
    dropout, modality_dropout : dropout on tokens, MLPs and the head; the
        probability of masking each present token in training (a patient
        keeps at least one).
    ensemble : networks averaged (their logits), each with its own seed,
        inner validation split and batch order (5: on cohort seeds 1 and 2 at
        n = 200, 3 -> 5 networks raised the macro AUC by 0.003; 6 no more).
    snapshots : each network keeps the mean of the weights of its
        ``snapshots`` epochs of lowest validation loss (snapshot averaging;
        1: the best epoch's weights). Needs a validation split.
    label_smoothing : the training target mixes the one-hot label with the
        uniform distribution by this weight (in [0, 1)); the validation loss
        of early stopping is the plain cross-entropy.
    random_state : seed (torch, the split, Word2Vec). Results are identical
        for a seed and a thread count; torch uses the learners' thread count
        (``medfuse.kernels._threads.learner_threads()``: 1 unless
        :func:`medfuse.set_learner_threads` raises it, never more than
        :func:`medfuse.get_num_threads`) during fit/predict: with a core busy
        elsewhere, 2 torch threads cost 14x the CPU of one (spinning at
        barriers; benchmarks/busy_core.py).
    verbose : 1 shows a tqdm bar over epochs; 0 is silent.
    extraction : the settings of the extraction that made the feature table
        (:meth:`medfuse.extract.CohortFeatures.settings`, a JSON-able dict;
        or the CohortFeatures itself), or None. Not read by the model: it is
        kept with it (model file, card) so that ``medfuse predict`` extracts
        the feature blocks of new patients as at training (``medfuse train
        --fusion deep`` sets it).
    """

    def __init__(
        self,
        *,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        widths: tuple[int, ...] = (8, 16, 32),
        embedding_dim: int = 32,
        rnn_hidden: int = 32,
        rnn: str = "gru",
        word2vec: bool = True,
        min_count: int = 1,
        ops: str = "medfuse",
        max_epochs: int = 40,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        validation_fraction: float = 0.2,
        patience: int = 5,
        xray_size: int = 64,
        ct_size: int = 32,
        ct_input: str = "nodule",
        ct_patch_mm: float = 48.0,
        max_tokens: int = 96,
        audio: bool = True,
        audio_mels: int = 32,
        audio_frames: int = 256,
        feature_blocks: bool = True,
        bag: bool = True,
        wide: bool = True,
        wide_text: bool = True,
        wide_init: str = "random",
        wide_C: float = 1.0,
        block_hidden: int = 32,
        dropout: float = 0.25,
        modality_dropout: float = 0.1,
        ensemble: int = 5,
        label_smoothing: float = 0.1,
        snapshots: int = 1,
        random_state: int = 0,
        verbose: int = 0,
        extraction: Any = None,
    ) -> None:
        self.d_model = d_model
        self.heads = heads
        self.layers = layers
        self.widths = widths
        self.embedding_dim = embedding_dim
        self.rnn_hidden = rnn_hidden
        self.rnn = rnn
        self.word2vec = word2vec
        self.min_count = min_count
        self.ops = ops
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.xray_size = xray_size
        self.ct_size = ct_size
        self.ct_input = ct_input
        self.ct_patch_mm = ct_patch_mm
        self.max_tokens = max_tokens
        self.audio = audio
        self.audio_mels = audio_mels
        self.audio_frames = audio_frames
        self.feature_blocks = feature_blocks
        self.bag = bag
        self.wide = wide
        self.wide_text = wide_text
        self.wide_init = wide_init
        self.wide_C = wide_C
        self.block_hidden = block_hidden
        self.dropout = dropout
        self.modality_dropout = modality_dropout
        self.ensemble = ensemble
        self.label_smoothing = label_smoothing
        self.snapshots = snapshots
        self.random_state = random_state
        self.verbose = verbose
        self.extraction = extraction

    # ---------------------------------------------------------------- checks
    def _check_params(self) -> None:
        ints = dict(d_model=1, heads=1, layers=0, embedding_dim=1, rnn_hidden=1, min_count=1, max_epochs=1,
                    batch_size=1, patience=1, block_hidden=1, ensemble=1, snapshots=1)
        for name, lo in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
        if self.d_model % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide d_model ({self.d_model})")
        if not self.widths or not all(isinstance(w, (int, np.integer)) and w >= 1 for w in self.widths):
            raise ValueError(f"widths must be a non-empty sequence of positive integers; got {self.widths!r}")
        if self.rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm'; got {self.rnn!r}")
        if self.ops not in ("medfuse", "torch"):
            raise ValueError(f"ops must be 'medfuse' or 'torch'; got {self.ops!r}")
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number; got {v!r}")
        for name in ("dropout", "modality_dropout", "label_smoothing"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1); got {v!r}")
        for name in ("audio", "feature_blocks", "bag", "wide", "wide_text"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if self.wide_init not in ("logreg", "random"):
            raise ValueError(f"wide_init must be 'logreg' or 'random'; got {self.wide_init!r}")
        c = self.wide_C
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not np.isfinite(c) or c <= 0:
            raise ValueError(f"wide_C must be a positive number; got {c!r}")
        vf = self.validation_fraction
        if not isinstance(vf, (int, float)) or not 0.0 <= vf < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1); got {vf!r}")
        _extraction_settings(self.extraction)

    def prepare(self, X: Any, features: Any = None, workers: int | None = None) -> DeepInputs:
        """:func:`~medfuse.learn.deep.prepare_inputs` with this model's input settings.

        ``features``: the extracted feature table of these patients (a DataFrame), for the hand-made
        feature-block tokens; it is left out (no ``table``) when ``feature_blocks`` is False or it has no
        ct__*, xray__* or audio__* column, so callers pass the table as it is. X already a DeepInputs is
        returned as is; giving ``features`` with it raises ValueError (its table was made when it was prepared).
        """
        if isinstance(X, DeepInputs):
            if features is not None:
                raise ValueError("features cannot be added to prepared DeepInputs: give the feature table when "
                                 "preparing them (prepare(patients, features=...) or prepare_inputs(..., features=...))")
            return X
        if features is not None:
            import pandas as pd

            if not isinstance(features, pd.DataFrame):
                raise TypeError("features must be a pandas DataFrame (a medfuse feature table); "
                                f"got {type(features).__name__}")
            if not self.feature_blocks or not image_blocks(features):
                features = None  # no feature-block token to feed
        return prepare_inputs(X, xray_size=self.xray_size, ct_size=self.ct_size, ct_input=self.ct_input,
                              ct_patch_mm=self.ct_patch_mm, max_tokens=self.max_tokens, audio_mels=self.audio_mels,
                              audio_frames=self.audio_frames, features=features, workers=workers)

    def _inputs(self, X: Any) -> DeepInputs:
        return self.prepare(X)

    # ---------------------------------------------------------------- tensors
    def _batch_tensors(self, data: DeepInputs, idx: npt.NDArray[np.int64]) -> tuple[Any, ...]:
        import torch

        vocab = self.vocabulary_
        unk = vocab[_UNK]
        seqs = [[vocab.get(t, unk) for t in data.tokens[i]] for i in idx]
        length = max(1, max((len(s) for s in seqs), default=1))
        ids = np.zeros((len(idx), length), np.int64)
        for j, s in enumerate(seqs):
            ids[j, :len(s)] = s
        lengths = np.array([len(s) for s in seqs], np.int64)
        cfg: dict[str, Any] = self.config_
        present = data.present[idx, :3]
        audio = table = None
        if cfg.get("audio"):
            au = data.audio_present[idx] if data.audio_present is not None else np.zeros(len(idx), bool)
            present = np.column_stack([present, au])
            shape = (len(idx), 1, int(cfg["inputs"]["audio_mels"]), int(cfg["inputs"]["audio_frames"]))
            audio = torch.from_numpy(np.ascontiguousarray(data.audio[idx]) if data.audio is not None
                                     else np.zeros(shape, np.float32))
        if cfg.get("table_columns"):
            assert data.table is not None  # checked by _aligned
            table = torch.from_numpy(np.ascontiguousarray(data.table[idx]))
        return (torch.from_numpy(data.ct[idx]), torch.from_numpy(data.xray[idx]), torch.from_numpy(ids),
                torch.from_numpy(lengths), torch.from_numpy(np.ascontiguousarray(present)), audio, table)

    def _aligned(self, data: DeepInputs) -> DeepInputs:
        """``data`` with the hand-made feature columns in the network's order (a copy when they differ);
        ValueError when the inputs lack what the network reads."""
        import dataclasses

        config: dict[str, Any] = self.config_
        cols = list(config.get("table_columns", []))
        if cols:
            if data.table is None:
                raise ValueError("this model reads hand-made feature blocks: prepare the inputs with "
                                 "prepare_inputs(..., features=<the extracted feature table>)")
            pos = {c: i for i, c in enumerate(data.table_columns)}
            absent = [c for c in cols if c not in pos]
            if absent:
                raise ValueError(f"features lacks {len(absent)} column(s) the model was trained with, e.g. {absent[0]!r}")
            if list(data.table_columns) != cols:
                data = dataclasses.replace(data, table=data.table[:, [pos[c] for c in cols]], table_columns=cols)
        if config.get("audio") and data.audio is not None:
            want = (int(config["inputs"]["audio_mels"]), int(config["inputs"]["audio_frames"]))
            if tuple(data.audio.shape[2:]) != want:
                raise ValueError(f"audio spectrograms are {tuple(data.audio.shape[2:])} (mels, frames); the model "
                                 f"was trained on {want}")
        return data

    @staticmethod
    def _threads() -> Any:
        """torch at the learners' thread count during fit and predict (see the class doc)."""
        from ...kernels._threads import learner_threads

        return torch_threads(learner_threads())

    # ---------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None) -> DeepFusionClassifier:
        torch = require_torch("DeepFusionClassifier")
        self._check_params()
        data = self._inputs(X)
        yv = data.labels if y is None else np.asarray(y)
        if yv is None:
            raise ValueError("y is required: X has no labels")
        if len(yv) != len(data):
            raise ValueError(f"y has {len(yv)} labels for {len(data)} patients")
        from ..fusion import check_labels

        classes, yi = check_labels(yv, "y")
        if len(classes) < 2:
            raise ValueError(f"y must have at least 2 classes; got {len(classes)}: {list(classes)[:5]}")
        self.classes_ = classes
        # two classes: one logit (BCE, float target); more: K logits (cross-entropy, class-index target)
        target: npt.NDArray[Any] = yi.astype(np.float32) if len(classes) == 2 else yi.astype(np.int64)
        seed = int(self.random_state)
        everyone = np.arange(len(data))
        self.vocabulary_ = self._build_vocabulary([data.tokens[i] for i in everyone])
        use_audio = bool(self.audio) and data.audio is not None
        table_cols = list(data.table_columns) if self.feature_blocks and data.table is not None else []
        blocks: dict[str, list[int]] = {}
        for j, c in enumerate(table_cols):
            blocks.setdefault(c.split("__", 1)[0], []).append(j)
        config = dict(d_model=int(self.d_model), heads=int(self.heads), layers=int(self.layers),
                      widths=[int(w) for w in self.widths], embedding_dim=int(self.embedding_dim),
                      rnn_hidden=int(self.rnn_hidden), rnn=self.rnn, ops=self.ops,
                      vocab_size=len(self.vocabulary_), inputs=dict(data.settings),
                      n_outputs=1 if len(classes) == 2 else len(classes), audio=use_audio, bag=bool(self.bag),
                      blocks=blocks, table_columns=table_cols, table_width=len(table_cols),
                      wide=bool(self.wide) and bool(table_cols), wide_text=bool(self.wide_text),
                      block_hidden=int(self.block_hidden),
                      dropout=float(self.dropout), modality_dropout=float(self.modality_dropout),
                      ensemble=int(self.ensemble))
        self.config_: dict[str, Any] = config
        from .network import build_network

        history: list[dict[str, float]] = []
        with self._threads():
            torch.manual_seed(seed)
            net = build_network(config)
            members: list[Any] = list(getattr(net, "members", [net]))
            vectors = self._word_vectors([data.tokens[i] for i in everyone]) if self.word2vec else None
            for j, member in enumerate(members):
                s = seed + 7919 * j  # each member: its own inner split, batch order and dropout draws
                idx, val = self._split(everyone, yi, len(classes), s)
                self._set_statistics(member, data, everyone)
                if member.wide_text is not None:
                    self._set_text_statistics(member, data, everyone)
                if vectors is not None:
                    self._init_embeddings(member, vectors)
                if (member.wide is not None or member.wide_text is not None) and self.wide_init == "logreg":
                    self._warm_start(member, data, yi, idx)
                torch.manual_seed(s)
                history += [{**h, "member": float(j)} if len(members) > 1 else h
                            for h in self._train(member, data, target, idx, val, s)]
            net.eval()
        self.history_ = history
        self.state_dict_ = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
        self.network_: Any = net
        return self

    def _split(self, everyone: npt.NDArray[np.int64], yi: npt.NDArray[np.intp], n_classes: int,
               seed: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(training, validation) positions: a stratified split for early stopping, or everyone and none."""
        if self.validation_fraction > 0:
            from sklearn.model_selection import train_test_split

            n_val = round(self.validation_fraction * len(everyone))
            if n_val >= n_classes and min(np.bincount(yi)) >= 2:
                idx, val = train_test_split(everyone, test_size=n_val, stratify=yi, random_state=seed)
                return np.sort(idx), np.sort(val)
        return everyone, np.zeros(0, np.int64)

    @staticmethod
    def _set_statistics(net: Any, data: DeepInputs, idx: npt.NDArray[np.int64]) -> None:
        """Standardisation of the hand-made features and of the log-mel input, on the training patients only."""
        import torch

        with torch.no_grad():
            if net.table_mean.numel() and data.table is not None:
                t = data.table[idx].astype(np.float64)
                t[~np.isfinite(t)] = np.nan  # missing
                cnt = np.isfinite(t).sum(axis=0)
                with warnings.catch_warnings():  # a column with < 2 values: its fallbacks below
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean = np.where(cnt > 0, np.nanmean(t, axis=0), 0.0)
                    sd = np.where(cnt > 1, np.nanstd(t, axis=0, ddof=1), 1.0)
                sd = np.where(np.isfinite(sd) & (sd > 1e-8 * np.maximum(np.abs(mean), 1.0)), sd, 1.0)
                net.table_mean.copy_(torch.from_numpy(mean.astype(np.float32)))
                net.table_scale.copy_(torch.from_numpy(sd.astype(np.float32)))
            if (net.audio is not None and data.audio is not None and data.audio_present is not None
                    and data.audio_present[idx].any()):
                a = data.audio[idx[data.audio_present[idx]]].astype(np.float64)
                net.audio_stats.copy_(torch.tensor([a.mean(), max(float(a.std()), 1e-6)], dtype=torch.float32))

    def _token_ids(self, data: DeepInputs, idx: npt.NDArray[np.int64]) -> Any:
        """(len(idx), longest) token ids of the reports of ``idx`` (0-padded; unknown tokens: ``<unk>``)."""
        return self._batch_tensors(data, idx)[2]

    def _set_text_statistics(self, net: Any, data: DeepInputs, idx: npt.NDArray[np.int64]) -> None:
        """The wide text path's smooth idf ``ln((1 + n) / (1 + df)) + 1`` over the reports of ``idx`` (0 for
        ``<pad>`` and ``<unk>``), then the mean and standard deviation of each TF-IDF column on them."""
        import torch

        with torch.no_grad():
            ids = self._token_ids(data, idx)
            seen = torch.zeros(len(idx), net.text_idf.shape[0], dtype=torch.bool)
            seen.scatter_(1, ids, True)
            df = seen.double().sum(dim=0)
            idf = torch.log((1.0 + len(idx)) / (1.0 + df)) + 1.0
            idf[:2] = 0.0  # <pad>, <unk>
            net.text_idf.copy_(idf.float())
            x = net.tfidf(ids).double()
            sd = x.std(dim=0) if len(idx) > 1 else torch.ones(x.shape[1], dtype=torch.float64)
            net.text_mean.copy_(x.mean(dim=0).float())
            net.text_scale.copy_(torch.where(sd > 1e-6, sd, torch.ones_like(sd)).float())

    def _warm_start(self, net: Any, data: DeepInputs, yi: npt.NDArray[np.intp], idx: npt.NDArray[np.int64]) -> None:
        """The wide paths := a logistic regression on the standardised table and / or the standardised report
        TF-IDF of ``idx``; the deep head := 0."""
        import torch
        from sklearn.linear_model import LogisticRegression

        from ...kernels._threads import learner_threads, library_threads

        paths = [p for p in (net.wide, net.wide_text) if p is not None]
        n_classes = max(2, int(paths[0].out_features))
        if np.unique(yi[idx]).size < n_classes:  # a class absent from the training split: no linear solution to copy
            return
        parts = []
        with torch.no_grad():
            if net.wide is not None:
                assert data.table is not None  # the network has a table wide path
                parts.append(net.standardise(torch.from_numpy(np.ascontiguousarray(data.table[idx])))[0])
            if net.wide_text is not None:
                parts.append(net.text_standardised(self._token_ids(data, idx)))
        z = torch.cat(parts, dim=1).double().numpy()
        with library_threads(learner_threads()):
            lr = LogisticRegression(C=float(self.wide_C), tol=1e-8, max_iter=10000).fit(z, yi[idx])
        coef, icpt = lr.coef_, lr.intercept_
        with torch.no_grad():
            start = 0
            for j, path in enumerate(paths):
                width = int(path.in_features)
                path.weight.copy_(torch.from_numpy(coef[:, start:start + width].astype(np.float32)))
                path.bias.copy_(torch.from_numpy(icpt.astype(np.float32)) if j == 0 else torch.zeros_like(path.bias))
                start += width
            net.head.weight.zero_()
            net.head.bias.zero_()

    def _build_vocabulary(self, docs: list[list[str]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in docs:
            for t in d:
                counts[t] = counts.get(t, 0) + 1
        keep = sorted(t for t, c in counts.items() if c >= self.min_count)
        return {_PAD: 0, _UNK: 1, **{t: i + 2 for i, t in enumerate(keep)}}

    def _word_vectors(self, docs: list[list[str]]) -> Any:
        """Word2Vec vectors trained on the training reports (None when there is no report)."""
        from gensim.models import Word2Vec

        from ...features.text import _stable_hash

        sentences = [d for d in docs if d]
        if not sentences:
            return None
        return Word2Vec(sentences=sentences, vector_size=int(self.embedding_dim), window=5, min_count=1, workers=1,
                        seed=int(self.random_state), epochs=20, hashfxn=_stable_hash).wv

    def _init_embeddings(self, net: Any, wv: Any) -> None:
        import torch

        w = net.report.embedding.weight.detach().clone()
        for tok, i in self.vocabulary_.items():
            if tok in wv:
                vec = np.asarray(wv[tok], np.float32)
                w[i] = torch.from_numpy(vec / max(float(np.linalg.norm(vec)), 1e-6))
        with torch.no_grad():
            net.report.embedding.weight.copy_(w)

    @staticmethod
    def _criterion(logits: Any, target: Any, smoothing: float = 0.0) -> Any:
        """Binary cross-entropy on one logit, or cross-entropy on K logits (class-index target); ``smoothing``
        mixes the one-hot target with the uniform one (label smoothing)."""
        import torch

        if logits.ndim == 1:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, target * (1 - smoothing) + smoothing / 2)
        return torch.nn.functional.cross_entropy(logits, target, label_smoothing=smoothing)

    def _loss(self, net: Any, data: DeepInputs, target: npt.NDArray[Any], idx: npt.NDArray[np.int64]) -> float:
        import torch

        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(*self._batch_tensors(data, idx[s:s + 256])) for s in range(0, len(idx), 256)])
            return float(self._criterion(logits, torch.from_numpy(target[idx])))

    def _train(self, net: Any, data: DeepInputs, target: npt.NDArray[Any], idx: npt.NDArray[np.int64],
               val: npt.NDArray[np.int64], seed: int) -> list[dict[str, float]]:
        import torch

        opt = torch.optim.AdamW(net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        rng = np.random.default_rng(seed)
        history: list[dict[str, float]] = []
        best, best_state, bad = np.inf, None, 0
        epochs: Any = range(int(self.max_epochs))
        if self.verbose:
            from tqdm.auto import tqdm

            epochs = tqdm(epochs, desc="DeepFusionClassifier", unit="epoch")
        tt = torch.from_numpy(target)
        k = int(self.snapshots)
        pool: list[tuple[float, int, dict[str, Any]]] = []  # the k lowest validation losses: (loss, epoch, weights)
        if len(val) and self.wide_init == "logreg" and (net.wide is not None or net.wide_text is not None):
            best = self._loss(net, data, target, val)  # the warm start competes: kept if no epoch beats it
            best_state = copy.deepcopy(net.state_dict())
            pool.append((best, -1, best_state))
        for ep in epochs:
            net.train()
            order = rng.permutation(idx)
            total = 0.0
            for s in range(0, len(order), int(self.batch_size)):
                b = np.sort(order[s:s + int(self.batch_size)])
                logits = net(*self._batch_tensors(data, b))
                loss = self._criterion(logits, tt[b], float(self.label_smoothing))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            rec = {"epoch": float(ep), "train_loss": total / max(len(idx), 1)}
            if len(val):
                rec["val_loss"] = self._loss(net, data, target, val)
                if k > 1:
                    pool = sorted([*pool, (rec["val_loss"], ep, copy.deepcopy(net.state_dict()))],
                                  key=lambda t: (t[0], t[1]))[:k]
                if rec["val_loss"] < best - 1e-4:
                    best, bad = rec["val_loss"], 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    bad += 1
            history.append(rec)
            if self.verbose and hasattr(epochs, "set_postfix"):
                epochs.set_postfix({k: round(v, 4) for k, v in rec.items() if k != "epoch"})
            if len(val) and bad >= int(self.patience):
                break
        if len(pool) > 1:  # mean of the k best epochs' weights (snapshot averaging)
            best_state = {name: torch.stack([st[name] for _l, _e, st in pool]).mean(dim=0)
                          if pool[0][2][name].is_floating_point() else pool[0][2][name] for name in pool[0][2]}
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        return history

    # ---------------------------------------------------------------- predict
    def _network(self) -> Any:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "state_dict_")
        if getattr(self, "network_", None) is None:
            torch = require_torch("DeepFusionClassifier")
            from .network import build_network

            net = build_network(self.config_)
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state_dict_.items()})
            net.eval()
            self.network_ = net
        return self.network_

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        import torch

        net = self._network()
        data = self._aligned(self._inputs(X))
        idx = np.arange(len(data))
        with self._threads(), torch.no_grad():
            out = [net(*self._batch_tensors(data, idx[s:s + 256])) for s in range(0, len(idx), 256)]
        return torch.cat(out).double().numpy()

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Class probabilities, columns in ``classes_`` order (sigmoid of the logit, or softmax)."""
        z = self.decision_function(X)
        if z.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-z))
            return np.column_stack([1.0 - p, p])
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)

    def predict(self, X: Any) -> npt.NDArray:
        z = self.decision_function(X)
        k = (z > 0).astype(int) if z.ndim == 1 else np.argmax(z, axis=1)
        return np.asarray(self.classes_)[k]

    def epochs_per_network(self) -> list[int]:
        """Epochs each network of the ensemble trained (``history_`` holds all of them, one after another)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "history_")
        counts: dict[int, int] = {}
        for h in self.history_:
            j = int(h.get("member", 0))
            counts[j] = counts.get(j, 0) + 1
        return [counts[j] for j in sorted(counts)]

    # ---------------------------------------------------------------- state
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("network_", None)  # rebuilt from config_ + state_dict_ on first use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.network_ = None


def _extraction_settings(extraction: Any) -> dict[str, Any] | None:
    """The ``extraction`` parameter as a JSON-able settings dict (or None); ValueError for anything else."""
    if extraction is None or isinstance(extraction, dict):
        return extraction
    settings = getattr(extraction, "settings", None)
    if callable(settings):
        out = settings()
        if isinstance(out, dict):
            return out
    raise ValueError("extraction must be None, a medfuse.extract.CohortFeatures or its settings() dict; "
                     f"got {type(extraction).__name__}")


# ---------------------------------------------------------------- model files
def _to_parts(model: DeepFusionClassifier) -> Any:
    """Config, vocabulary and history as JSON; the weights as named arrays (safetensors)."""
    from sklearn.utils.validation import check_is_fitted

    from ..modelfile import ModelParts

    check_is_fitted(model, "state_dict_")
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in model.get_params().items()}
    params["extraction"] = _extraction_settings(model.extraction)
    config = {
        "params": params,
        "network": model.config_,
        "classes": np.asarray(model.classes_).tolist(),
        "vocabulary": model.vocabulary_,
        "history": model.history_,
        "weights": sorted(model.state_dict_),
    }
    arrays = {f"state.{k}": np.ascontiguousarray(v) for k, v in model.state_dict_.items()}
    return ModelParts(config=config, arrays=arrays)


def _from_parts(parts: Any) -> DeepFusionClassifier:
    """Rebuild the classifier; the network is built from the config and must accept the weights."""
    import torch

    from .network import build_network

    cfg = parts.config
    params: dict[str, Any] = {k: tuple(v) if k == "widths" else v for k, v in cfg["params"].items()}
    model = DeepFusionClassifier(**params)
    model.classes_ = np.asarray(cfg["classes"])
    model.vocabulary_ = {str(k): int(v) for k, v in cfg["vocabulary"].items()}
    model.history_ = cfg["history"]
    model.config_ = cfg["network"]
    names = list(cfg["weights"])
    missing = [n for n in names if f"state.{n}" not in parts.arrays]
    if missing:
        raise ValueError(f"weights missing from the file: {', '.join(missing[:5])}")
    state = {n: np.array(parts.arrays[f"state.{n}"]) for n in names}  # writable copies, shared with torch
    net = build_network(model.config_)
    try:
        net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    except RuntimeError as err:  # shape mismatch between the weights and the config
        raise ValueError(f"the weights do not fit the network config: {err}") from None
    model.state_dict_ = state
    model.network_ = None
    return model


def _register() -> None:
    from ..modelfile import register_kind

    register_kind(
        "deep-fusion",
        DeepFusionClassifier,
        to_parts=_to_parts,
        from_parts=_from_parts,
        card=lambda m: {"model": {"class": "DeepFusionClassifier", "d_model": int(m.d_model),
                                  "layers": int(m.layers), "epochs": m.epochs_per_network(),
                                  "classes": [c.item() if isinstance(c, np.generic) else c for c in m.classes_]},
                         "extraction": _extraction_settings(m.extraction)},
    )


_register()
