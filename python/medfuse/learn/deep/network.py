"""The fusion network: modality encoders + a transformer over modality tokens.

Built from a JSON-able config (:func:`build_network`), so a fitted model is
that config plus a plain ``state_dict``. ``ops="medfuse"`` runs the
convolutions, the attention and the report GRU on medfuse's operators
(:class:`medfuse.nn.Conv2d`, :func:`medfuse.nn.attention`,
:class:`medfuse.nn.GRU`; an LSTM stays torch's); ``ops="torch"``
builds the same network on torch's own layers (same parameter names, so a
state_dict moves between the two).

- X-ray encoder: 3 stride-2 convolutions (ReLU), global average pooling, a
  linear map to ``d_model`` (``y = f(W * x + b)``).
- CT encoder: the same on the 3-channel 2.5D nodule patch.
- Report encoder: token embeddings (initialisable from Word2Vec), a GRU
  (``h_t = f(W [h_{t-1}, x_t] + b)``; LSTM with ``rnn="lstm"``), the last
  hidden state of each report mapped to ``d_model``.
- Fusion: a [CLS] token plus one token per modality (each with a learned
  modality embedding); ``layers`` pre-norm transformer layers of multi-head
  self-attention ``softmax(QKᵀ/√d_k) V`` where absent modalities are masked
  out as keys; the [CLS] output gives the logit of the positive class (two
  classes, ``n_outputs`` 1) or one logit per class (softmax; ``n_outputs`` K). A patient with
  no modality at all is scored from the [CLS] token alone (a learned prior).
- Lung sounds (``config["audio"]``): the log-mel spectrogram through the
  same CNN design (1 channel), one more token; absent audio is masked.
- Hand-made features (``config["blocks"]``, ``config["bag"]``): one token
  per feature block (ct__*, xray__*, audio__* of the extracted table,
  standardised on the training patients: an MLP each) and the report as a
  bag of tokens (an MLP over the mean of learned token vectors). At a few
  hundred patients these carry most of the signal; the CNN/RNN tokens add
  to them through the attention.
- Regularisation: dropout (``config["dropout"]``) on tokens, block MLPs and
  the head; modality dropout (``config["modality_dropout"]``: in training
  each present token is masked with that probability, a patient keeping at
  least one), so the fusion cannot lean on one modality.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ...nn import GRU as MedfuseGRU
from ...nn import Conv2d as MedfuseConv2d
from ...nn import attention as medfuse_attention


def _conv(ops: str, cin: int, cout: int, stride: int) -> nn.Module:
    cls = MedfuseConv2d if ops == "medfuse" else nn.Conv2d
    return cls(cin, cout, 3, stride=stride, padding=1)


class ImageEncoder(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...], d_model: int, ops: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for w in widths:
            layers += [_conv(ops, c, w, 2), nn.ReLU()]
            c = w
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(c, d_model)
        self.fused = ops == "medfuse"  # each Conv2d + ReLU pair as one kernel pass (ReLU in its epilogue)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            for conv in list(self.body)[::2]:
                x = conv(x, activation="relu")
        else:
            x = self.body(x)
        return self.proj(x.mean(dim=(2, 3)))


class ReportEncoder(nn.Module):
    """Token embeddings, an RNN over each report (packed by length), its last state to ``d_model``.

    With ``ops="medfuse"`` and ``rnn="gru"`` the GRU is :class:`medfuse.nn.GRU`
    (the recurrence on medfuse's C++ kernels, run on the padded batch with the
    lengths); the LSTM is always torch's. Parameter names are torch's either
    way, so state dicts (and model files saved before medfuse.nn.GRU existed)
    load into both.
    """

    def __init__(self, vocab: int, emb: int, hidden: int, d_model: int, rnn: str, ops: str = "torch") -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        cls = nn.LSTM if rnn == "lstm" else MedfuseGRU if ops == "medfuse" else nn.GRU
        self.rnn = cls(emb, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, d_model)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        e = self.embedding(ids)
        if isinstance(self.rnn, MedfuseGRU):
            _out, h = self.rnn(e, lengths=lengths.clamp(min=1))
            return self.proj(h[-1])
        packed = nn.utils.rnn.pack_padded_sequence(e, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _out, h = self.rnn(packed)
        if isinstance(h, tuple):  # LSTM: (h, c)
            h = h[0]
        return self.proj(h[-1])


class FusionLayer(nn.Module):
    """Pre-norm transformer layer; attention through medfuse's operator or torch's SDPA."""

    def __init__(self, d_model: int, heads: int, ops: str) -> None:
        super().__init__()
        self.heads = heads
        self.ops = ops
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.ReLU(), nn.Linear(2 * d_model, d_model))

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        b, n, e = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, h, e // h).permute(2, 0, 3, 1, 4)
        mask = attend[:, None, None, :]  # (b, 1, 1, n): True = attend
        if self.ops == "medfuse":
            a = medfuse_attention(q, k, v, mask)
        else:
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, n, e))
        return x + self.ff(self.norm2(x))


class BlockEncoder(nn.Module):
    """A hand-made feature block (standardised, NaN -> 0) through a 2-layer MLP to one token."""

    def __init__(self, width: int, hidden: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class BagEncoder(nn.Module):
    """The report as a bag of tokens: mean of learned token vectors, then an MLP to one token."""

    def __init__(self, vocab: int, hidden: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, hidden, mode="mean", padding_idx=0)
        self.mlp = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.bag(ids))


class FusionNetwork(nn.Module):
    """Encoders -> modality tokens -> transformer over them (see the module doc).

    Tokens, in order: ``ct`` and ``xray`` (CNNs), ``report`` (RNN), then when
    the config asks for them ``audio`` (the log-mel CNN), ``report_bag`` (the
    report as a bag of tokens) and one token per hand-made feature block
    (``config["blocks"]``: name -> its columns in ``table``, standardised by
    the ``table_mean`` / ``table_scale`` buffers the estimator sets on its
    training patients). With ``config["wide"]`` a linear map of the whole
    standardised table adds to the logits (a "wide" path beside the deep one);
    with ``config["wide_text"]`` a linear map of the report's TF-IDF
    (sublinear term frequency, smooth idf of the training patients, rows
    l2-normed, columns standardised on the training patients) adds too.
    """

    table_mean: torch.Tensor
    text_idf: torch.Tensor
    text_mean: torch.Tensor
    text_scale: torch.Tensor
    table_scale: torch.Tensor
    audio_stats: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        d = int(config["d_model"])
        ops = str(config["ops"])
        widths = tuple(int(w) for w in config["widths"])
        dropout = float(config.get("dropout", 0.0))
        self.config = dict(config)
        self.ct = ImageEncoder(3, widths, d, ops)
        self.xray = ImageEncoder(1, widths, d, ops)
        self.report = ReportEncoder(int(config["vocab_size"]), int(config["embedding_dim"]), int(config["rnn_hidden"]),
                                    d, str(config["rnn"]), ops)
        self.use_audio = bool(config.get("audio", False))
        self.use_bag = bool(config.get("bag", False))
        self.blocks = {str(k): [int(i) for i in v] for k, v in dict(config.get("blocks", {})).items()}
        self.audio = ImageEncoder(1, widths, d, ops) if self.use_audio else None
        self.register_buffer("audio_stats", torch.tensor([0.0, 1.0]))  # log-mel mean and scale of training patients
        hidden = int(config.get("block_hidden", 32))
        self.report_bag = BagEncoder(int(config["vocab_size"]), hidden, d, dropout) if self.use_bag else None
        self.block_encoders = nn.ModuleDict({k: BlockEncoder(len(v), hidden, d, dropout) for k, v in self.blocks.items()})
        width = int(config.get("table_width", 0))
        self.register_buffer("table_mean", torch.zeros(width))
        self.register_buffer("table_scale", torch.ones(width))
        n_out = int(config.get("n_outputs", 1))  # 1: binary logit; K: softmax logits
        self.wide = nn.Linear(width, n_out) if config.get("wide", False) and width else None
        self.wide_text: nn.Linear | None = None
        if config.get("wide_text", False):  # a linear map of the report's standardised TF-IDF (see tfidf)
            vocab = int(config["vocab_size"])
            self.register_buffer("text_idf", torch.zeros(vocab))
            self.register_buffer("text_mean", torch.zeros(vocab))
            self.register_buffer("text_scale", torch.ones(vocab))
            self.wide_text = nn.Linear(vocab, n_out)
            with torch.no_grad():  # starts silent: the text term grows from zero
                self.wide_text.weight.zero_()
                self.wide_text.bias.zero_()
        self.n_tokens = 3 + self.use_audio + self.use_bag + len(self.blocks)
        self.modality_dropout = float(config.get("modality_dropout", 0.0))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.modality = nn.Parameter(torch.randn(self.n_tokens, d) / math.sqrt(d))
        self.layers = nn.ModuleList(FusionLayer(d, int(config["heads"]), ops) for _ in range(int(config["layers"])))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_out)

    def standardise(self, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(standardised table with NaN -> 0, finite mask)."""
        finite = torch.isfinite(table)
        z = (torch.where(finite, table, self.table_mean) - self.table_mean) / self.table_scale
        return z.clamp(-10.0, 10.0), finite

    def tfidf(self, ids: torch.Tensor) -> torch.Tensor:
        """(b, vocab) TF-IDF of token ids (0 = padding): ``(1 + log count) * idf`` per token (``text_idf``, set
        on the training patients; 0 for ``<pad>``, ``<unk>`` and unseen tokens), each row l2-normalised (an empty
        report: zeros)."""
        counts = torch.zeros(ids.shape[0], self.text_idf.shape[0], dtype=torch.float32)
        counts.scatter_add_(1, ids, torch.ones(ids.shape, dtype=torch.float32))
        tf = torch.where(counts > 0, 1.0 + torch.log(counts.clamp(min=1.0)), torch.zeros_like(counts))
        x = tf * self.text_idf
        return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def text_standardised(self, ids: torch.Tensor) -> torch.Tensor:
        """The TF-IDF standardised by the training patients' column mean and scale (``text_mean``, ``text_scale``)."""
        return (self.tfidf(ids) - self.text_mean) / self.text_scale

    def forward(self, ct: torch.Tensor, xray: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
                present: torch.Tensor, audio: torch.Tensor | None = None, table: torch.Tensor | None = None
                ) -> torch.Tensor:
        b = ct.shape[0]
        toks = [self.ct(ct), self.xray(xray), self.report(ids, lengths)]
        pres = [present[:, 0], present[:, 1], present[:, 2]]
        if self.audio is not None:
            if audio is None:
                raise ValueError("this network has an audio encoder: audio (n, 1, n_mels, frames) is required")
            toks.append(self.audio((audio - self.audio_stats[0]) / self.audio_stats[1]))
            pres.append(present[:, 3])
        if self.report_bag is not None:
            toks.append(self.report_bag(ids))
            pres.append(present[:, 2])
        z = None
        if self.blocks or self.wide is not None:
            if table is None:
                raise ValueError("this network reads hand-made feature blocks: table (n, columns) is required")
            z, finite = self.standardise(table)
            for name, cols in self.blocks.items():
                toks.append(self.block_encoders[name](z[:, cols]))
                pres.append(finite[:, cols].any(dim=1))
        attend_m = torch.stack(pres, dim=1)
        if self.training and self.modality_dropout > 0:
            keep = torch.rand(attend_m.shape) >= self.modality_dropout
            dropped = attend_m & keep
            # a patient keeps at least one of its tokens
            attend_m = torch.where(dropped.any(dim=1, keepdim=True), dropped, attend_m)
        x_t = torch.stack(toks, dim=1) + self.modality
        x_t = self.drop(x_t) * attend_m[..., None].to(x_t.dtype)  # absent: zero token (and masked as a key below)
        x = torch.cat([self.cls.expand(b, 1, -1), x_t], dim=1)
        attend = torch.cat([torch.ones(b, 1, dtype=torch.bool), attend_m], dim=1)
        for layer in self.layers:
            x = layer(x, attend)
        out = self.head(self.drop(self.norm(x[:, 0])))
        if self.wide is not None and z is not None:
            out = out + self.wide(self.drop(z))
        if self.wide_text is not None:
            out = out + self.wide_text(self.drop(self.text_standardised(ids)))
        return out[:, 0] if out.shape[1] == 1 else out


class FusionEnsemble(nn.Module):
    """``config["ensemble"]`` fusion networks (each trained on its own seed and inner split); the output is the
    mean of their logits."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.members = nn.ModuleList(FusionNetwork(config) for _ in range(int(config["ensemble"])))

    def forward(self, *args: Any) -> torch.Tensor:
        return torch.stack([m(*args) for m in self.members]).mean(dim=0)


def build_network(config: dict[str, Any]) -> nn.Module:
    """One :class:`FusionNetwork`, or a :class:`FusionEnsemble` when ``config["ensemble"]`` > 1."""
    return FusionEnsemble(config) if int(config.get("ensemble", 1)) > 1 else FusionNetwork(config)
