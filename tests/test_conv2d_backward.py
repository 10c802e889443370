"""medfuse.conv2d_backward (C++ gradients) vs its NumPy twin vs torch autograd."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref

pair_or_int = lambda lo, hi: st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))  # noqa: E731


def _p(v):
    return v if isinstance(v, tuple) else (v, v)


@st.composite
def grad_cases(draw, dtype=np.float32):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, dilation, padding = draw(pair_or_int(1, 3)), draw(pair_or_int(1, 2)), draw(pair_or_int(0, 2))
    d, p = _p(dilation), _p(padding)
    hmin = max(1, d[0] * (kh - 1) + 1 - 2 * p[0])
    wmin = max(1, d[1] * (kw - 1) + 1 - 2 * p[1])
    h, w = draw(st.integers(hmin, hmin + 12)), draw(st.integers(wmin, wmin + 40))
    n = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, cin, h, w)).astype(dtype)
    weight = rng.standard_normal((cout, cin // groups, kh, kw)).astype(dtype)
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = ref.conv2d(x.astype(np.float32), weight.astype(np.float32), **kw_)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, weight, gy, kw_


def _close(got, want, tol):
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(float(np.abs(want).max()), 1.0)
    assert np.abs(got.astype(np.float64) - want).max() <= tol * scale


@settings(max_examples=120)
@given(grad_cases())
def test_matches_twin_float32(case):
    x, w, gy, kw = case
    got = medfuse.conv2d_backward(x, w, gy, **kw)
    want = ref.conv2d_backward(x, w, gy, **kw)
    for g, r in zip(got, want):
        _close(g, r, 1e-5)


@settings(max_examples=60)
@given(grad_cases(np.float64))
def test_matches_twin_float64(case):
    x, w, gy, kw = case
    got = medfuse.conv2d_backward(x, w, gy, **kw)
    want = ref.conv2d_backward(x, w, gy, **kw)
    for g, r in zip(got, want):
        _close(g, r, 1e-12)


@settings(max_examples=40)
@given(grad_cases())
def test_matches_torch_autograd(case):
    torch = pytest.importorskip("torch")
    x, w, gy, kw = case
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.zeros(w.shape[0], requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, bt, _p(kw["stride"]), _p(kw["padding"]), _p(kw["dilation"]), kw["groups"])
    y.backward(torch.tensor(gy))
    gx, gw, gb = medfuse.conv2d_backward(x, w, gy, **kw)
    for g, t in ((gx, xt.grad), (gw, wt.grad), (gb, bt.grad)):
        _close(g, t.numpy(), 1e-4)


def test_float64_forward_matches_twin():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 11, 9))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    got = medfuse.kernels.cnn.conv2d_float64(x, w, b, **kw)
    want = ref.conv2d(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **kw)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())


def test_need_selects_outputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    gx, gw, gb = medfuse.conv2d_backward(x, w, gy, need=(False, True, False))
    assert gx is None and gb is None and gw is not None
    np.testing.assert_array_equal(gw, medfuse.conv2d_backward(x, w, gy)[1])


def _at_thread_counts(x, w, gy, **kw):
    """conv2d_backward at 1, 2, 3 and 7 threads; asserts the results are bit-identical and returns the first."""
    old = medfuse.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3, 7):
            medfuse.set_num_threads(t)
            outs.append(medfuse.conv2d_backward(x, w, gy, **kw))
    finally:
        medfuse.set_num_threads(old)
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            assert a.tobytes() == b.tobytes()
    return outs[0]


def test_identical_for_any_thread_count():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 8, 33, 37)).astype(np.float32)
    w = rng.standard_normal((12, 4, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((3, 12, 17, 19)).astype(np.float32)
    _at_thread_counts(x, w, gy, stride=2, padding=1, groups=2)


def test_identical_for_any_thread_count_wide_channels():
    """20 input channels per group: the channels-last grad weight (tasks per block of input channels and range
    of output channels; avx512 in 8-channel ymm blocks); equal to the twin too."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 40, 15, 14)).astype(np.float32)
    w = rng.standard_normal((20, 20, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 20, 8, 7)).astype(np.float32)
    first = _at_thread_counts(x, w, gy, stride=2, padding=1, groups=2)
    for a, b in zip(first, ref.conv2d_backward(x, w, gy, stride=2, padding=1, groups=2)):
        _close(a, b, 1e-5)


def test_nan_propagates():
    x = np.ones((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = np.nan
    w = np.ones((1, 1, 3, 3), np.float32)
    gy = np.ones((1, 1, 3, 3), np.float32)
    gx, gw, gb = medfuse.conv2d_backward(x, w, gy)
    assert np.isnan(gw).all() and np.isfinite(gx).all() and np.isfinite(gb).all()
    gy[0, 0, 1, 1] = np.nan
    gx, _, gb = medfuse.conv2d_backward(x, w, gy)
    assert np.isnan(gx[0, 0, 1:4, 1:4]).all() and np.isnan(gb).all()


@pytest.mark.parametrize("path", ["baseline", "avx2", "avx512"])
def test_nan_in_grad_out_reaches_every_tap(path):
    """A NaN in gy at a corner pixel meets the zero padding on most taps: 0 * NaN is NaN, so every weight of that
    output channel is NaN (as in torch), on every SIMD path; the other channels stay finite."""
    if path not in _INFO["simd_compiled"] or path not in _INFO["simd_supported"]:
        pytest.skip(f"{path} not available")
    script = (
        "import numpy as np, medfuse\n"
        "rng = np.random.default_rng(3)\n"
        "for c, s in ((1, 2), (3, 1), (24, 2)):\n"
        "    x = rng.standard_normal((2, c, 21, 19)).astype(np.float32)\n"
        "    w = rng.standard_normal((6, c, 3, 3)).astype(np.float32)\n"
        "    gy = rng.standard_normal((2, 6, 21 // s if s == 1 else 11, 19 if s == 1 else 10)).astype(np.float32)\n"
        "    gy[1, 4, 0, 0] = np.nan\n"
        "    _, gw, gb = medfuse.conv2d_backward(x, w, gy, stride=s, padding=1)\n"
        "    assert np.isnan(gw[4]).all() and np.isfinite(np.delete(gw, 4, 0)).all(), (c, s)\n"
        "    assert np.isnan(gb[4]) and np.isfinite(np.delete(gb, 4)).all()\n"
        "print(medfuse.build_info()['simd_active'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, MEDFUSE_SIMD=path),
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == path


@pytest.mark.parametrize("fn", [medfuse.conv2d_backward, ref.conv2d_backward])
def test_refusals(fn):
    x = np.zeros((1, 2, 6, 6), np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    gy = np.zeros((1, 4, 4, 4), np.float32)
    with pytest.raises(TypeError, match="grad_out"):
        fn(x, w, gy.astype(np.float64))
    with pytest.raises(ValueError, match="grad_out"):
        fn(x, w, gy[:, :, :3])
    with pytest.raises(TypeError, match="weight"):
        fn(x, w.astype(np.float64), gy)
    with pytest.raises(TypeError, match="x"):
        fn(x.astype(np.int32), w, gy)
    with pytest.raises(ValueError, match="groups"):
        fn(x, w, gy, groups=3)
    with pytest.raises(ValueError, match="stride"):
        fn(x, w, gy, stride=0)
    with pytest.raises(ValueError, match="x"):
        fn(x[0], w, gy)


def test_refuses_bad_need():
    x = np.zeros((1, 2, 6, 6), np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(TypeError, match="need"):
        medfuse.conv2d_backward(x, w, np.zeros((1, 4, 4, 4), np.float32), need=(1, 1, 1))


_SCRIPT = """
import json, numpy as np, medfuse, medfuse.reference as ref
rng = np.random.default_rng(5)
worst = 0.0
for (n, c, h, w_, co, k, s, p, d, g) in [(2, 4, 19, 23, 6, 3, 1, 1, 1, 1), (1, 6, 20, 37, 9, 3, 2, 2, 2, 3),
                                          (3, 8, 9, 40, 8, 5, 1, 2, 1, 8), (1, 3, 7, 7, 5, 1, 1, 0, 1, 1),
                                          # several 16-pixel vectors per row, taps in chunks of 3 + 2, two
                                          # blocks of 8 output channels (the avx512 grad weight), stride 2
                                          (2, 3, 11, 70, 20, 5, 2, 2, 1, 1), (1, 4, 6, 50, 10, 1, 1, 0, 1, 2),
                                          (2, 2, 8, 45, 9, 4, 1, 3, 2, 1),
                                          # >= 8 input channels per group (the channels-last grad weight; avx512:
                                          # 16-channel blocks, or 8-channel blocks where fewer lanes stay
                                          # empty): a partial block of 8 output channels, channel blocks with
                                          # a tail, taps in chunks of 3 + 2 and 3 + 1, stride 2 and 3,
                                          # dilation 2, groups
                                          (2, 16, 9, 13, 9, 3, 1, 1, 1, 1), (1, 40, 7, 11, 16, 3, 2, 1, 2, 2),
                                          (1, 18, 8, 9, 12, 5, 1, 2, 1, 1), (2, 32, 10, 10, 8, 2, 3, 0, 1, 2),
                                          (1, 17, 6, 20, 3, 4, 1, 2, 1, 1),
                                          # 8..15 input channels per group (channels-last, one or two blocks;
                                          # on avx2 a partial block of 4 output channels)
                                          (2, 9, 7, 12, 7, 3, 1, 1, 1, 1), (1, 24, 8, 10, 6, 3, 2, 1, 2, 2),
                                          # avx512 with 16-channel blocks, the last one partial (28 channels),
                                          # and with 8-channel ymm blocks (24 per group: 3 blocks instead of 2
                                          # x 16 half empty) over 20 output channels (blocks 8 + 8 + 4)
                                          (1, 28, 9, 11, 10, 3, 2, 1, 1, 1), (2, 48, 10, 9, 40, 3, 1, 1, 1, 2),
                                          # one channel block, 4 blocks of 8 (8 x 4 of avx2) output channels
                                          # split into tasks of 1 block (2 blocks on avx2)
                                          (1, 16, 8, 8, 32, 3, 2, 1, 1, 1), (1, 8, 6, 9, 36, 3, 1, 1, 1, 1),
                                          # < 4 input channels per group (the avx2 8-lane grad weight without
                                          # im2col): 1 input channel, partial blocks of 4 output channels, rows
                                          # of 9 and 8 + 1 output pixels (a masked tail), stride 2 with padding,
                                          # dilation 2 with taps in chunks of 3 + 2, stride 1 without padding
                                          (3, 1, 18, 17, 7, 3, 2, 1, 1, 1), (2, 6, 9, 24, 6, 5, 2, 1, 2, 3),
                                          (1, 3, 12, 33, 9, 3, 1, 0, 1, 1),
                                          # 5 input channels: one channels-last block, mostly empty
                                          (2, 5, 9, 14, 11, 3, 2, 1, 1, 1),
                                          # grad input through Winograd under auto too (>= 16 channels,
                                          # 28 x 28 and wider), padding 0 and 1
                                          (2, 24, 29, 30, 16, 3, 1, 1, 1, 1), (1, 16, 28, 29, 32, 3, 1, 0, 1, 1),
                                          # stride 2, 5x5, padding 4: a phase of the strided grad input
                                          # (channel-vector tiles) reads grad_out rows and columns before
                                          # its start (zeros)
                                          (1, 16, 30, 31, 16, 5, 2, 4, 1, 1),
                                          # strided grad input on the channel-vector tiles: 24 channels per
                                          # group (3 vectors), odd width (phases of 9 and 8 columns); 56
                                          # channels (3 + 2 + 2 vectors) at stride 3, dilation 2
                                          (2, 48, 13, 17, 32, 5, 2, 2, 1, 2), (1, 56, 14, 16, 8, 3, 3, 1, 2, 1)]:
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    wt = rng.standard_normal((co, c // g, k, k)).astype(np.float32)
    y = ref.conv2d(x, wt, stride=s, padding=p, dilation=d, groups=g)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    medfuse.set_num_threads(3)
    got3 = medfuse.conv2d_backward(x, wt, gy, stride=s, padding=p, dilation=d, groups=g)
    medfuse.set_num_threads(1)
    got = medfuse.conv2d_backward(x, wt, gy, stride=s, padding=p, dilation=d, groups=g)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, got3)), (n, c, h, w_, co, k, s, p, d, g)
    want = ref.conv2d_backward(x, wt, gy, stride=s, padding=p, dilation=d, groups=g)
    for a, b in zip(got, want):
        worst = max(worst, float(np.abs(a - b).max() / max(1.0, np.abs(b).max())))
print(json.dumps(dict(active=medfuse.build_info()["simd_active"], worst=worst)))
"""

_INFO = medfuse.build_info()


@pytest.mark.parametrize("conv_path", ["auto", "winograd"])
@pytest.mark.parametrize("path", [p for p in _INFO["simd_compiled"] if p in _INFO["simd_supported"]])
def test_each_simd_path_matches_twin(path, conv_path):
    # conv_path "winograd": the stride-1 grad input of the 3x3 dilation-1 shapes runs as a forward Winograd
    # convolution of grad_out with the flipped weights (the last shape: 24 channels, auto takes it too).
    env = dict(os.environ, MEDFUSE_SIMD=path, MEDFUSE_CONV2D_PATH=conv_path)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["active"] == path
    assert out["worst"] < 1e-5
