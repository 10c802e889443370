"""Drop-in ``torch.nn`` layers running medfuse's operators.

:class:`Conv2d`, :class:`MultiheadAttention` and :class:`GRU` subclass torch's modules, so
parameter names, shapes, initialisation and ``state_dict`` layout are
torch's: ``load_state_dict`` works in both directions. Configurations the
medfuse operators do not cover run torch's own ``forward`` (listed in each
class).
"""

from __future__ import annotations

from typing import Any

import torch

from .functional import _KERNEL_DTYPES, attention, conv2d, gru
from .functional import _gru_lengths as functional_lengths

__all__ = ["GRU", "Conv2d", "MultiheadAttention"]


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` whose forward pass is ``medfuse::conv2d``.

    Same constructor and parameters as torch's layer. ``padding_mode`` other
    than "zeros" and string paddings ("same", "valid") run torch's forward.
    ``forward(x, activation="relu")`` returns ``relu(conv(x))`` from one
    kernel pass (the ReLU in the kernel's epilogue), for a ``Conv2d`` followed
    by ``ReLU``.
    """

    def forward(self, input: torch.Tensor, activation: str | None = None) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            if activation not in (None, "relu"):
                raise ValueError(f"activation must be None or 'relu'; got {activation!r}")
            y = super().forward(input)
            return torch.relu(y) if activation == "relu" else y
        if input.dim() == 3:  # unbatched (C, H, W), as torch
            return self.forward(input.unsqueeze(0), activation).squeeze(0)
        return conv2d(input, self.weight, self.bias, tuple(self.stride), tuple(self.padding),  # type: ignore[arg-type]
                      tuple(self.dilation), self.groups, activation=activation)


class MultiheadAttention(torch.nn.MultiheadAttention):
    """``torch.nn.MultiheadAttention`` whose attention runs ``medfuse::attention``.

    Same constructor, parameters and call signature as torch's module. The
    medfuse operator is used when ``need_weights=False`` (the fused kernel
    never forms the attention matrix, so it cannot return it), there is no
    ``bias_k``/``bias_v``/``add_zero_attn``, dropout is inactive (eval mode or
    ``dropout=0``) and the inputs are CPU float32/float64; otherwise torch's
    forward runs. Returns ``(output, None)`` on the medfuse path. Masks
    follow torch: bool ``attn_mask``/``key_padding_mask`` entries that are
    True are *not* attended; float masks are added to the scores. A query
    whose keys are all masked gets the output projection's bias (attention
    output 0), where torch returns NaN.
    """

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, Any]:
        fallback = (
            need_weights
            or self.bias_k is not None
            or self.add_zero_attn
            or (self.training and self.dropout > 0.0)
            or query.device.type != "cpu"
            or query.dtype not in _KERNEL_DTYPES
            or (is_causal and attn_mask is None)
        )
        if fallback:
            return super().forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                                   attn_mask=attn_mask, average_attn_weights=average_attn_weights,
                                   is_causal=is_causal)
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if self.batch_first and not unbatched:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        # (L, B, E) from here on
        lq, b, e = query.shape
        lk = key.shape[0]
        h = self.num_heads
        dh = e // h
        if self._qkv_same_embed_dim:
            wq, wk, wv = self.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq = bk = bv = None
        if self.in_proj_bias is not None:
            bq, bk, bv = self.in_proj_bias.chunk(3)

        def heads(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, n: int) -> torch.Tensor:
            return torch.nn.functional.linear(x, w, bias).reshape(n, b, h, dh).permute(1, 2, 0, 3)

        q = heads(query, wq, bq, lq)
        k = heads(key, wk, bk, lk)
        v = heads(value, wv, bv, lk)
        mask = torch.zeros((), dtype=query.dtype)
        used = False
        if attn_mask is not None:
            am = attn_mask if attn_mask.dim() == 2 else attn_mask.reshape(b, h, lq, lk)
            if am.dtype == torch.bool:
                am = torch.zeros(am.shape, dtype=query.dtype).masked_fill(am, float("-inf"))
            mask = mask + am.to(query.dtype)
            used = True
        if key_padding_mask is not None:
            kp = key_padding_mask
            if kp.dtype == torch.bool:
                kp = torch.zeros(kp.shape, dtype=query.dtype).masked_fill(kp, float("-inf"))
            mask = mask + kp.to(query.dtype).reshape(b, 1, 1, lk)
            used = True
        o = attention(q, k, v, mask if used else None)
        o = o.permute(2, 0, 1, 3).reshape(lq, b, e)
        out = torch.nn.functional.linear(o, self.out_proj.weight, self.out_proj.bias)
        if self.batch_first and not unbatched:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1)
        return out, None


class GRU(torch.nn.GRU):
    """``torch.nn.GRU`` whose recurrence runs ``medfuse::gru`` (see :func:`medfuse.nn.functional.gru`).

    Same constructor, parameters (``weight_ih_l0``, ``weight_hh_l0``,
    ``bias_ih_l0``, ``bias_hh_l0``), initialisation and ``state_dict`` as
    torch's module, so ``load_state_dict`` works in both directions.
    ``forward(input, hx=None, lengths=None)``: ``input`` a padded batch
    (B, T, I) with optional ``lengths`` (B,) in [1, T] -- then the output is
    zero past each length and ``h_n`` holds each sequence's state at its
    length, as running torch's GRU on ``pack_padded_sequence(input,
    lengths)`` -- or a ``PackedSequence`` (output packed the same way).
    ``hx`` and ``h_n`` are (1, B, H) as torch's.

    The medfuse operator covers the single-layer unidirectional GRU with
    biases and ``batch_first=True`` on CPU float32 / float64 tensors. Any
    other configuration (``num_layers > 1``, ``bidirectional``,
    ``bias=False``, ``batch_first=False``, unbatched 2-D input, other
    devices or dtypes) runs torch's own forward (with ``lengths``, through
    ``pack_padded_sequence``).
    """

    def _medfuse_ok(self, x: torch.Tensor, packed: bool) -> bool:
        return (self.num_layers == 1 and not self.bidirectional and self.bias and self.batch_first
                and (packed or x.dim() == 3) and x.device.type == "cpu" and x.dtype in _KERNEL_DTYPES
                and self.weight_hh_l0.dtype == x.dtype)

    def forward(self, input: Any, hx: torch.Tensor | None = None,  # type: ignore[override]
                lengths: Any = None) -> tuple[Any, torch.Tensor]:
        rnn = torch.nn.utils.rnn
        packed = isinstance(input, rnn.PackedSequence)
        if packed and lengths is not None:
            raise ValueError("lengths must be None when input is a PackedSequence (it carries its lengths)")
        data = input.data if packed else input
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor or a PackedSequence; got {type(input).__name__}")
        if not self._medfuse_ok(data, packed):
            return self._torch_forward(input, hx, lengths)
        h0 = None
        if hx is not None:
            if not isinstance(hx, torch.Tensor) or hx.dim() != 3 or hx.shape[0] != 1:
                raise ValueError(f"hx must be a (1, batch, hidden) tensor; got "
                                 f"{tuple(hx.shape) if isinstance(hx, torch.Tensor) else type(hx).__name__}")
            h0 = hx[0]
        wi, wh, bi, bh = (self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)
        if not packed:
            out, hn = gru(data, lengths, wi, wh, bi, bh, h0)  # type: ignore[arg-type]
            return out, hn.unsqueeze(0)
        x, lens = rnn.pad_packed_sequence(input, batch_first=True)
        out, hn = gru(x, lens, wi, wh, bi, bh, h0)  # type: ignore[arg-type]
        idx = input.sorted_indices  # repack in the input's order, with its batch sizes
        if idx is not None:
            out, lens = out.index_select(0, idx), lens.index_select(0, idx.cpu())
        data = rnn.pack_padded_sequence(out, lens, batch_first=True, enforce_sorted=True).data
        return rnn.PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices), \
            hn.unsqueeze(0)

    def _torch_forward(self, input: Any, hx: torch.Tensor | None, lengths: Any) -> tuple[Any, torch.Tensor]:
        """torch's forward; with ``lengths``, on ``pack_padded_sequence(input, lengths)``, output padded back."""
        if lengths is None:
            return super().forward(input, hx)
        rnn = torch.nn.utils.rnn
        if input.dim() != 3:
            raise ValueError(f"lengths needs a 3-dimensional padded input; got shape {tuple(input.shape)}")
        b, t = (input.shape[0], input.shape[1]) if self.batch_first else (input.shape[1], input.shape[0])
        lens = functional_lengths(lengths, b, t)
        p = rnn.pack_padded_sequence(input, lens, batch_first=self.batch_first, enforce_sorted=False)
        out, h = super().forward(p, hx)
        return rnn.pad_packed_sequence(out, batch_first=self.batch_first, total_length=t)[0], h
