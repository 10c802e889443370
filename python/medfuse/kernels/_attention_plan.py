"""Argument checks and broadcasting plan shared by medfuse.attention and its twin.

Both layers call :func:`plan_attention` / :func:`plan_backward`, so they
refuse the same inputs with the same messages (tests match on the parameter
name in each message).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _validate as v

ATTN_DTYPES = (np.float32, np.float64)


@dataclass
class AttentionPlan:
    q: npt.NDArray  # C-contiguous, native byte order, own (unbroadcast) shape
    k: npt.NDArray
    v: npt.NDArray
    batch_shape: tuple[int, ...]
    lq: int
    lk: int
    d: int
    dv: int
    scale: float
    causal: bool
    mask: npt.NDArray | None  # C-contiguous, ndim == len(batch_shape) + 2 (1s prepended); bool or q's dtype
    dtype: np.dtype

    @property
    def batch(self) -> int:
        return int(np.prod(self.batch_shape, dtype=np.int64)) if self.batch_shape else 1

    def offsets(self, arr: npt.NDArray) -> npt.NDArray[np.int64]:
        """Element offset of each flattened batch element's (L, x) matrix in ``arr``."""
        own = arr.shape[:-2]
        per = arr.shape[-2] * arr.shape[-1]
        n = int(np.prod(own, dtype=np.int64)) if own else 1
        idx = (np.arange(n, dtype=np.int64) * per).reshape(own)
        full = (1,) * (len(self.batch_shape) - len(own)) + own
        return v.contiguous(np.broadcast_to(idx.reshape(full), self.batch_shape).reshape(-1))

    def mask_strides(self) -> tuple[int, int]:
        """(row stride, column stride) of the mask in elements; 0 where broadcast."""
        assert self.mask is not None
        rows, cols = self.mask.shape[-2:]
        cs = 1 if cols == self.lk and self.lk > 1 else 0
        rs = (cols if cs else 1) if rows == self.lq and self.lq > 1 else 0
        return rs, cs

    def mask_flat(self) -> npt.NDArray:
        """The mask as a buffer matching ``mask_strides`` (broadcast axes of size 1)."""
        assert self.mask is not None
        m = self.mask
        rows, cols = m.shape[-2:]
        rs, cs = self.mask_strides()
        if rows > 1 and rs == 0:
            m = m[..., :1, :]
        if cols > 1 and cs == 0:
            m = m[..., :1]
        return v.contiguous(m)


def _array(x: object, name: str) -> npt.NDArray:
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.type not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64; got {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (..., L, features); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); every axis needs at least one element")
    if not arr.flags.c_contiguous:  # e.g. a 0-stride broadcast view: the copy may not fit
        v.check_alloc(arr.size * arr.dtype.itemsize, f"a contiguous copy of {name} {arr.shape}")
    return v.contiguous(arr, dtype=arr.dtype.newbyteorder("="))


def _scale(scale: object, d: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(d)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None; got {scale!r}")
    s = float(scale)
    if not math.isfinite(s):
        raise ValueError(f"scale must be finite; got {s}")
    return s


def plan_attention(
    q: object, k: object, v_: object, mask: object, causal: object, scale: object
) -> AttentionPlan:
    qa = _array(q, "q")
    ka = _array(k, "k")
    va = _array(v_, "v")
    if ka.dtype != qa.dtype:
        raise TypeError(f"k must have the same dtype as q ({qa.dtype}); got {ka.dtype}")
    if va.dtype != qa.dtype:
        raise TypeError(f"v must have the same dtype as q ({qa.dtype}); got {va.dtype}")
    lq, d = qa.shape[-2:]
    lk, dk = ka.shape[-2:]
    lv, dv = va.shape[-2:]
    if dk != d:
        raise ValueError(f"k must have the same last dimension as q (d={d}); got k.shape={ka.shape}")
    if lv != lk:
        raise ValueError(f"v must have as many rows as k (Lk={lk}); got v.shape={va.shape}")
    try:
        batch_shape = tuple(int(s) for s in np.broadcast_shapes(qa.shape[:-2], ka.shape[:-2], va.shape[:-2]))
    except ValueError:
        raise ValueError(
            f"batch dimensions of q {qa.shape[:-2]}, k {ka.shape[:-2]} and v {va.shape[:-2]} "
            "are not broadcastable"
        ) from None
    causal_b = v.flag(causal, "causal")
    s = _scale(scale, int(d))
    m = None
    if mask is not None:
        ma = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
        if ma.dtype.kind not in "bf":
            raise TypeError(f"mask must be bool (True = attend) or a float array (added to the scores); got {ma.dtype}")
        full = batch_shape + (int(lq), int(lk))
        if ma.ndim > len(full) or ma.size == 0:
            raise ValueError(f"mask of shape {ma.shape} is not broadcastable to (..., Lq, Lk) = {full}")
        try:
            ok = np.broadcast_shapes(ma.shape, full) == full
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"mask of shape {ma.shape} is not broadcastable to (..., Lq, Lk) = {full}")
        ma = ma.reshape((1,) * (len(full) - ma.ndim) + ma.shape)
        m = v.contiguous(ma, dtype=np.bool_ if ma.dtype.kind == "b" else qa.dtype)
    return AttentionPlan(qa, ka, va, batch_shape, int(lq), int(lk), int(d), int(dv), s, causal_b, m, qa.dtype)


def check_backward(
    plan: AttentionPlan, out: object, grad_out: object, lse: object
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    """out, grad_out (..., Lq, dv) and lse (..., Lq) of the broadcast batch, dense."""
    want = plan.batch_shape + (plan.lq, plan.dv)
    res = []
    for name, x, shape in (("out", out, want), ("grad_out", grad_out, want), ("lse", lse, want[:-1])):
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        if arr.dtype != plan.dtype:
            raise TypeError(f"{name} must have q's dtype ({plan.dtype}); got {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}; got {arr.shape}")
        res.append(v.contiguous(arr, dtype=arr.dtype.newbyteorder("=")))
    return res[0], res[1], res[2]


def unbroadcast(g: npt.NDArray, shape: tuple[int, ...]) -> npt.NDArray:
    """Sum ``g`` (broadcast batch shape + matrix) down to ``shape``."""
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return v.contiguous(g)


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
