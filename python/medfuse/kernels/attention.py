"""Fused scaled dot-product attention (C++ kernels): forward, backward, multi-head."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._attention_plan import AttentionPlan, check_backward, check_mha, plan_attention, unbroadcast
from ._ext import core as _core
from ._threads import get_num_threads
from ._validate import core_suffix

__all__ = ["attention", "attention_backward", "multi_head_attention"]





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
    mask: npt.ArrayLike | None = None,
    causal: bool = False,
    scale: float | None = None,
    return_lse: bool = False,
) -> npt.NDArray | tuple[npt.NDArray, npt.NDArray]:
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
    mask: npt.ArrayLike | None = None,
    causal: bool = False,
    scale: float | None = None,
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


def multi_head_attention(
    x_q: npt.ArrayLike,
    x_kv: npt.ArrayLike,
    w_q: npt.ArrayLike,
    w_k: npt.ArrayLike,
    w_v: npt.ArrayLike,
    w_o: npt.ArrayLike,
    *,
    heads: int,
    mask: npt.ArrayLike | None = None,
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
