"""medfuse's conv2d and attention kernels as PyTorch custom operators.

Operators (``torch.library.custom_op``, CPU kernels, fake kernels for meta
tensors and torch.compile, autograd through C++ backward kernels):

- ``medfuse::conv2d(x, weight, bias, stride, padding, dilation, groups)``
  and ``medfuse::conv2d_backward`` (grad input, weight, bias);
- ``medfuse::attention(q, k, v, mask, causal, scale) -> (out, lse)`` and
  ``medfuse::attention_backward``.

The functions :func:`conv2d` and :func:`attention` validate their arguments
(TypeError / ValueError naming the argument, before any kernel runs) and
choose the operator: CPU tensors of float32 or float64 run medfuse's
kernels; tensors on another device or of another floating dtype (float16,
bfloat16) run ``torch.nn.functional.conv2d`` /
``scaled_dot_product_attention`` instead. float64 exists for
``torch.autograd.gradcheck``: the float64 conv2d forward is a direct loop,
slower than the float32 kernel.
"""

# No `from __future__ import annotations`: torch.library infers the operator
# schemas from these annotations.
import math
from collections.abc import Sequence

import numpy as np
import torch

from ..kernels import attention as _attn
from ..kernels import cnn as _cnn

__all__ = ["attention", "conv2d"]

_KERNEL_DTYPES = (torch.float32, torch.float64)
IntPair = int | Sequence[int]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


# ---- conv2d -----------------------------------------------------------------

@torch.library.custom_op("medfuse::conv2d", mutates_args=(), device_types="cpu")
def _conv2d_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
               padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    b = None if bias is None else _np(bias)
    y: np.ndarray
    if x.dtype == torch.float64:
        y = _cnn.conv2d_float64(_np(x), _np(weight), b, stride=stride, padding=padding, dilation=dilation,
                                groups=groups)
    else:
        y = _cnn.conv2d(_np(x), _np(weight), b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return torch.from_numpy(y)


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@_conv2d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups):
    ho = _out_size(x.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
    wo = _out_size(x.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
    return x.new_empty((x.shape[0], weight.shape[0], ho, wo))


@torch.library.custom_op("medfuse::conv2d_backward", mutates_args=(), device_types="cpu")
def _conv2d_backward_op(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, stride: list[int],
                        padding: list[int], dilation: list[int], groups: int,
                        need: list[bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gx, gw, gb = _cnn.conv2d_backward(_np(x), _np(weight), _np(grad_out), stride=stride, padding=padding,
                                      dilation=dilation, groups=groups, need=(need[0], need[1], need[2]))
    # gradients not asked for come back as (distinct) empty tensors
    return tuple(torch.from_numpy(a) if a is not None else x.new_empty((0,)) for a in (gx, gw, gb))  # type: ignore[return-value]


@_conv2d_backward_op.register_fake
def _(x, weight, grad_out, stride, padding, dilation, groups, need):
    return (x.new_empty(x.shape if need[0] else (0,)), weight.new_empty(weight.shape if need[1] else (0,)),
            weight.new_empty((weight.shape[0],) if need[2] else (0,)))


def _conv2d_setup(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(x, weight)
    ctx.conf = (stride, padding, dilation, groups, bias is not None)


def _conv2d_grad(ctx, grad):
    x, weight = ctx.saved_tensors
    stride, padding, dilation, groups, has_bias = ctx.conf
    need = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1]), has_bias and bool(ctx.needs_input_grad[2])]
    gx, gw, gb = torch.ops.medfuse.conv2d_backward(x, weight, grad.contiguous(), stride, padding, dilation,
                                                   groups, need)
    return (gx if need[0] else None, gw if need[1] else None, gb if need[2] else None, None, None, None, None)


_conv2d_op.register_autograd(_conv2d_grad, setup_context=_conv2d_setup)


def _pair(value: object, name: str, minimum: int) -> list[int]:
    vals = [value, value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if (not isinstance(vals, (list, tuple)) or len(vals) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals)):
        raise TypeError(f"{name} must be an int or a pair of ints; got {value!r}")
    if min(vals) < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return [int(vals[0]), int(vals[1])]


def _tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {t.dtype}")
    return t


def _same(t: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} must have x's dtype ({ref.dtype}); got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name} must be on x's device ({ref.device}); got {t.device}")


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1) -> torch.Tensor:
    """``torch.nn.functional.conv2d`` on medfuse's kernels (4D input, zero padding).

    x (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out,)
    or None; stride / padding / dilation an int or a pair (padding as
    numbers, not "same"/"valid"). CPU float32 / float64: ``medfuse::conv2d``
    (differentiable in x, weight and bias); other devices or dtypes: torch's
    conv2d. Equal to torch's result to float rounding (about 1e-5 relative).
    """
    x = _tensor(x, "x")
    weight = _tensor(weight, "weight")
    _same(weight, x, "weight")
    if bias is not None:
        bias = _tensor(bias, "bias")
        _same(bias, x, "bias")
    if x.dim() != 4:
        raise ValueError(f"x must be 4-dimensional (N, C, H, W); got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be 4-dimensional (C_out, C_in/groups, kH, kW); got shape {tuple(weight.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int; got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1; got {groups}")
    s, p, d = _pair(stride, "stride", 1), _pair(padding, "padding", 0), _pair(dilation, "dilation", 1)
    co, cig, kh, kw = weight.shape
    if x.shape[1] != cig * groups or co % groups:
        raise ValueError(f"weight (shape {tuple(weight.shape)}, groups={groups}) does not match x's "
                         f"{x.shape[1]} input channels")
    if bias is not None and tuple(bias.shape) != (co,):
        raise ValueError(f"bias must have shape ({co},); got {tuple(bias.shape)}")
    if 0 in x.shape or 0 in weight.shape:
        raise ValueError(f"x and weight must not be empty; got shapes {tuple(x.shape)}, {tuple(weight.shape)}")
    if _out_size(x.shape[2], kh, s[0], p[0], d[0]) < 1 or _out_size(x.shape[3], kw, s[1], p[1], d[1]) < 1:
        raise ValueError("weight is larger than the padded input: the output would be empty")
    if x.device.type != "cpu" or x.dtype not in _KERNEL_DTYPES:
        return torch.nn.functional.conv2d(x, weight, bias, s, p, d, groups)
    return torch.ops.medfuse.conv2d(x, weight, bias, s, p, d, int(groups))


# ---- attention --------------------------------------------------------------

def _mask_np(mask: torch.Tensor | None) -> np.ndarray | None:
    return None if mask is None else _np(mask)


@torch.library.custom_op("medfuse::attention", mutates_args=(), device_types="cpu")
def _attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                  scale: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse = _attn.attention(_np(q), _np(k), _np(v), mask=_mask_np(mask), causal=causal, scale=scale,
                               return_lse=True)
    return torch.from_numpy(np.ascontiguousarray(out)), torch.from_numpy(np.ascontiguousarray(lse))


def _batch(q, k, v):
    return tuple(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))


@_attention_op.register_fake
def _(q, k, v, mask, causal, scale):
    b = _batch(q, k, v)
    return q.new_empty(b + (q.shape[-2], v.shape[-1])), q.new_empty(b + (q.shape[-2],))


@torch.library.custom_op("medfuse::attention_backward", mutates_args=(), device_types="cpu")
def _attention_backward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                           grad_out: torch.Tensor, lse: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                           scale: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dq, dk, dv = _attn.attention_backward(_np(q), _np(k), _np(v), _np(out), _np(grad_out), _np(lse),
                                          mask=_mask_np(mask), causal=causal, scale=scale)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (dq, dk, dv))  # type: ignore[return-value]


@_attention_backward_op.register_fake
def _(q, k, v, out, grad_out, lse, mask, causal, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _attention_setup(ctx, inputs, output):
    q, k, v, mask, causal, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, mask)
    ctx.conf = (causal, scale)


def _attention_grad(ctx, grad_out, grad_lse):
    q, k, v, out, lse, mask = ctx.saved_tensors
    causal, scale = ctx.conf
    # lse is an auxiliary output for the backward pass; its gradient is not propagated.
    dq, dk, dv = torch.ops.medfuse.attention_backward(q, k, v, out, grad_out.contiguous(), lse, mask, causal, scale)
    return dq, dk, dv, None, None, None


_attention_op.register_autograd(_attention_grad, setup_context=_attention_setup)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """``softmax(q kᵀ · scale + mask) v`` on medfuse's fused kernel, differentiable in q, k, v.

    As ``torch.nn.functional.scaled_dot_product_attention(q, k, v,
    attn_mask=mask, is_causal=causal, scale=scale)``: q (..., Lq, d), k
    (..., Lk, d), v (..., Lk, dv), batch dimensions broadcast; mask bool
    (True = attend) or float (added), broadcastable to (..., Lq, Lk), no
    gradient. Rows whose keys are all masked give 0 (as torch 2.13). CPU
    float32 / float64 run ``medfuse::attention``; other devices or dtypes run
    torch's SDPA (``causal`` and ``mask`` together are then refused, as torch).
    """
    q, k, v = _tensor(q, "q"), _tensor(k, "k"), _tensor(v, "v")
    _same(k, q, "k")
    _same(v, q, "v")
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        if t.dim() < 2 or 0 in t.shape:
            raise ValueError(f"{name} must have at least 2 non-empty dimensions (..., L, d); got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dimension d; got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length Lk; got {k.shape[-2]} and {v.shape[-2]}")
    try:
        batch = _batch(q, k, v)
    except RuntimeError:
        raise ValueError(f"the batch dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} "
                         "are not broadcastable") from None
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor or None; got {type(mask).__name__}")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(f"mask must be bool (True = attend) or floating point; got {mask.dtype}")
        if mask.device != q.device:
            raise ValueError(f"mask must be on q's device ({q.device}); got {mask.device}")
        full = batch + (q.shape[-2], k.shape[-2])
        try:
            ok = tuple(torch.broadcast_shapes(tuple(mask.shape), full)) == full
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"mask of shape {tuple(mask.shape)} is not broadcastable to (..., Lq, Lk) = {full}")
        if mask.is_floating_point() and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool; got {causal!r}")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number or None; got {scale!r}")
        scale = float(scale)
    if q.device.type != "cpu" or q.dtype not in _KERNEL_DTYPES:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                                                scale=scale)
    return torch.ops.medfuse.attention(q, k, v, mask, causal, scale)[0]


