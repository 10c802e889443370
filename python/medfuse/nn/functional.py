"""medfuse's conv2d, attention and GRU kernels as PyTorch custom operators.

Operators (``torch.library.custom_op``, CPU kernels, fake kernels for meta
tensors and torch.compile, autograd through C++ backward kernels):

- ``medfuse::conv2d(x, weight, bias, stride, padding, dilation, groups, relu)``
  and ``medfuse::conv2d_backward`` (grad input, weight, bias);
- ``medfuse::attention(q, k, v, mask, causal, scale) -> (out, lse)`` and
  ``medfuse::attention_backward``;
- ``medfuse::gru(gi, w_hh, b_hh, h0, lengths) -> (out, h_n, saved)`` (the
  recurrence of a single-layer GRU given the input projections) and
  ``medfuse::gru_backward`` (per-step gate gradients; dW_hh and db_hh are
  then one GEMM and one sum in the autograd formula).

The functions :func:`conv2d` and :func:`attention` validate their arguments
(TypeError / ValueError naming the argument, before any kernel runs) and
choose the path: CPU tensors of float32 or float64 run medfuse's kernels;
tensors on another device or of another floating dtype (float16,
bfloat16) run ``torch.nn.functional.conv2d`` /
``scaled_dot_product_attention`` instead. float64 exists for
``torch.autograd.gradcheck``: the float64 conv2d forward is a direct loop,
slower than the float32 kernel.

Eager mode skips the operator dispatcher: with plain CPU tensors, no
torch.compile / tracing / functorch transform and no torch dispatch or
function mode active, the functions call the C++ kernels through a
``torch.autograd.Function`` (the same kernels, arguments and bits as the
operators; the validation above is done once per call). Custom-operator
dispatch costs tens of microseconds per call (schema checks, the Python
dispatcher, the autograd wrapper), which dominated small layers. Anything
else (compiling, ``torch.jit.trace`` and the tracing ``torch.onnx.export``,
``make_fx``, ``opcheck``, fake tensors) goes through ``torch.ops.medfuse.*``,
so a traced graph records the operators (a Python autograd.Function cannot
be saved or exported).

First derivatives only: the backward kernels' results are not themselves
differentiable, so ``create_graph=True`` through conv2d, attention or the
GRU raises a RuntimeError ("no double backward") instead of second
derivatives that would silently miss these operators' part.
"""

# No `from __future__ import annotations`: torch.library infers the operator
# schemas from these annotations.
import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from ..kernels import _validate
from ..kernels._attention_plan import unbroadcast
from ..kernels._ext import core as _core
from ..kernels._threads import get_num_threads

__all__ = ["attention", "conv2d", "gru"]

_KERNEL_DTYPES = (torch.float32, torch.float64)
_PLAIN = (torch.Tensor, torch.nn.Parameter)
IntPair = int | Sequence[int]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _eager(*tensors: torch.Tensor | None) -> bool:
    """True when the kernels may be called directly (see the module docstring)."""
    if (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack()
            or torch._C._are_functorch_transforms_active() or torch._C._is_torch_function_mode_enabled()):
        return False
    return all(t is None or type(t) in _PLAIN for t in tensors)


# ---- conv2d -----------------------------------------------------------------

def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _conv2d_run(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Sequence[int],
                padding: Sequence[int], dilation: Sequence[int], groups: int, relu: bool) -> torch.Tensor:
    """The forward kernel on validated CPU tensors (both paths run this)."""
    core = _core()
    ho = _out_size(x.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
    wo = _out_size(x.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
    _validate.check_alloc(x.element_size() * x.shape[0] * weight.shape[0] * ho * wo, "conv2d output")
    b = None if bias is None else _np(bias)
    args = (_np(x), _np(weight), b, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups)
    if x.dtype == torch.float64:
        y = torch.from_numpy(core.conv2d_f64(*args, get_num_threads()))
        return y.masked_fill_(y <= 0, 0.0) if relu else y  # y <= 0 ? 0 : y, NaN kept, as the float32 kernel
    return torch.from_numpy(core.conv2d_f32(*args, relu, get_num_threads()))


def _conv2d_backward_run(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, stride: Sequence[int],
                         padding: Sequence[int], dilation: Sequence[int], groups: int,
                         need: Sequence[bool]) -> tuple[torch.Tensor | None, ...]:
    core = _core()
    _validate.check_alloc(x.element_size() * (x.numel() + weight.numel()), "conv2d_backward output")
    fn = core.conv2d_backward_f32 if x.dtype == torch.float32 else core.conv2d_backward_f64
    res = fn(_np(x), _np(weight), _np(grad_out), bool(need[0]), bool(need[1]), bool(need[2]), stride[0], stride[1],
             padding[0], padding[1], dilation[0], dilation[1], groups, get_num_threads())
    return tuple(None if a is None else torch.from_numpy(a) for a in res)


def _relu_grad(grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dL/d(pre-activation) from dL/dy of ``y = relu(...)``, as torch's ReLU backward."""
    return torch.ops.aten.threshold_backward(grad, y, 0)


@torch.library.custom_op("medfuse::conv2d", mutates_args=(), device_types="cpu")
def _conv2d_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
               padding: list[int], dilation: list[int], groups: int, relu: bool = False) -> torch.Tensor:
    return _conv2d_run(x, weight, bias, stride, padding, dilation, groups, relu)


@_conv2d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, relu=False):
    ho = _out_size(x.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
    wo = _out_size(x.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
    return x.new_empty((x.shape[0], weight.shape[0], ho, wo))


@torch.library.custom_op("medfuse::conv2d_backward", mutates_args=(), device_types="cpu")
def _conv2d_backward_op(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, stride: list[int],
                        padding: list[int], dilation: list[int], groups: int,
                        need: list[bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    res = _conv2d_backward_run(x, weight, grad_out, stride, padding, dilation, groups, need)
    # gradients not asked for come back as (distinct) empty tensors
    return tuple(a if a is not None else x.new_empty((0,)) for a in res)  # type: ignore[return-value]


@_conv2d_backward_op.register_fake
def _(x, weight, grad_out, stride, padding, dilation, groups, need):
    return (x.new_empty(x.shape if need[0] else (0,)), weight.new_empty(weight.shape if need[1] else (0,)),
            weight.new_empty((weight.shape[0],) if need[2] else (0,)))


def _conv2d_setup(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation, groups, *rest = inputs
    relu = bool(rest[0]) if rest else False
    ctx.save_for_backward(x, weight, output if relu else None)
    ctx.conf = (stride, padding, dilation, groups, bias is not None)


def _conv2d_grad(ctx, grad):
    x, weight, y = ctx.saved_tensors
    stride, padding, dilation, groups, has_bias = ctx.conf
    if y is not None:
        grad = _relu_grad(grad, y)
    need = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1]), has_bias and bool(ctx.needs_input_grad[2])]
    gx, gw, gb = torch.ops.medfuse.conv2d_backward(x, weight, grad.contiguous(), stride, padding, dilation,
                                                   groups, need)
    return (gx if need[0] else None, gw if need[1] else None, gb if need[2] else None, None, None, None, None, None)


_conv2d_op.register_autograd(_conv2d_grad, setup_context=_conv2d_setup)


class _Conv2dEager(torch.autograd.Function):
    """Eager path of ``medfuse::conv2d``: the same kernels without the dispatcher."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, relu):  # type: ignore[override]
        y = _conv2d_run(x, weight, bias, stride, padding, dilation, groups, relu)
        ctx.save_for_backward(x, weight, y if relu else None)
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        if torch.is_grad_enabled():  # create_graph=True: the kernels' gradients are not differentiable
            raise RuntimeError("medfuse.nn.functional.conv2d has no double backward (create_graph=True); "
                               "use torch.nn.functional.conv2d for higher derivatives")
        x, weight, y = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        if y is not None:
            grad = _relu_grad(grad, y)
        nig = ctx.needs_input_grad
        need = (bool(nig[0]), bool(nig[1]), has_bias and bool(nig[2]))
        if not any(need):
            return None, None, None, None, None, None, None, None
        gx, gw, gb = _conv2d_backward_run(x, weight, grad, stride, padding, dilation, groups, need)
        return gx, gw, gb, None, None, None, None, None


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
           padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, *,
           activation: str | None = None) -> torch.Tensor:
    """``torch.nn.functional.conv2d`` on medfuse's kernels (4D input, zero padding).

    x (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out,)
    or None; stride / padding / dilation an int or a pair (padding as
    numbers, not "same"/"valid"). ``activation="relu"`` applies ReLU in the
    kernel's epilogue (``relu(conv2d(...))`` in one pass; the backward pass
    masks the gradient by ``y > 0`` as torch's ReLU does). That ReLU keeps
    NaN as ``torch.relu`` does (``y <= 0 ? 0 : y``); NaN propagates. CPU float32 /
    float64: ``medfuse::conv2d`` (differentiable in x, weight and bias);
    other devices or dtypes: torch's conv2d. Equal to torch's result to float
    rounding (about 1e-5 relative). float32 runs :func:`medfuse.conv2d`'s
    paths (direct, packed GEMM, or Winograd F(2x2, 3x3) for 3x3 stride-1
    layers of >= 16 channels; ``MEDFUSE_CONV2D_PATH`` forces one); the
    stride-1 grad input is a forward convolution of grad_out with the flipped
    weights on the same paths. float64 runs direct float64 loops.
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
    if activation not in (None, "relu"):
        raise ValueError(f"activation must be None or 'relu'; got {activation!r}")
    relu = activation == "relu"
    if x.device.type != "cpu" or x.dtype not in _KERNEL_DTYPES:
        y = torch.nn.functional.conv2d(x, weight, bias, s, p, d, groups)
        return torch.relu(y) if relu else y
    if _eager(x, weight, bias):
        return _Conv2dEager.apply(x, weight, bias, s, p, d, int(groups), relu)
    return torch.ops.medfuse.conv2d(x, weight, bias, s, p, d, int(groups), relu)


# ---- attention --------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _offsets(own: tuple[int, ...], batch: tuple[int, ...], per: int) -> np.ndarray:
    """Element offset of each flattened batch element's matrix in a buffer of batch dims ``own``
    (broadcast to ``batch``); as AttentionPlan.offsets, cached per shape (read-only)."""
    idx = (np.arange(math.prod(own), dtype=np.int64) * per).reshape(own)
    full = (1,) * (len(batch) - len(own)) + own
    out = np.ascontiguousarray(np.broadcast_to(idx.reshape(full), batch).reshape(-1))
    out.setflags(write=False)
    return out


def _attention_args(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                    scale: float | None) -> tuple[dict, tuple[int, ...], tuple[torch.Tensor, ...]]:
    """Keyword arguments of ``_core.attention_*`` for validated CPU tensors (the plan of
    medfuse.kernels.attention, on torch shapes), the broadcast batch shape, and the
    contiguous q, k, v the kernel reads."""
    qc, kc, vc = q.detach().contiguous(), k.detach().contiguous(), v.detach().contiguous()
    batch = tuple(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    lq, d = q.shape[-2:]
    lk, dv = v.shape[-2:]
    args = dict(q=qc.numpy().reshape(-1), k=kc.numpy().reshape(-1), v=vc.numpy().reshape(-1),
                q_off=_offsets(tuple(q.shape[:-2]), batch, lq * d), k_off=_offsets(tuple(k.shape[:-2]), batch, lk * d),
                v_off=_offsets(tuple(v.shape[:-2]), batch, lk * dv), batch=math.prod(batch), lq=lq, lk=lk, d=d,
                dv=dv, causal=bool(causal), scale=1.0 / math.sqrt(d) if scale is None else float(scale),
                threads=get_num_threads())
    if mask is not None:
        m = mask.detach()
        m = m.reshape((1,) * (len(batch) + 2 - m.dim()) + tuple(m.shape))
        rows, cols = m.shape[-2:]
        cs = 1 if cols == lk and lk > 1 else 0
        rs = (cols if cs else 1) if rows == lq and lq > 1 else 0
        if rows > 1 and rs == 0:
            m = m[..., :1, :]
        if cols > 1 and cs == 0:
            m = m[..., :1]
        flat = m.contiguous().numpy()
        args["mask_off"] = _offsets(flat.shape[:-2], batch, flat.shape[-2] * flat.shape[-1])
        args["mask_rs"], args["mask_cs"] = rs, cs
        if flat.dtype == np.bool_:
            args["mask_b"] = flat.reshape(-1).view(np.uint8)
        else:
            args["mask_f"] = flat.reshape(-1)
    return args, batch, (qc, kc, vc)


def _attention_run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                   scale: float | None) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """(out, lse, contiguous (q, k, v)) from the forward kernel (both paths run this)."""
    args, batch, qkv = _attention_args(q, k, v, mask, causal, scale)
    fn = _core().attention_f32 if q.dtype == torch.float32 else _core().attention_f64
    out, lse = fn(**args, return_lse=True)
    lq, dv = args["lq"], args["dv"]
    return torch.from_numpy(out).view(batch + (lq, dv)), torch.from_numpy(lse).view(batch + (lq,)), qkv


def _attention_backward_run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                            grad_out: torch.Tensor, lse: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                            scale: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    args, batch, _ = _attention_args(q, k, v, mask, causal, scale)
    fn = _core().attention_backward_f32 if q.dtype == torch.float32 else _core().attention_backward_f64
    dq, dk, dv = fn(**args, out=_np(out).reshape(-1), grad_out=_np(grad_out).reshape(-1), lse=_np(lse).reshape(-1))
    res = []
    for g, t in ((dq, q), (dk, k), (dv, v)):
        g = g.reshape(batch + g.shape[-2:])
        if g.shape != tuple(t.shape):  # t was broadcast: sum its gradient back to its shape
            g = unbroadcast(g, tuple(t.shape))
        res.append(torch.from_numpy(g))
    return res[0], res[1], res[2]


@torch.library.custom_op("medfuse::attention", mutates_args=(), device_types="cpu")
def _attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                  scale: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse, _ = _attention_run(q, k, v, mask, causal, scale)
    return out, lse


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
    return _attention_backward_run(q, k, v, out, grad_out, lse, mask, causal, scale)


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


class _AttentionEager(torch.autograd.Function):
    """Eager path of ``medfuse::attention``: the same kernels without the dispatcher."""

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale):  # type: ignore[override]
        out, lse, (qc, kc, vc) = _attention_run(q, k, v, mask, causal, scale)
        ctx.save_for_backward(qc, kc, vc, out, lse, mask)
        ctx.conf = (causal, scale)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):  # type: ignore[override]
        if torch.is_grad_enabled():  # create_graph=True: the kernels' gradients are not differentiable
            raise RuntimeError("medfuse.nn.functional.attention has no double backward (create_graph=True); "
                               "use torch.nn.functional.scaled_dot_product_attention for higher derivatives")
        q, k, v, out, lse, mask = ctx.saved_tensors
        causal, scale = ctx.conf
        dq, dk, dv = _attention_backward_run(q, k, v, out, grad_out, lse, mask, causal, scale)
        return dq, dk, dv, None, None, None


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
    if _eager(q, k, v, mask):
        return _AttentionEager.apply(q, k, v, mask, causal, scale)[0]
    return torch.ops.medfuse.attention(q, k, v, mask, causal, scale)[0]




# ---- GRU --------------------------------------------------------------------

def _gru_run(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor | None,
             lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, h_n, saved) from the recurrence kernel on validated CPU tensors (both paths run this)."""
    core = _core()
    fn = core.gru_forward_f32 if gi.dtype == torch.float32 else core.gru_forward_f64
    out, hn, saved = fn(_np(gi), _np(w_hh), _np(b_hh), None if h0 is None else _np(h0), _np(lengths),
                        get_num_threads())
    return torch.from_numpy(out), torch.from_numpy(hn), torch.from_numpy(saved)


def _gru_backward_run(w_hh: torch.Tensor, h0: torch.Tensor | None, lengths: torch.Tensor, out: torch.Tensor,
                      saved: torch.Tensor, grad_out: torch.Tensor | None, grad_hn: torch.Tensor | None,
                      need_dh0: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    core = _core()
    fn = core.gru_backward_f32 if out.dtype == torch.float32 else core.gru_backward_f64
    go = np.zeros(out.shape, out.numpy().dtype) if grad_out is None else _np(grad_out)
    gh = np.zeros(out.shape[::2], out.numpy().dtype) if grad_hn is None else _np(grad_hn)
    dgi, dgh, dh0 = fn(_np(w_hh), None if h0 is None else _np(h0), _np(lengths), _np(out), _np(saved), go, gh,
                       bool(need_dh0), get_num_threads())
    return torch.from_numpy(dgi), torch.from_numpy(dgh), None if dh0 is None else torch.from_numpy(dh0)


def _gru_weight_grads(dgh: torch.Tensor, out: torch.Tensor, h0: torch.Tensor | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """dW_hh (one GEMM over all steps: dgh_t h_{t-1}^T) and db_hh (one sum) from the per-step gradients."""
    first = out.new_zeros((out.shape[0], 1, out.shape[2])) if h0 is None else h0.unsqueeze(1)
    hprev = torch.cat((first, out[:, :-1]), 1)
    g = dgh.reshape(-1, dgh.shape[-1])
    return g.t().mm(hprev.reshape(-1, hprev.shape[-1])), g.sum(0)


@torch.library.custom_op("medfuse::gru", mutates_args=(), device_types="cpu")
def _gru_op(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor | None,
            lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _gru_run(gi, w_hh, b_hh, h0, lengths)


@_gru_op.register_fake
def _(gi, w_hh, b_hh, h0, lengths):
    b, t, h = gi.shape[0], gi.shape[1], w_hh.shape[1]
    return gi.new_empty((b, t, h)), gi.new_empty((b, h)), gi.new_empty((b, t, 4 * h))


@torch.library.custom_op("medfuse::gru_backward", mutates_args=(), device_types="cpu")
def _gru_backward_op(w_hh: torch.Tensor, h0: torch.Tensor | None, lengths: torch.Tensor, out: torch.Tensor,
                     saved: torch.Tensor, grad_out: torch.Tensor, grad_hn: torch.Tensor,
                     need_dh0: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dgi, dgh, dh0 = _gru_backward_run(w_hh, h0, lengths, out, saved, grad_out, grad_hn, need_dh0)
    return dgi, dgh, dh0 if dh0 is not None else out.new_empty((0,))


@_gru_backward_op.register_fake
def _(w_hh, h0, lengths, out, saved, grad_out, grad_hn, need_dh0):
    b, t, h = out.shape
    return (out.new_empty((b, t, 3 * h)), out.new_empty((b, t, 3 * h)),
            out.new_empty((b, h) if need_dh0 else (0,)))


def _gru_setup(ctx, inputs, output):
    _gi, w_hh, _b_hh, h0, lengths = inputs
    out, _hn, saved = output
    ctx.save_for_backward(w_hh, h0, lengths, out, saved)


def _gru_grad(ctx, grad_out, grad_hn, grad_saved):
    w_hh, h0, lengths, out, saved = ctx.saved_tensors
    # saved is an auxiliary output for the backward pass; its gradient is not propagated.
    need_dh0 = h0 is not None and bool(ctx.needs_input_grad[3])
    go = out.new_zeros(out.shape) if grad_out is None else grad_out.contiguous()
    gh = out.new_zeros((out.shape[0], out.shape[2])) if grad_hn is None else grad_hn.contiguous()
    dgi, dgh, dh0 = torch.ops.medfuse.gru_backward(w_hh, h0, lengths, out, saved, go, gh, need_dh0)
    dw, db = _gru_weight_grads(dgh, out, h0)
    return dgi, dw, db, dh0 if need_dh0 else None, None


_gru_op.register_autograd(_gru_grad, setup_context=_gru_setup)


class _GruEager(torch.autograd.Function):
    """Eager path of ``medfuse::gru``: the same kernels without the dispatcher."""

    @staticmethod
    def forward(ctx, gi, w_hh, b_hh, h0, lengths):  # type: ignore[override]
        out, hn, saved = _gru_run(gi, w_hh, b_hh, h0, lengths)
        ctx.save_for_backward(w_hh, h0, lengths, out, saved)
        ctx.mark_non_differentiable(saved)
        ctx.set_materialize_grads(False)
        return out, hn, saved

    @staticmethod
    def backward(ctx, grad_out, grad_hn, grad_saved):  # type: ignore[override]
        if torch.is_grad_enabled():  # create_graph=True: the kernels' gradients are not differentiable
            raise RuntimeError("medfuse.nn.functional.gru has no double backward (create_graph=True); "
                               "use torch.nn.GRU for higher derivatives")
        w_hh, h0, lengths, out, saved = ctx.saved_tensors
        nig = ctx.needs_input_grad
        need_dh0 = h0 is not None and bool(nig[3])
        dgi, dgh, dh0 = _gru_backward_run(w_hh, h0, lengths, out, saved, grad_out, grad_hn, need_dh0)
        dw, db = _gru_weight_grads(dgh, out, h0) if (nig[1] or nig[2]) else (None, None)
        return dgi, dw, db, dh0, None


def _gru_lengths(lengths: object, batch: int, steps: int) -> torch.Tensor:
    """lengths as a CPU int64 tensor (batch,) with entries in [1, steps], or a TypeError / ValueError."""
    if lengths is None:
        return torch.full((batch,), steps, dtype=torch.int64)
    if isinstance(lengths, torch.Tensor):
        if lengths.dtype == torch.bool or lengths.is_floating_point() or lengths.is_complex():
            raise TypeError(f"lengths must hold integers; got {lengths.dtype}")
        t = lengths.detach().to("cpu", torch.int64)
    else:
        try:
            arr = np.asarray(lengths)
        except (TypeError, ValueError):
            arr = np.asarray([object()])
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"lengths must be a tensor or sequence of integers; got {lengths!r}")
        t = torch.from_numpy(arr.astype(np.int64))
    if tuple(t.shape) != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one per sequence); got {tuple(t.shape)}")
    lo, hi = int(t.min()), int(t.max())
    if lo < 1 or hi > steps:
        raise ValueError(f"lengths must lie in [1, {steps}] (no empty sequences, none longer than the input); "
                         f"got min {lo}, max {hi}")
    return t.contiguous()


def gru(x: torch.Tensor, lengths: object, weight_ih: torch.Tensor, weight_hh: torch.Tensor, bias_ih: torch.Tensor,
        bias_hh: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A single-layer unidirectional GRU over a padded batch, as ``torch.nn.GRU(batch_first=True)``.

    x (B, T, I); lengths (B,) integers in [1, T] (a tensor, a sequence, or
    None for all T); weight_ih (3H, I), weight_hh (3H, H), bias_ih and
    bias_hh (3H,) in torch's gate order (r, z, n); h0 (B, H) or None (zeros).
    Returns ``(out, h_n)``: out (B, T, H) with zeros past each length (as
    ``pad_packed_sequence(..., total_length=T)``), h_n (B, H) the state
    after each sequence's last step. Inputs past a length are never read.

    The input projection ``x W_ih^T + b_ih`` is one torch GEMM over all
    tokens; the recurrence runs ``medfuse::gru`` (C++ kernels, one task per
    sequence, forward and backward), whose backward returns per-step gate
    gradients so that dW_hh, db_hh (and through torch's linear, dW_ih, db_ih,
    dx) are single GEMMs / sums. Differentiable in x, the weights, biases and
    h0. CPU float32 / float64 only (other devices or dtypes: use
    ``torch.nn.GRU``, or :class:`medfuse.nn.GRU`, which falls back to it).
    """
    x = _tensor(x, "x")
    named: list[tuple[str, torch.Tensor]] = [("weight_ih", weight_ih), ("weight_hh", weight_hh),
                                             ("bias_ih", bias_ih), ("bias_hh", bias_hh)]
    if h0 is not None:
        named.append(("h0", h0))
    for name, arg in named:
        _same(_tensor(arg, name), x, name)
    if x.device.type != "cpu" or x.dtype not in _KERNEL_DTYPES:
        raise TypeError(f"medfuse.nn.functional.gru runs on CPU float32/float64 tensors; got {x.dtype} on "
                        f"{x.device} (medfuse.nn.GRU falls back to torch.nn.GRU there)")
    if x.dim() != 3 or 0 in x.shape:
        raise ValueError(f"x must be a non-empty 3-dimensional (batch, steps, input_size) tensor; got "
                         f"{tuple(x.shape)}")
    b, steps, i = x.shape
    if weight_hh.dim() != 2 or weight_hh.shape[1] < 1 or weight_hh.shape[0] != 3 * weight_hh.shape[1]:
        raise ValueError(f"weight_hh must have shape (3 * hidden, hidden); got {tuple(weight_hh.shape)}")
    h = weight_hh.shape[1]
    if tuple(weight_ih.shape) != (3 * h, i):
        raise ValueError(f"weight_ih must have shape ({3 * h}, {i}) (3 * hidden, input_size); got "
                         f"{tuple(weight_ih.shape)}")
    for name, bias in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if tuple(bias.shape) != (3 * h,):
            raise ValueError(f"{name} must have shape ({3 * h},); got {tuple(bias.shape)}")
    if h0 is not None and tuple(h0.shape) != (b, h):
        raise ValueError(f"h0 must have shape ({b}, {h}) (batch, hidden); got {tuple(h0.shape)}")
    lens = _gru_lengths(lengths, b, steps)
    gi = torch.nn.functional.linear(x, weight_ih, bias_ih)
    if h0 is not None:
        h0 = h0.contiguous()
    if _eager(gi, weight_hh, bias_hh, h0):
        out, hn, _ = _GruEager.apply(gi, weight_hh, bias_hh, h0, lens)
    else:
        out, hn, _ = torch.ops.medfuse.gru(gi, weight_hh, bias_hh, h0, lens)
    return out, hn
