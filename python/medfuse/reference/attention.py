"""NumPy twins of medfuse.attention, attention_backward and multi_head_attention.

They materialise the full (..., Lq, Lk) score matrix (memory O(Lq·Lk)) and
use a numerically stable softmax (subtract the row maximum). Same
signatures, semantics and refusals as the kernels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..kernels._attention_plan import AttentionPlan, check_backward, check_mha, plan_attention, unbroadcast

__all__ = ["attention", "attention_backward", "multi_head_attention"]


def _scores(plan: AttentionPlan) -> npt.NDArray:
    """Scaled, masked scores (..., Lq, Lk) in q's dtype; -inf where masked."""
    s = np.matmul(plan.q, np.swapaxes(plan.k, -1, -2)) * plan.dtype.type(plan.scale)
    s = np.broadcast_to(s, plan.batch_shape + s.shape[-2:]).copy()
    if plan.mask is not None:
        if plan.mask.dtype == np.bool_:
            s = np.where(plan.mask, s, -np.inf).astype(plan.dtype)
        else:
            s = s + plan.mask
    if plan.causal:
        i = np.arange(plan.lq)[:, None]
        j = np.arange(plan.lk)[None, :]
        s = np.where(j <= i, s, -np.inf).astype(plan.dtype)
    return s


def _softmax(s: npt.NDArray) -> tuple[npt.NDArray, npt.NDArray]:
    """Row softmax and log-sum-exp; all -inf rows give zeros and -inf."""
    m = s.max(axis=-1, keepdims=True)
    empty = ~np.isfinite(m) & (m < 0)
    m = np.where(empty, 0, m)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(s - m)
        total = e.sum(axis=-1, keepdims=True)
        p = np.where(empty, 0, e / np.where(empty, 1, total))
        lse = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, total)))
    return p.astype(s.dtype), lse[..., 0].astype(s.dtype)


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
    """Twin of :func:`medfuse.attention` (materialises the scores)."""
    plan = plan_attention(q, k, v, mask, causal, scale)
    p, lse = _softmax(_scores(plan))
    out = np.matmul(p, plan.v)
    out = np.ascontiguousarray(np.broadcast_to(out, plan.batch_shape + (plan.lq, plan.dv)))
    if return_lse:
        return out, lse
    return out


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
    """Twin of :func:`medfuse.attention_backward`: P = exp(S - lse), then
    dV = Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP - rowsum(dO ∘ O)), dQ = scale·dS K,
    dK = scale·dSᵀ Q."""
    plan = plan_attention(q, k, v, mask, causal, scale)
    o, go, ls = check_backward(plan, out, grad_out, lse)
    s = _scores(plan)
    fully = np.isneginf(ls)[..., None]
    with np.errstate(invalid="ignore"):
        p = np.where(fully, 0, np.exp(s - np.where(fully, 0, ls[..., None]))).astype(plan.dtype)
    delta = (go * o).sum(axis=-1, keepdims=True)
    dv = np.matmul(np.swapaxes(p, -1, -2), go)
    dp = np.matmul(go, np.swapaxes(plan.v, -1, -2))
    ds = p * (dp - delta) * plan.dtype.type(plan.scale)
    dq = np.matmul(ds, plan.k)
    dk = np.matmul(np.swapaxes(ds, -1, -2), plan.q)
    b = plan.batch_shape
    return (
        unbroadcast(np.broadcast_to(dq, b + dq.shape[-2:]), plan.q.shape),
        unbroadcast(np.broadcast_to(dk, b + dk.shape[-2:]), plan.k.shape),
        unbroadcast(np.broadcast_to(dv, b + dv.shape[-2:]), plan.v.shape),
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
    """Twin of :func:`medfuse.multi_head_attention`."""
    xq, xkv, wq, wk, wv, wo, h = check_mha(x_q, x_kv, w_q, w_k, w_v, w_o, heads)
    e = xq.shape[-1]
    dh = e // h

    def split(x: npt.NDArray) -> npt.NDArray:
        return np.swapaxes(x.reshape(x.shape[:-1] + (h, dh)), -2, -3)

    oh = attention(split(xq @ wq.T), split(xkv @ wk.T), split(xkv @ wv.T), mask=mask)
    o = np.swapaxes(oh, -2, -3)
    return o.reshape(o.shape[:-2] + (e,)) @ wo.T
