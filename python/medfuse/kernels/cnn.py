"""CNN layers: 2D convolution with bias and optional ReLU (C++ kernel)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _validate as v
from ._threads import get_num_threads

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
    (float32 sums in a different order). Results are identical for every
    thread count. NaN and infinities propagate as in IEEE arithmetic, except
    on the Winograd path below, where an infinite input or weight can give
    NaN instead of an infinity (NaN inputs still give NaN exactly where the
    other paths do). Kernels larger than the padded input are refused
    (empty output).

    Paths (``MEDFUSE_CONV2D_PATH=auto|gemm|direct|cvec|winograd`` forces one
    for the process, for tests and timing):

    * direct (AVX2 / AVX-512, horizontal stride 1 or 2, kernels up to 16
      wide; register tiles with vectors over output pixels, or over output
      channels, ``cvec``, for at least 8 output channels per group at stride
      2 (AVX2: with at least 16 weights per output channel) or with at least
      96 weights per output channel) and packed GEMM (the
      rest, and every shape on the portable build): each output is one
      float32 sum over (channel, ky, kx) in that order; all give the same
      bits.
    * Winograd F(2x2, 3x3) (3x3 kernels, stride 1, dilation 1; auto takes it
      on AVX2 / AVX-512 for at least 16 input and output channels per group
      and outputs of at least 28 x 28): 2.25x fewer multiplications, sums of
      transformed values, so it differs from the direct sum in the last bits
      (about 3e-7 of the largest output on normal data); AVX2 and AVX-512 give
      the same bits.
    """
    xa, wa, ba, s, p, d, g, act, _ = v.conv2d_args(x, weight, bias, stride, padding, dilation, groups, activation)
    from .. import _core

    n, _, h, w_ = xa.shape
    h_out = (h + 2 * p[0] - d[0] * (wa.shape[2] - 1) - 1) // s[0] + 1
    w_out = (w_ + 2 * p[1] - d[1] * (wa.shape[3] - 1) - 1) // s[1] + 1
    v.check_alloc(4 * n * wa.shape[0] * max(h_out, 0) * max(w_out, 0), "conv2d output")
    return _core.conv2d_f32(xa, wa, ba, s[0], s[1], p[0], p[1], d[0], d[1], g, act == "relu", get_num_threads())


def _grad_out(grad_out: npt.ArrayLike, dtype: np.dtype, shape: tuple[int, ...]) -> npt.NDArray:
    ga = grad_out if isinstance(grad_out, np.ndarray) else np.asarray(grad_out)
    if ga.dtype.newbyteorder("=") != dtype:
        raise TypeError(f"grad_out must have x's dtype ({dtype.name}); got {ga.dtype}")
    if ga.shape != shape:
        raise ValueError(f"grad_out must have the output's shape {shape}; got {ga.shape}")
    return v.contiguous(ga, dtype=dtype.newbyteorder("="))


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
    """Gradients ``(grad_x, grad_weight, grad_bias)`` of :func:`conv2d` (no activation).

    ``grad_out`` is dL/dy, shape (N, C_out, H_out, W_out). ``x``, ``weight``
    and ``grad_out`` are all float32 or all float64 (float64 sums in float64;
    it exists for gradient checks). ``need`` selects which of the three are
    computed (the others are None). Gradients of a ReLU layer: multiply
    ``grad_out`` by ``y > 0`` first.

    Each gradient element is one sum in an order fixed by the shapes (16
    interleaved partial sums per dot product for the weight and bias, rows of
    output pixels in order for the input), so results are identical for any
    thread count; they equal torch's autograd to float rounding. NaN and
    infinities propagate as in IEEE arithmetic.
    """
    xa, wa, _, s, p, d, g, _, (ho, wo) = v.conv2d_args(x, weight, None, stride, padding, dilation, groups, None,
                                                       float64=True)
    ga = _grad_out(grad_out, xa.dtype, (xa.shape[0], wa.shape[0], ho, wo))
    if not (isinstance(need, tuple) and len(need) == 3 and all(isinstance(b, bool) for b in need)):
        raise TypeError(f"need must be a tuple of three bools (input, weight, bias); got {need!r}")
    from .. import _core

    v.check_alloc(xa.itemsize * (xa.size + wa.size), "conv2d_backward output")
    fn = _core.conv2d_backward_f32 if xa.dtype == np.float32 else _core.conv2d_backward_f64
    gx, gw, gb = fn(xa, wa, ga, need[0], need[1], need[2], s[0], s[1], p[0], p[1], d[0], d[1], g,
                    get_num_threads())
    return gx, gw, gb


def conv2d_float64(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> npt.NDArray[np.float64]:
    """:func:`conv2d` in float64 (direct loops, float64 sums; for gradient checks).

    Same arguments and output shape as :func:`conv2d` without ``activation``;
    x, weight and bias must be float64. Slower than the float32 kernel.
    """
    xa = x if isinstance(x, np.ndarray) else np.asarray(x)
    if xa.dtype.newbyteorder("=") != np.float64:
        raise TypeError(f"x must have dtype float64; got {xa.dtype}")
    xa, wa, ba, s, p, d, g, _, (ho, wo) = v.conv2d_args(xa, weight, bias, stride, padding, dilation, groups, None,
                                                        float64=True)
    from .. import _core

    v.check_alloc(8 * xa.shape[0] * wa.shape[0] * ho * wo, "conv2d output")
    return _core.conv2d_f64(xa, wa, ba, s[0], s[1], p[0], p[1], d[0], d[1], g, get_num_threads())
