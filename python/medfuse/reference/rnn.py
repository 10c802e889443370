"""NumPy twins of the GRU recurrence kernels (``_core.gru_forward_*`` / ``gru_backward_*``).

Same signatures and semantics (torch's gate order r, z, n; see csrc/rnn/gru.hpp):
``gru_forward(gi, w_hh, b_hh, h0, lengths) -> (out, h_n, saved)`` with
``gi = x W_ih^T + b_ih`` of a padded batch (B, T, 3H), outputs zero past each
length, ``saved`` = r, z, n, W_hn h + b_hn per step (B, T, 4H);
``gru_backward(w_hh, h0, lengths, out, saved, grad_out, grad_hn) -> (dgi, dgh, dh0)``
with ``dgh`` the gradient w.r.t. ``W_hh h + b_hh`` per step, so that
``dW_hh = sum_t dgh_t h_{t-1}^T`` and ``db_hh = sum_t dgh_t``. A step at a
time over the whole batch, sequences that have ended masked out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..kernels._rnn_plan import check_gru

__all__ = ["gru_backward", "gru_forward"]


def _sigmoid(x: npt.NDArray) -> npt.NDArray:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def gru_forward(gi: npt.NDArray, w_hh: npt.NDArray, b_hh: npt.NDArray, h0: npt.NDArray | None,
                lengths: npt.ArrayLike) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    batch, steps, hidden, lens = check_gru(gi, w_hh, b_hh, h0, lengths)
    dt = gi.dtype
    h = np.zeros((batch, hidden), dt) if h0 is None else h0.astype(dt, copy=True)
    out = np.zeros((batch, steps, hidden), dt)
    saved = np.zeros((batch, steps, 4 * hidden), dt)
    for t in range(steps):
        live = lens > t
        gh = h @ w_hh.T + b_hh
        g = gi[:, t]
        r = _sigmoid(g[:, :hidden] + gh[:, :hidden])
        z = _sigmoid(g[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
        n = np.tanh(g[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        new = (1 - z) * n + z * h
        h = np.where(live[:, None], new, h)
        out[live, t] = new[live]
        saved[live, t] = np.concatenate([r, z, n, gh[:, 2 * hidden:]], axis=1)[live]
    return out, h, saved


def gru_backward(w_hh: npt.NDArray, h0: npt.NDArray | None, lengths: npt.ArrayLike, out: npt.NDArray,
                 saved: npt.NDArray, grad_out: npt.NDArray, grad_hn: npt.NDArray
                 ) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    hidden = w_hh.shape[1] if w_hh.ndim == 2 else 0
    if out.ndim != 3:
        raise ValueError(f"out must have shape (batch, steps, hidden); got {out.shape}")
    batch, steps = out.shape[:2]
    gi_like = np.empty((batch, steps, 3 * hidden), out.dtype)
    _, _, _, lens = check_gru(gi_like, w_hh, np.empty(3 * hidden, out.dtype), h0, lengths)
    for a, name, shape in ((out, "out", (batch, steps, hidden)), (saved, "saved", (batch, steps, 4 * hidden)),
                           (grad_out, "grad_out", (batch, steps, hidden)), (grad_hn, "grad_hn", (batch, hidden))):
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}; got {a.shape}")
    dt = out.dtype
    dgi = np.zeros((batch, steps, 3 * hidden), dt)
    dgh = np.zeros((batch, steps, 3 * hidden), dt)
    carry = grad_hn.astype(dt, copy=True)
    h_first = np.zeros((batch, hidden), dt) if h0 is None else h0
    for t in range(steps - 1, -1, -1):
        live = lens > t
        hp = out[:, t - 1] if t > 0 else h_first
        r, z, n, ghn = np.split(saved[:, t], 4, axis=1)
        dh = grad_out[:, t] + carry
        dnp = dh * (1 - z) * (1 - n * n)
        drp = dnp * ghn * (r * (1 - r))
        dzp = dh * (hp - n) * (z * (1 - z))
        dg = np.concatenate([drp, dzp, dnp * r], axis=1)
        new = dh * z + dg @ w_hh
        carry = np.where(live[:, None], new, carry)
        dgi[live, t] = np.concatenate([drp, dzp, dnp], axis=1)[live]
        dgh[live, t] = dg[live]
    return dgi, dgh, carry
