"""CNN layers: 2D convolution with bias and optional ReLU (C++ kernel)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _validate as v
from ._threads import get_num_threads

__all__ = ["conv2d"]


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
    """The CNN layer ``y = f(W * x + b)``, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : float32 array (N, C_in, H, W)
    weight : float32 array (C_out, C_in / groups, kH, kW)
    bias : float32 array (C_out,), optional
    stride, padding, dilation : int or (int, int)
        Stride >= 1, zero padding >= 0 on both sides, dilation >= 1, per
        (height, width).
    groups : int >= 1, dividing C_in and C_out.
    activation : None or "relu"

    Returns
    -------
    float32 array (N, C_out, H_out, W_out) with
    ``H_out = (H + 2 padding - dilation (kH - 1) - 1) // stride + 1`` (same for W).

    Semantics
    ---------
    Cross-correlation (the kernel is not flipped), as torch; equal to
    ``torch.nn.functional.conv2d`` (then ``relu``) to about 1e-5 relative
    (float32 sums in a different order). Each output is one float32 sum over
    (channel, ky, kx) in that order, so results are identical for every
    thread count. NaN and infinities propagate as in IEEE arithmetic.
    Kernels larger than the padded input are refused (empty output).
    """
    xa, wa, ba, s, p, d, g, act, _ = v.conv2d_args(x, weight, bias, stride, padding, dilation, groups, activation)
    from .. import _core

    n, _, h, w_ = xa.shape
    h_out = (h + 2 * p[0] - d[0] * (wa.shape[2] - 1) - 1) // s[0] + 1
    w_out = (w_ + 2 * p[1] - d[1] * (wa.shape[3] - 1) - 1) // s[1] + 1
    v.check_alloc(4 * n * wa.shape[0] * max(h_out, 0) * max(w_out, 0), "conv2d output")
    return _core.conv2d_f32(xa, wa, ba, s[0], s[1], p[0], p[1], d[0], d[1], g, act == "relu", get_num_threads())
