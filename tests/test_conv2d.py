"""medfuse.conv2d: kernel vs NumPy twin vs torch.nn.functional.conv2d."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref

pair_or_int = lambda lo, hi: st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))  # noqa: E731


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 4))
    cout = groups * draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(pair_or_int(1, 3))
    dilation = draw(pair_or_int(1, 3))
    padding = draw(pair_or_int(0, 3))
    stride if isinstance(stride, tuple) else (stride, stride)
    d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    p = padding if isinstance(padding, tuple) else (padding, padding)
    hmin = max(1, d[0] * (kh - 1) + 1 - 2 * p[0])
    wmin = max(1, d[1] * (kw - 1) + 1 - 2 * p[1])
    h = draw(st.integers(hmin, hmin + 20))
    w = draw(st.integers(wmin, wmin + 40))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    weight = rng.standard_normal((cout, cin // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32) if draw(st.booleans()) else None
    act = draw(st.sampled_from([None, "relu"]))
    layout = draw(st.sampled_from(["contiguous", "strided", "big_endian", "read_only"]))
    if layout == "strided":
        x = np.ascontiguousarray(np.repeat(x, 2, axis=3))[..., ::2]
    elif layout == "big_endian":
        x = x.astype(">f4")
    elif layout == "read_only":
        x.flags.writeable = False
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups, activation=act)


def _close(got, want):
    scale = max(float(np.abs(want).max()), 1e-6)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * scale


@settings(max_examples=150)
@given(case=conv_cases())
def test_matches_twin(case):
    x, w, b, kw = case
    got = medfuse.conv2d(x, w, b, **kw)
    assert got.dtype == np.float32
    _close(got, ref.conv2d(x, w, b, **kw))


@settings(max_examples=60)
@given(case=conv_cases())
def test_matches_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, kw = case
    kw = dict(kw)
    act = kw.pop("activation")
    got = medfuse.conv2d(x, w, b, activation=act, **kw)
    xt = torch.from_numpy(np.array(x, dtype=np.float32))
    want = F.conv2d(xt, torch.from_numpy(w), None if b is None else torch.from_numpy(b), **kw)
    if act == "relu":
        want = torch.relu(want)
    _close(got, want.numpy())


def test_layer_shapes_vs_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for (n, c, h, w, co, k, s, p, g) in [(8, 32, 64, 64, 64, 3, 1, 1, 1), (2, 16, 31, 29, 24, 5, 2, 2, 4),
                                         (1, 64, 14, 14, 128, 1, 1, 0, 1), (3, 12, 17, 40, 12, 3, 1, 1, 12)]:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((co, c // g, k, k)).astype(np.float32)
        b = rng.standard_normal(co).astype(np.float32)
        got = medfuse.conv2d(x, wt, b, stride=s, padding=p, groups=g, activation="relu")
        want = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b),
                                                     stride=s, padding=p, groups=g)).numpy()
        _close(got, want)


def test_invariants():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    # A centred delta kernel with padding 1 is the identity per channel.
    w = np.zeros((3, 1, 3, 3), np.float32)
    w[:, 0, 1, 1] = 1
    np.testing.assert_array_equal(medfuse.conv2d(x, w, padding=1, groups=3), x)
    # ReLU output is max(conv, 0) exactly.
    w2 = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    np.testing.assert_array_equal(medfuse.conv2d(x, w2, b, activation="relu"),
                                  np.maximum(medfuse.conv2d(x, w2, b), 0))
    # Linear in the bias: y(b) - y(0) == b broadcast (exact: same sums, one add).
    y0 = medfuse.conv2d(x, w2)
    y1 = medfuse.conv2d(x, w2, b)
    np.testing.assert_array_equal(y1, y0 + b[None, :, None, None])


def test_nan_propagates():
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = np.nan
    y = medfuse.conv2d(x, np.ones((1, 1, 3, 3), np.float32), padding=1)
    assert np.isnan(y[0, 0, 1:4, 1:4]).all() and not np.isnan(y[0, 0, 0]).any()


def test_thread_count_invariance():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 100, 40, 70)).astype(np.float32)  # K = 900: three K blocks
    w = rng.standard_normal((20, 100, 3, 3)).astype(np.float32)
    results = []
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        results.append(medfuse.conv2d(x, w, padding=1))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_python_threads_concurrently():
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((2, 8, 30, 30)).astype(np.float32) for _ in range(6)]
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    serial = [medfuse.conv2d(x, w, padding=1) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda x: medfuse.conv2d(x, w, padding=1), xs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


# Shapes for every path: the packed GEMM (every shape on baseline; on avx2 and
# avx512 the stride-3 case, and every shape with MEDFUSE_CONV2D_PATH=gemm) and
# the avx2 / avx512 direct convolutions (stride 1 or 2; vectors over output
# pixels, or over output channels: forced with MEDFUSE_CONV2D_PATH=cvec on
# every shape that fits, including 1..7 output channels, taken by auto from 8
# channels per group at stride 2 or K >= 96): output rows 1..40
# wide around the 8- and 16-lane boundaries (stride 1, 2, 3, padding wider
# than half the kernel, dilation 2, non-contiguous inputs), 1x1 and
# 4..12-pixel output rows, row tiles of 1..3 vectors with ragged
# ends, 1..3 channel panels with partial ones, avx512's flat tiles (stride 1
# or 2, rows of 8..56 pixels not a multiple of 16: vectors over 2 or 3 output
# rows, bands ending inside a vector, padding rows; stride 2 from the
# even/odd column copy), padding wider than the kernel,
# dilation, groups, a 1x1 kernel, a kernel row of 16 taps, an inf weight
# (inf * padding zero = NaN on every path).
_DISPATCH = r"""
import sys, numpy as np, medfuse, medfuse.reference as ref
rng = np.random.default_rng(0)
worst = 0.0
outs = []
for (n, c, h, w, co, kh, kw, s, p, d, g) in [
        (1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1), (2, 6, 9, 23, 14, 3, 3, 1, 1, 1, 2), (1, 5, 20, 17, 7, 5, 5, 2, 2, 1, 1),
        (2, 4, 7, 12, 9, 3, 3, 1, 1, 1, 1), (1, 3, 6, 33, 17, 3, 3, 1, 1, 1, 1), (1, 3, 5, 49, 25, 1, 3, 1, 0, 1, 1),
        (2, 8, 11, 70, 24, 3, 3, 1, 4, 2, 2), (1, 4, 9, 101, 8, 5, 3, 2, 2, 1, 1), (1, 6, 6, 64, 30, 3, 3, 2, 1, 2, 3),
        (1, 2, 4, 40, 3, 1, 16, 1, 7, 1, 1), (1, 2, 5, 30, 5, 2, 2, 3, 1, 1, 1), (3, 16, 12, 64, 32, 1, 1, 1, 0, 1, 1),
        (2, 8, 30, 56, 20, 3, 3, 1, 1, 1, 1), (1, 3, 40, 21, 17, 3, 3, 1, 1, 1, 1), (1, 6, 25, 13, 9, 5, 5, 1, 3, 1, 3),
        (1, 4, 23, 9, 26, 3, 3, 1, 0, 2, 1), (2, 12, 29, 29, 24, 5, 5, 2, 2, 1, 2), (1, 5, 31, 70, 9, 3, 3, 2, 3, 2, 1),
        # channel-vector tiles: 56 channels (tiles of 3 + 2 + 2 vectors) on 40-pixel rows, one vector of 8
        # channels over up to 16 (avx2: 12) pixels of a 25-pixel row at stride 2, 24 channels per group at
        # stride 2 with 5x5 taps on 14-pixel rows (two 7-pixel tiles; avx2 4 + 4 + 3 + 3)
        (1, 6, 7, 40, 56, 3, 3, 1, 1, 1, 1), (2, 4, 10, 50, 8, 3, 3, 2, 1, 1, 1), (1, 48, 28, 28, 48, 5, 5, 2, 2, 1, 2)]:
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((co, c // g, kh, kw)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    kw_ = dict(stride=s, padding=p, dilation=d, groups=g)
    for act in (None, "relu"):
        got = medfuse.conv2d(x, wt, b, activation=act, **kw_)
        want = ref.conv2d(x, wt, b, activation=act, **kw_)
        worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)))
        outs.append(got.ravel())
    wt[0, 0, 0, 0] = np.inf
    got = medfuse.conv2d(x, wt, padding=p, stride=s, dilation=d, groups=g)
    want = ref.conv2d(x, wt, padding=p, stride=s, dilation=d, groups=g)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (n, c, h, w)
    outs.append(got.ravel())
for w in range(1, 41):
    for (s, p, d) in [(1, 2, 1), (2, 2, 1), (3, 2, 1), (1, 3, 2), (2, 2, 2)]:
        x = rng.standard_normal((1, 3, 6, w)).astype(np.float32)
        if w % 2:  # a non-contiguous input (every other column of a wider array)
            x = np.repeat(x, 2, axis=3)[..., ::2]
        wt = rng.standard_normal((13, 3, 3, 3)).astype(np.float32)
        b = rng.standard_normal(13).astype(np.float32)
        got = medfuse.conv2d(x, wt, b, stride=s, padding=p, dilation=d, activation="relu")
        want = ref.conv2d(x, wt, b, stride=s, padding=p, dilation=d, activation="relu")
        assert got.shape == want.shape, (w, s, p, d)
        worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)))
        outs.append(got.ravel())
np.save(sys.argv[1], np.concatenate(outs))
print(medfuse.build_info()["simd_active"], int(worst <= 1e-5))
"""


def _run_dispatch(simd, tmp_path, path="auto"):
    if simd not in medfuse.build_info()["simd_supported"]:
        pytest.skip(f"{simd} not available")
    env = {**os.environ, "MEDFUSE_SIMD": simd, "MEDFUSE_CONV2D_PATH": path}
    out_file = tmp_path / f"{simd}-{path}.npy"
    out = subprocess.run([sys.executable, "-c", _DISPATCH, str(out_file)], env=env, capture_output=True, text=True,
                         check=True)
    active, ok = out.stdout.split()
    assert active == simd and ok == "1"
    return np.load(out_file)


@pytest.mark.parametrize("simd,path", [("baseline", "auto"), ("avx2", "auto"), ("avx2", "gemm"), ("avx2", "cvec"),
                                       ("avx512", "auto"), ("avx512", "gemm"), ("avx512", "cvec")])
def test_dispatch_paths(simd, path, tmp_path):
    _run_dispatch(simd, tmp_path, path)


def test_direct_paths_same_bits_as_gemm(tmp_path):
    # All compute acc = 0; acc = fma(w, x, acc) for k = 0..K-1; + bias; ReLU,
    # the GEMM packing the input, the direct paths reading it in place (avx512)
    # or from zero-padded row copies (avx2): same bits, NaN from inf * 0 included.
    # The channel-vector tiles (cvec) too: same chain, the input broadcast from
    # zero-padded row copies, the results transposed into rows.
    gemm = _run_dispatch("avx2", tmp_path, "gemm")
    np.testing.assert_array_equal(_run_dispatch("avx2", tmp_path, "direct"), gemm)
    np.testing.assert_array_equal(_run_dispatch("avx2", tmp_path, "cvec"), gemm)
    if "avx512" in medfuse.build_info()["simd_supported"]:
        np.testing.assert_array_equal(_run_dispatch("avx512", tmp_path, "direct"), gemm)
        np.testing.assert_array_equal(_run_dispatch("avx512", tmp_path, "cvec"), gemm)


_THREADS = r"""
import numpy as np, medfuse
rng = np.random.default_rng(7)
for (n, c, h, w, co, k, s, p, g) in [(2, 12, 13, 37, 20, 3, 1, 1, 1), (3, 8, 21, 30, 10, 5, 2, 2, 2),
                                     (1, 16, 9, 9, 14, 3, 2, 1, 1), (2, 16, 30, 41, 24, 3, 1, 1, 1),
                                     (1, 32, 30, 29, 20, 3, 1, 1, 2)]:
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((co, c // g, k, k)).astype(np.float32)
    gy = rng.standard_normal(medfuse.conv2d(x, wt, stride=s, padding=p, groups=g).shape).astype(np.float32)
    runs = []
    for t in (1, 2, 3, 4):
        medfuse.set_num_threads(t)
        runs.append([medfuse.conv2d(x, wt, stride=s, padding=p, groups=g, activation="relu"),
                     *medfuse.conv2d_backward(x, wt, gy, stride=s, padding=p, groups=g)])
    for r in runs[1:]:
        for a, b in zip(r, runs[0]):
            assert a.tobytes() == b.tobytes(), (n, c, h, w)
print(medfuse.build_info()["simd_active"])
"""


@pytest.mark.parametrize("simd,path", [("avx2", "auto"), ("avx512", "auto"), ("avx2", "cvec"), ("avx512", "cvec"),
                                       ("baseline", "winograd"), ("avx2", "winograd"), ("avx512", "winograd")])
def test_forced_path_identical_for_any_thread_count(simd, path):
    # The last two shapes take Winograd under auto (>= 16 channels per group,
    # outputs >= 28 x 28), forward and grad input; "winograd" forces it on all.
    if simd not in medfuse.build_info()["simd_supported"]:
        pytest.skip(f"{simd} not available")
    out = subprocess.run([sys.executable, "-c", _THREADS],
                         env={**os.environ, "MEDFUSE_SIMD": simd, "MEDFUSE_CONV2D_PATH": path},
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [simd]


# Winograd F(2x2, 3x3) (3x3 kernels, stride 1, dilation 1; forced by
# MEDFUSE_CONV2D_PATH=winograd on every ISA, taken by auto on avx2 / avx512
# for >= 16 channels per group and outputs of at least 28 x 28). Its sums
# differ from the direct chain's, so it is held to a bound derived from the
# transform: with exact U = G g G^T, V = B^T d B, each output is
# y = sum over xi of alpha_xi sum_c U_xi V_xi (alpha = +-1 or 0 from A), and the
# float32 evaluation (V: 2 roundings; U: 1; the chain over cg channels: cg;
# the output transform and the bias: 5; +1 for the portable path's separate
# multiply) is within gamma_(cg+9) of the same sum of absolute values:
#   |got - exact| <= (cg + 9) 2**-24 (1 + 1e-3) (|A|^T [|G| |g| |G|^T o |B|^T |d| |B|] |A| + |b|)
# plus the twin's own rounding to float32 and, for subnormal inputs, an
# absolute 2**-149 per operation. The shapes: a 1x1 image and 1x1 outputs,
# odd sizes (tiles cut by the border), padding 0..3, groups, one to three
# weight panels of 8 channels with partial ones, 33 input channels, several
# images, non-contiguous inputs, output rows 1..40 wide around the 8- and
# 16-lane boundaries, values spanning 1e-15..1e15 with subnormals; then NaN
# inputs (the NaN outputs must be the twin's: F(2x2, 3x3) sends each input
# pixel only to the outputs that read it).
_WINOGRAD = r"""
import sys, numpy as np, medfuse, medfuse.reference as ref
Bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
Gm = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
At = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)

def bound(x, w, b, p, g):
    n, c, h, wd = x.shape
    co, cg = w.shape[:2]
    cog = co // g
    ho, wo = h + 2 * p - 2, wd + 2 * p - 2
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    xp[:, :, p:p + h, p:p + wd] = np.abs(x.astype(np.float64))
    d = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(2, 3))[:, :, ::2, ::2]
    va = np.einsum("ia,ncyxab,jb->ncyxij", np.abs(Bt), d, np.abs(Bt))
    ua = np.einsum("ia,ocab,jb->ocij", np.abs(Gm), np.abs(w.astype(np.float64)), np.abs(Gm))
    out = np.zeros((n, co, th, tw, 2, 2))
    for k in range(g):
        m = np.einsum("ocij,ncyxij->noyxij", ua[k * cog:(k + 1) * cog], va[:, k * cg:(k + 1) * cg])
        out[:, k * cog:(k + 1) * cog] = np.einsum("ai,noyxij,bj->noyxab", np.abs(At), m, np.abs(At))
    y = out.transpose(0, 1, 2, 4, 3, 5).reshape(n, co, 2 * th, 2 * tw)[:, :, :ho, :wo]
    if b is not None:
        y = y + np.abs(b.astype(np.float64))[None, :, None, None]
    return (cg + 9) * 2.0**-24 * (1 + 1e-3) * y + (cg * 16 + 16) * 2.0**-149

rng = np.random.default_rng(11)
worst_rel, worst_bound = 0.0, 0.0
outs = []
cases = [(1, 1, 1, 1, 1, 1, 1), (1, 1, 3, 3, 1, 0, 1), (2, 3, 5, 7, 4, 1, 1), (1, 4, 9, 13, 10, 0, 2),
         (1, 16, 17, 33, 20, 1, 1), (2, 8, 30, 56, 20, 2, 2), (1, 5, 40, 3, 9, 1, 1), (1, 33, 21, 45, 17, 1, 1),
         (3, 6, 11, 19, 12, 3, 3), (1, 2, 70, 70, 3, 1, 1), (2, 16, 30, 41, 24, 1, 1), (1, 24, 26, 26, 16, 1, 2)]
cases += [(1, 3, 6, w, 13, p, 1) for w in range(1, 41) for p in (0, 1, 2) if w + 2 * p >= 3]
for i, (n, c, h, w, co, p, g) in enumerate(cases):
    for extreme in (False, True):
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((co, c // g, 3, 3)).astype(np.float32)
        b = rng.standard_normal(co).astype(np.float32) if i % 3 else None
        if extreme:
            x *= (10.0 ** rng.uniform(-15, 15, x.shape)).astype(np.float32)
            x.ravel()[::7] = np.float32(3e-41)  # subnormal
            wt *= (10.0 ** rng.uniform(-8, 8, wt.shape)).astype(np.float32)
        if i % 2:  # a non-contiguous input (every other column of a wider array)
            x = np.repeat(x, 2, axis=3)[..., ::2]
        act = "relu" if i % 4 == 1 else None
        got = medfuse.conv2d(x, wt, b, padding=p, groups=g, activation=act)
        want = ref.conv2d(x, wt, b, padding=p, groups=g, activation=act)
        assert got.shape == want.shape and got.dtype == np.float32
        err = np.abs(got.astype(np.float64) - want)
        allowed = bound(x, wt, b, p, g) + 2.0**-24 * np.abs(want.astype(np.float64))
        worst_bound = max(worst_bound, float((err / allowed).max()))
        if not extreme:
            worst_rel = max(worst_rel, float(err.max() / max(np.abs(want).max(), 1e-6)))
        outs.append(got.ravel())
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    x.ravel()[rng.integers(0, x.size, 1 + x.size // 50)] = np.nan
    wt = rng.standard_normal((co, c // g, 3, 3)).astype(np.float32)
    got = medfuse.conv2d(x, wt, padding=p, groups=g)
    want = ref.conv2d(x, wt, padding=p, groups=g)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (n, c, h, w, co, p, g)
    outs.append(got.ravel())
np.save(sys.argv[1], np.concatenate(outs))
print(medfuse.build_info()["simd_active"], worst_bound, worst_rel)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_winograd_within_derived_bound(simd, tmp_path):
    if simd not in medfuse.build_info()["simd_supported"]:
        pytest.skip(f"{simd} not available")
    env = {**os.environ, "MEDFUSE_SIMD": simd, "MEDFUSE_CONV2D_PATH": "winograd"}
    out = subprocess.run([sys.executable, "-c", _WINOGRAD, str(tmp_path / "w.npy")], env=env, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    active, worst_bound, worst_rel = out.stdout.split()
    assert active == simd
    assert float(worst_bound) <= 1.0
    # Normal data: as close to the twin as the other paths (test_dispatch_paths).
    assert float(worst_rel) <= 1e-5


def test_winograd_same_bits_avx2_avx512(tmp_path):
    # Same transforms (adds in a fixed order), the same FMA chain per product,
    # so the two SIMD builds agree bit for bit (NaN included).
    info = medfuse.build_info()
    if not {"avx2", "avx512"} <= set(info["simd_supported"]):
        pytest.skip("needs avx2 and avx512")
    got = []
    for simd in ("avx2", "avx512"):
        env = {**os.environ, "MEDFUSE_SIMD": simd, "MEDFUSE_CONV2D_PATH": "winograd"}
        f = tmp_path / f"{simd}.npy"
        subprocess.run([sys.executable, "-c", _WINOGRAD, str(f)], env=env, capture_output=True, text=True,
                       check=True)
        got.append(np.load(f))
    np.testing.assert_array_equal(got[0], got[1])


def test_winograd_forced_only_where_it_applies(tmp_path):
    # Forced Winograd leaves other shapes (5x5, stride 2, dilation 2) to the
    # usual paths: those give the auto path's bits.
    code = r"""
import sys, numpy as np, medfuse
rng = np.random.default_rng(4)
outs = []
for (k, s, d) in [(5, 1, 1), (3, 2, 1), (3, 1, 2), (1, 1, 1)]:
    x = rng.standard_normal((2, 16, 30, 30)).astype(np.float32)
    wt = rng.standard_normal((16, 16, k, k)).astype(np.float32)
    outs.append(medfuse.conv2d(x, wt, stride=s, dilation=d, padding=1).ravel())
np.save(sys.argv[1], np.concatenate(outs))
"""
    res = []
    for path in ("auto", "winograd"):
        f = tmp_path / f"{path}.npy"
        subprocess.run([sys.executable, "-c", code, str(f)], env={**os.environ, "MEDFUSE_CONV2D_PATH": path},
                       capture_output=True, text=True, check=True)
        res.append(np.load(f))
    np.testing.assert_array_equal(res[0], res[1])


def test_bad_path_variable():
    code = ("import numpy as np, medfuse; "
            "medfuse.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MEDFUSE_CONV2D_PATH": "fast"},
                         capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "MEDFUSE_CONV2D_PATH must be auto, gemm, direct, cvec or winograd" in out.stderr


# ---- refusals -------------------------------------------------------------

X = np.zeros((1, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize("fn", [medfuse.conv2d, ref.conv2d])
def test_mismatched_channels(fn):
    with pytest.raises(ValueError, match="channels"):
        fn(X, np.zeros((6, 3, 3, 3), np.float32))


def test_groups_not_dividing():
    with pytest.raises(ValueError, match="groups"):
        medfuse.conv2d(X, np.zeros((6, 4, 3, 3), np.float32), groups=3)
    with pytest.raises(ValueError, match="groups"):
        medfuse.conv2d(X, np.zeros((6, 2, 3, 3), np.float32), groups=0)
    with pytest.raises(TypeError, match="groups"):
        medfuse.conv2d(X, W, groups=1.0)


@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_bad_stride(stride):
    with pytest.raises(ValueError, match="stride"):
        medfuse.conv2d(X, W, stride=stride)


def test_bad_padding_and_dilation():
    with pytest.raises(ValueError, match="padding"):
        medfuse.conv2d(X, W, padding=-1)
    with pytest.raises(ValueError, match="dilation"):
        medfuse.conv2d(X, W, dilation=0)
    with pytest.raises(ValueError, match="stride"):
        medfuse.conv2d(X, W, stride=(1, 2, 3))
    with pytest.raises(TypeError, match="padding"):
        medfuse.conv2d(X, W, padding="same")


@pytest.mark.parametrize("act", ["tanh", "ReLU", 1])
def test_bad_activation(act):
    with pytest.raises(ValueError, match="activation"):
        medfuse.conv2d(X, W, activation=act)


def test_kernel_larger_than_input():
    with pytest.raises(ValueError, match="weight"):
        medfuse.conv2d(X, np.zeros((6, 4, 9, 3), np.float32))
    with pytest.raises(ValueError, match="weight"):
        medfuse.conv2d(X, W, dilation=5)


@pytest.mark.parametrize("name", ["x", "weight", "bias"])
def test_wrong_dtype(name):
    args = {"x": X, "weight": W, "bias": np.zeros(6, np.float32)}
    args[name] = args[name].astype(np.float64)
    with pytest.raises(TypeError, match=name):
        medfuse.conv2d(args["x"], args["weight"], args["bias"])


def test_wrong_shapes():
    with pytest.raises(ValueError, match="x"):
        medfuse.conv2d(X[0], W)
    with pytest.raises(ValueError, match="bias"):
        medfuse.conv2d(X, W, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="x"):
        medfuse.conv2d(np.zeros((0, 4, 8, 8), np.float32), W)


def test_core_defends_itself():
    from medfuse import _core

    with pytest.raises(TypeError):
        _core.conv2d_f32(X.astype(np.float64), W, None, 1, 1, 0, 0, 1, 1, 1, False, 1)
    with pytest.raises(ValueError, match="stride"):
        _core.conv2d_f32(X, W, None, 0, 1, 0, 0, 1, 1, 1, False, 1)
    with pytest.raises(ValueError, match="channels"):
        _core.conv2d_f32(X, np.ascontiguousarray(W[:, :3]), None, 1, 1, 0, 0, 1, 1, 1, False, 1)


def test_core_conv2d_out_buffer():
    """The kernel entry point writes into a caller's buffer when given one (the denoiser reuses two): the same
    bits as a fresh result, the buffer returned; a wrong buffer is refused before any work."""
    from medfuse.kernels._ext import core

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 9, 11)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    fn = core().conv2d_f32
    want = fn(x, w, b, 1, 1, 1, 1, 1, 1, 1, True, 2)
    out = np.full((2, 4, 9, 11), np.nan, np.float32)
    got = fn(x, w, b, 1, 1, 1, 1, 1, 1, 1, True, 2, out=out)
    assert got is out or np.shares_memory(got, out)
    np.testing.assert_array_equal(out, want)
    with pytest.raises(TypeError, match="out must be"):
        fn(x, w, b, 1, 1, 1, 1, 1, 1, 1, True, 2, out=np.zeros((2, 4, 9, 11), np.float64))
    with pytest.raises(TypeError, match="out must be"):
        fn(x, w, b, 1, 1, 1, 1, 1, 1, 1, True, 2, out=np.zeros((2, 4, 9, 22), np.float32)[..., ::2])
    with pytest.raises(ValueError, match="shape"):
        fn(x, w, b, 1, 1, 1, 1, 1, 1, 1, True, 2, out=np.zeros((2, 4, 9, 10), np.float32))
    ro = np.zeros((2, 4, 9, 11), np.float32)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="out must be"):
        fn(x, w, b, 1, 1, 1, 1, 1, 1, 1, True, 2, out=ro)
    big = np.zeros(2 * 5 * 9 * 11 + 2 * 4 * 9 * 11, np.float32)
    xin = big[: x.size].reshape(x.shape)
    xin[...] = x
    with pytest.raises(ValueError, match="share memory"):
        fn(xin, w, b, 1, 1, 1, 1, 1, 1, 1, True, 2, out=big[x.size - 4 : x.size - 4 + out.size].reshape(out.shape))
