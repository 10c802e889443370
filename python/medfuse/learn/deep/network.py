"""The fusion network: modality encoders + a transformer over modality tokens.

Built from a JSON-able config (:func:`build_network`), so a fitted model is
that config plus a plain ``state_dict``. ``ops="medfuse"`` runs the
convolutions and the attention on medfuse's operators
(:class:`medfuse.nn.Conv2d`, :func:`medfuse.nn.attention`); ``ops="torch"``
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
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

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
    def __init__(self, vocab: int, emb: int, hidden: int, d_model: int, rnn: str) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        cls = nn.LSTM if rnn == "lstm" else nn.GRU
        self.rnn = cls(emb, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, d_model)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        e = self.embedding(ids)
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


class FusionNetwork(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        d = int(config["d_model"])
        ops = str(config["ops"])
        widths = tuple(int(w) for w in config["widths"])
        self.config = dict(config)
        self.ct = ImageEncoder(3, widths, d, ops)
        self.xray = ImageEncoder(1, widths, d, ops)
        self.report = ReportEncoder(int(config["vocab_size"]), int(config["embedding_dim"]), int(config["rnn_hidden"]),
                                    d, str(config["rnn"]))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.modality = nn.Parameter(torch.randn(3, d) / math.sqrt(d))
        self.layers = nn.ModuleList(FusionLayer(d, int(config["heads"]), ops) for _ in range(int(config["layers"])))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, int(config.get("n_outputs", 1)))  # 1: binary logit; K: softmax logits

    def forward(self, ct: torch.Tensor, xray: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
                present: torch.Tensor) -> torch.Tensor:
        b = ct.shape[0]
        toks = torch.stack([self.ct(ct), self.xray(xray), self.report(ids, lengths)], dim=1) + self.modality
        toks = toks * present[..., None].to(toks.dtype)  # absent: zero token (and masked as a key below)
        x = torch.cat([self.cls.expand(b, 1, -1), toks], dim=1)
        attend = torch.cat([torch.ones(b, 1, dtype=torch.bool), present], dim=1)
        for layer in self.layers:
            x = layer(x, attend)
        out = self.head(self.norm(x[:, 0]))
        return out[:, 0] if out.shape[1] == 1 else out


def build_network(config: dict[str, Any]) -> FusionNetwork:
    return FusionNetwork(config)
