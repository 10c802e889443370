"""NumPy twin of ``medfuse.conv2d`` (einsum over the kernel taps, float64 sums)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..kernels import _validate as v

__all__ = ["conv2d", "conv2d_backward"]


def conv2d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    activation: str | None = None,
) -> npt.NDArray[np.float32]:
    """Twin of :func:`medfuse.conv2d`: same signature and refusals; sums in float64."""
    xa, wa, ba, s, p, d, g, act, (ho, wo) = v.conv2d_args(x, weight, bias, stride, padding, dilation, groups, activation)
    n, c, h, w = xa.shape
    co, cg, kh, kw = wa.shape
    cog = co // g
    xp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), np.float64)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = xa
    out = np.zeros((n, co, ho, wo), np.float64)
    for gi in range(g):
        xg = xp[:, gi * cg:(gi + 1) * cg]
        wg = wa[gi * cog:(gi + 1) * cog].astype(np.float64)
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * d[0], kx * d[1]
                patch = xg[:, :, y0:y0 + s[0] * (ho - 1) + 1:s[0], x0:x0 + s[1] * (wo - 1) + 1:s[1]]
                out[:, gi * cog:(gi + 1) * cog] += np.einsum("nchw,oc->nohw", patch, wg[:, :, ky, kx])
    if ba is not None:
        out += ba.astype(np.float64)[None, :, None, None]
    if act == "relu":
        out = np.maximum(out, 0.0)
    return out.astype(np.float32)


def conv2d_backward(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    grad_out: npt.ArrayLike,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    need: tuple[bool, bool, bool] = (True, True, True),
) -> tuple[npt.NDArray | None, npt.NDArray | None, npt.NDArray | None]:
    """Twin of :func:`medfuse.conv2d_backward`: per-tap einsums in float64, x's dtype out."""
    xa, wa, _, s, p, d, g, _, (ho, wo) = v.conv2d_args(x, weight, None, stride, padding, dilation, groups, None,
                                                       float64=True)
    ga = np.asarray(grad_out)
    if ga.dtype != xa.dtype:
        raise TypeError(f"grad_out must have x's dtype ({xa.dtype}); got {ga.dtype}")
    if ga.shape != (xa.shape[0], wa.shape[0], ho, wo):
        raise ValueError(f"grad_out must have the output's shape {(xa.shape[0], wa.shape[0], ho, wo)}; got {ga.shape}")
    n, c, h, w = xa.shape
    co, cg, kh, kw = wa.shape
    cog = co // g
    gy = ga.astype(np.float64)
    xp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), np.float64)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = xa
    gxp = np.zeros_like(xp)
    gw = np.zeros(wa.shape, np.float64)
    for gi in range(g):
        cs, os_ = slice(gi * cg, (gi + 1) * cg), slice(gi * cog, (gi + 1) * cog)
        wg = wa[os_].astype(np.float64)
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * d[0], kx * d[1]
                win = (slice(None), cs, slice(y0, y0 + s[0] * (ho - 1) + 1, s[0]),
                       slice(x0, x0 + s[1] * (wo - 1) + 1, s[1]))
                gw[os_, :, ky, kx] = np.einsum("nohw,nchw->oc", gy[:, os_], xp[win])
                gxp[win] += np.einsum("nohw,oc->nchw", gy[:, os_], wg[:, :, ky, kx])
    gx = gxp[:, :, p[0]:p[0] + h, p[1]:p[1] + w]
    gb = gy.sum(axis=(0, 2, 3))
    dt = xa.dtype
    return (gx.astype(dt) if need[0] else None, gw.astype(dt) if need[1] else None,
            gb.astype(dt) if need[2] else None)
