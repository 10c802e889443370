"""Fused scaled dot-product attention (C++ kernels): forward, backward, multi-head."""

from __future__ import annotations

import numbers
from typing import Optional, Union

import numpy as np
import numpy.typing as npt

from ._validate import core_suffix
from ._attention_plan import AttentionPlan, check_backward, plan_attention, unbroadcast
from ._threads import get_num_threads

__all__ = ["attention", "attention_backward", "multi_head_attention"]



def _core():  # imported lazily so that the twins work without the extension
    from . import _core as core

    return core


def _mask_args(plan: AttentionPlan) -> dict:
    if plan.mask is None:
        return {}
    rs, cs = plan.mask_strides()
    flat = plan.mask_flat()
    args = dict(mask_off=plan.offsets(flat), mask_rs=rs, mask_cs=cs)
    if flat.dtype == np.bool_:
        args["mask_b"] = flat.reshape(-1).view(np.uint8)
    else:
        args["mask_f"] = flat.reshape(-1)
    return args


def _common_args(plan: AttentionPlan) -> dict:
    return dict(
        q=plan.q.reshape(-1),
        k=plan.k.reshape(-1),
        v=plan.v.reshape(-1),
        q_off=plan.offsets(plan.q),
        k_off=plan.offsets(plan.k),
        v_off=plan.offsets(plan.v),
        batch=plan.batch,
        lq=plan.lq,
        lk=plan.lk,
        d=plan.d,
        dv=plan.dv,
        causal=plan.causal,
        scale=plan.scale,
        threads=get_num_threads(),
        **_mask_args(plan),
    )


def attention(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    *,
    mask: Optional[npt.ArrayLike] = None,
    causal: bool = False,
    scale: Optional[float] = None,
    return_lse: bool = False,
) -> Union[npt.NDArray, tuple[npt.NDArray, npt.NDArray]]:
    """Scaled dot-product attention ``softmax(q kᵀ · scale + mask) v``, fused.

    Semantics are those of ``torch.nn.functional.scaled_dot_product_attention``
    except where stated. The Lq x Lk score matrix is never formed: keys are
    processed in blocks of 64 with an online softmax (flash-attention), so
    extra memory is O((Lq + Lk) · d) per thread.

    Parameters
    ----------
    q : ndarray (..., Lq, d), float32 or float64
    k : ndarray (..., Lk, d), same dtype
    v : ndarray (..., Lk, dv), same dtype
        Leading (batch, head, ...) dimensions broadcast against each other as
        in NumPy/torch; any strides and byte order.
    mask : ndarray, optional
        Broadcastable to (..., Lq, Lk). bool: True = attend (False -> score
        -inf); float (any float dtype, cast to q's): added to the scores.
    causal : bool
        Query i attends to keys j <= i (lower triangle aligned at the top-left,
        as torch's ``is_causal``, also when Lq != Lk). Unlike torch, may be
        combined with ``mask`` (both apply).
    scale : float, optional
        Multiplies q kᵀ; default ``1 / sqrt(d)``. Must be finite.
    return_lse : bool
        Also return the natural log-sum-exp of each row's scaled, masked
        scores, shape (..., Lq), q's dtype (the input ``attention_backward``
        needs).

    Returns
    -------
    out : ndarray (..., Lq, dv), q's dtype; ``(out, lse)`` with ``return_lse``.

    Rows with nothing to attend to (every key masked out by a bool mask or
    by -inf in an additive mask) give ``out = 0`` and ``lse = -inf``, as
    torch 2.13's SDPA (older torch releases returned NaN there). ``causal`` alone never empties a row (row i
    always sees key 0). NaN or inf in the
    inputs propagate to the rows they touch (no check is made).
    """
    plan = plan_attention(q, k, v, mask, causal, scale)
    fn = getattr(_core(), "attention_" + core_suffix(plan.dtype))
    res = fn(**_common_args(plan), return_lse=bool(return_lse))
    shape = plan.batch_shape + (plan.lq, plan.dv)
    if return_lse:
        out, lse = res
        return out.reshape(shape), lse.reshape(plan.batch_shape + (plan.lq,))
    return res.reshape(shape)


def attention_backward(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    out: npt.ArrayLike,
    grad_out: npt.ArrayLike,
    lse: npt.ArrayLike,
    *,
    mask: Optional[npt.ArrayLike] = None,
    causal: bool = False,
    scale: Optional[float] = None,
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    """Gradients ``(dq, dk, dv)`` of ``attention`` given ``grad_out = dL/d out``.

    ``out`` and ``lse`` are what ``attention(q, k, v, ..., return_lse=True)``
    returned for the same arguments; ``grad_out`` has ``out``'s shape. The
    mask is a constant (no gradient). Fused like the forward pass
    (FlashAttention-2: probabilities recomputed per block from ``lse``, O(N)
    extra memory). dk and dv are summed over the batch dimensions along
    which k and v were broadcast, so each gradient has its input's shape.
    Rows with ``lse = -inf`` (fully masked) contribute nothing. Results are
    identical for any thread count.
    """
    plan = plan_attention(q, k, v, mask, causal, scale)
    o, go, ls = check_backward(plan, out, grad_out, lse)
    fn = getattr(_core(), "attention_backward_" + core_suffix(plan.dtype))
    dq, dk, dv = fn(**_common_args(plan), out=o.reshape(-1), grad_out=go.reshape(-1), lse=ls.reshape(-1))
    b = plan.batch_shape
    return (
        unbroadcast(dq.reshape(b + (plan.lq, plan.d)), plan.q.shape),
        unbroadcast(dk.reshape(b + (plan.lk, plan.d)), plan.k.shape),
        unbroadcast(dv.reshape(b + (plan.lk, plan.dv)), plan.v.shape),
    )


def _heads(value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"heads must be a positive integer; got {value!r}")
    h = int(value)
    if h < 1:
        raise ValueError(f"heads must be >= 1; got {h}")
    return h


def check_mha(
    x_q: object, x_kv: object, w_q: object, w_k: object, w_v: object, w_o: object, heads: object
) -> tuple[npt.NDArray, ...]:
    """Validated (x_q, x_kv, w_q, w_k, w_v, w_o) and the head count (shared with the twin)."""
    h = _heads(heads)
    arrs = []
    for name, x in (("x_q", x_q), ("x_kv", x_kv), ("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o)):
        a = x if isinstance(x, np.ndarray) else np.asarray(x)
        if a.dtype.type not in (np.float32, np.float64):
            raise TypeError(f"{name} must have dtype float32 or float64; got {a.dtype}")
        if a.size == 0:
            raise ValueError(f"{name} is empty (shape {a.shape})")
        arrs.append(a)
    xq, xkv, wq, wk, wv, wo = arrs
    for name, a in zip(("x_kv", "w_q", "w_k", "w_v", "w_o"), arrs[1:]):
        if a.dtype != xq.dtype:
            raise TypeError(f"{name} must have x_q's dtype ({xq.dtype}); got {a.dtype}")
    if xq.ndim < 2 or xkv.ndim < 2:
        bad = "x_q" if xq.ndim < 2 else "x_kv"
        raise ValueError(f"{bad} must have at least 2 dimensions (..., L, E)")
    e = xq.shape[-1]
    ekv = xkv.shape[-1]
    for name, a, want in (("w_q", wq, (e, e)), ("w_k", wk, (e, ekv)), ("w_v", wv, (e, ekv)), ("w_o", wo, (e, e))):
        if a.shape != want:
            raise ValueError(f"{name} must have shape {want} (y = x @ {name}.T); got {a.shape}")
    if e % h:
        raise ValueError(f"heads={h} must divide the embedding size E={e}")
    return xq, xkv, wq, wk, wv, wo, h  # type: ignore[return-value]


def multi_head_attention(
    x_q: npt.ArrayLike,
    x_kv: npt.ArrayLike,
    w_q: npt.ArrayLike,
    w_k: npt.ArrayLike,
    w_v: npt.ArrayLike,
    w_o: npt.ArrayLike,
    *,
    heads: int,
    mask: Optional[npt.ArrayLike] = None,
) -> npt.NDArray:
    """Multi-head attention without biases, torch ``nn.MultiheadAttention`` layout.

    ``x_q`` (..., Lq, E), ``x_kv`` (..., Lk, Ekv); weights as torch stores
    them (``y = x @ W.T``): ``w_q`` (E, E), ``w_k`` and ``w_v`` (E, Ekv) — the
    three row blocks of torch's ``in_proj_weight`` when Ekv == E — and ``w_o``
    (E, E) (``out_proj.weight``). Heads split E into ``heads`` slices of
    E / heads; each head runs :func:`attention` with the default scale
    1/sqrt(E / heads). ``mask`` is broadcastable to (..., heads, Lq, Lk), so a
    (Lq, Lk) mask applies to every head. Returns (..., Lq, E), x_q's dtype.
    Equals ``torch.nn.functional.multi_head_attention_forward`` with
    ``use_separate_proj_weight=True`` and no biases (batch-first layout).
    """
    xq, xkv, wq, wk, wv, wo, h = check_mha(x_q, x_kv, w_q, w_k, w_v, w_o, heads)
    e = xq.shape[-1]
    dh = e // h

    def split(x: npt.NDArray) -> npt.NDArray:
        return np.swapaxes(x.reshape(x.shape[:-1] + (h, dh)), -2, -3)

    qh = split(xq @ wq.T)
    kh = split(xkv @ wk.T)
    vh = split(xkv @ wv.T)
    oh = attention(qh, kh, vh, mask=mask)
    o = np.swapaxes(oh, -2, -3)
    o = o.reshape(o.shape[:-2] + (e,))
    return o @ wo.T
