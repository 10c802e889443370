"""medfuse.nn: torch custom operators on medfuse's kernels, drop-in modules."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import medfuse
import medfuse.nn as mnn
from medfuse.nn import functional as F

CONV_CASES = [  # (x shape, weight shape, stride, padding, dilation, groups)
    ((2, 4, 9, 8), (6, 2, 3, 3), (2, 1), (1, 0), (1, 2), 2),
    ((1, 3, 12, 10), (5, 3, 3, 3), 1, 1, 1, 1),
    ((3, 6, 7, 7), (6, 1, 3, 3), 2, 1, 1, 6),
]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_opcheck_and_gradcheck(case):
    xs, ws, s, p, d, g = case
    gen = _gen()
    for dt in (torch.float32, torch.float64):
        x = torch.randn(xs, generator=gen, dtype=dt, requires_grad=True)
        w = torch.randn(ws, generator=gen, dtype=dt, requires_grad=True)
        b = torch.randn(ws[0], generator=gen, dtype=dt, requires_grad=True)
        pair = lambda v: [v, v] if isinstance(v, int) else list(v)  # noqa: E731
        torch.library.opcheck(torch.ops.medfuse.conv2d.default, (x, w, b, pair(s), pair(p), pair(d), g))
        torch.library.opcheck(torch.ops.medfuse.conv2d.default, (x, w, None, pair(s), pair(p), pair(d), g))
    x, w, b = (t.detach().double().requires_grad_() for t in (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), (x, w, b))
    # no second derivatives: asking for them is an error, not silently partial ones (the loss's other terms
    # would still be differentiated, the convolution's part would be missing)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad((F.conv2d(x, w, b, s, p, d, g).square().sum() + x.pow(3).sum(),), (x,), create_graph=True)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch_float32(case):
    xs, ws, s, p, d, g = case
    gen = _gen(1)
    x = torch.randn(xs, generator=gen, requires_grad=True)
    w = torch.randn(ws, generator=gen, requires_grad=True)
    b = torch.randn(ws[0], generator=gen, requires_grad=True)
    y = F.conv2d(x, w, b, s, p, d, g)
    gy = torch.randn(y.shape, generator=gen)
    grads = torch.autograd.grad(y, (x, w, b), gy)
    x2, w2, b2 = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y2 = torch.nn.functional.conv2d(x2, w2, b2, s, p, d, g)
    grads2 = torch.autograd.grad(y2, (x2, w2, b2), gy)
    torch.testing.assert_close(y, y2, rtol=1e-4, atol=1e-4)
    for a, r in zip(grads, grads2):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-4)


def test_attention_opcheck_gradcheck_and_torch():
    gen = _gen(2)
    q = torch.randn(2, 3, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 1, 7, 6, generator=gen, dtype=torch.float64, requires_grad=True)  # broadcast over heads
    masks = [None, torch.rand(5, 7, generator=gen) > 0.3, torch.randn(2, 1, 5, 7, generator=gen, dtype=torch.float64)]
    for m in masks:
        for causal in (False, True):
            torch.library.opcheck(torch.ops.medfuse.attention.default, (q, k, v, m, causal, None))
            qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
            torch.library.opcheck(torch.ops.medfuse.attention.default,
                                  (qf, kf, vf, m if m is None or m.dtype == torch.bool else m.float(), causal, 0.7))
        assert torch.autograd.gradcheck(lambda q, k, v, m=m: F.attention(q, k, v, m), (q, k, v))
        qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
        mf = m if m is None or m.dtype == torch.bool else m.float()
        out = F.attention(qf, kf, vf, mf)
        go = torch.randn(out.shape, generator=gen)
        g1 = torch.autograd.grad(out, (qf, kf, vf), go)
        q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (qf, kf, vf))
        ref = torch.nn.functional.scaled_dot_product_attention(q2, k2, v2.expand(2, 3, 7, 6), attn_mask=mf)
        g2 = torch.autograd.grad(ref, (q2, k2, v2), go)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        for a, r in zip(g1, g2):
            torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-4)
    # no second derivatives: an error, not silently partial ones (q.pow(3) would still be differentiated)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad((F.attention(q, k, v).square().sum() + q.pow(3).sum(),), (q,), create_graph=True)


def test_other_devices_and_dtypes_use_torch():
    x = torch.randn(1, 2, 8, 8)
    w = torch.randn(3, 2, 3, 3)
    y = F.conv2d(x.to("meta"), w.to("meta"), None, 1, 1)
    assert y.device.type == "meta" and y.shape == (1, 3, 8, 8)
    yb = F.conv2d(x.bfloat16(), w.bfloat16(), None, 1, 1)
    assert yb.dtype == torch.bfloat16
    torch.testing.assert_close(yb.float(), torch.nn.functional.conv2d(x, w, None, 1, 1), rtol=0.05, atol=0.1)
    q = torch.randn(2, 4, 8)
    out = F.attention(q.to("meta"), q.to("meta"), q.to("meta"))
    assert out.device.type == "meta" and out.shape == (2, 4, 8)
    assert F.attention(q.half(), q.half(), q.half()).dtype == torch.float16
    # the operators' fake kernels give shapes for meta tensors (torch.compile tracing)
    m = mnn.Conv2d(2, 3, 3, padding=1).to("meta")
    assert m(x.to("meta")).shape == (1, 3, 8, 8)


def test_nan_in_nan_out():
    x = torch.randn(1, 1, 6, 6)
    x[0, 0, 3, 3] = float("nan")
    y = F.conv2d(x, torch.ones(1, 1, 3, 3), None, 1, 1)
    assert torch.isnan(y[0, 0, 2:5, 2:5]).all() and torch.isfinite(y[0, 0, 0]).all()
    q = torch.randn(1, 3, 4)
    k = q.clone()
    k[0, 1, 0] = float("nan")
    assert torch.isnan(F.attention(q, k, q)).all()


def test_bad_input_refused_with_argument_name():
    x = torch.randn(1, 2, 8, 8)
    w = torch.randn(3, 2, 3, 3)
    with pytest.raises(TypeError, match="x"):
        F.conv2d(x.numpy(), w)
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(x, w.double())
    with pytest.raises(TypeError, match="x"):
        F.conv2d(x.int(), w.int())
    with pytest.raises(ValueError, match="x"):
        F.conv2d(x[0], w)
    with pytest.raises(ValueError, match="weight"):
        F.conv2d(x, torch.randn(3, 4, 3, 3))
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(x, w, torch.randn(4))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, w, None, 0)
    with pytest.raises(TypeError, match="padding"):
        F.conv2d(x, w, None, 1, "same")
    with pytest.raises(ValueError, match="weight"):
        F.conv2d(x, torch.randn(3, 2, 9, 9))
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(x, w, torch.randn(3, device="meta"))
    q = torch.randn(2, 4, 8)
    with pytest.raises(TypeError, match="k"):
        F.attention(q, q.double(), q)
    with pytest.raises(ValueError, match="q and k"):
        F.attention(q, torch.randn(2, 4, 7), q)
    with pytest.raises(ValueError, match="mask"):
        F.attention(q, q, q, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask"):
        F.attention(q, q, q, torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="scale"):
        F.attention(q, q, q, scale=float("nan"))
    with pytest.raises(ValueError, match="broadcastable"):
        F.attention(torch.randn(2, 4, 8), torch.randn(3, 4, 8), torch.randn(3, 4, 8))


def test_conv2d_module_state_dict_both_ways():
    torch.manual_seed(0)
    ours = mnn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    theirs = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 4, 11, 9)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)
    theirs2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    theirs2.load_state_dict(mnn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2).state_dict())
    torch.testing.assert_close(ours(x[0]), theirs(x[0]), rtol=1e-4, atol=1e-4)  # unbatched
    reflect = mnn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect")
    ref2 = torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect")
    ref2.load_state_dict(reflect.state_dict())
    torch.testing.assert_close(reflect(x), ref2(x))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kdim", [None, 6])
def test_mha_module_matches_torch(batch_first, kdim):
    torch.manual_seed(1)
    kw = dict(batch_first=batch_first, kdim=kdim, vdim=kdim)
    ours = mnn.MultiheadAttention(8, 2, **kw).eval()
    theirs = torch.nn.MultiheadAttention(8, 2, **kw).eval()
    theirs.load_state_dict(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    lq, lk, b = 5, 7, 3
    q = torch.randn((b, lq, 8) if batch_first else (lq, b, 8))
    kv = torch.randn((b, lk, kdim or 8) if batch_first else (lk, b, kdim or 8))
    pad = torch.zeros(b, lk, dtype=torch.bool)
    pad[1, 5:] = True
    am = torch.rand(lq, lk) > 0.9
    am[:, 0] = False
    o1, w1 = ours(q, kv, kv, key_padding_mask=pad, attn_mask=am, need_weights=False)
    o2, _ = theirs(q, kv, kv, key_padding_mask=pad, attn_mask=am, need_weights=False)
    assert w1 is None
    torch.testing.assert_close(o1, o2, rtol=1e-4, atol=1e-5)
    o1.sum().backward()
    assert ours.in_proj_bias.grad is not None
    # need_weights=True runs torch's forward (the fused kernel has no weight matrix)
    _o3, w3 = ours(q, kv, kv, need_weights=True)
    assert w3 is not None


def test_import_medfuse_does_not_import_torch_and_missing_torch_message():
    code = "import sys, medfuse; assert 'torch' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import medfuse.nn\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert 'pip install "medfuse[deep]"' in out


def test_kernel_threads_follow_medfuse_setting():
    x = torch.randn(2, 4, 20, 20)
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    old = medfuse.get_num_threads()
    outs = []
    try:
        for t in (1, 3):
            medfuse.set_num_threads(t)
            y = F.conv2d(x, w, None, 1, 1)
            (gw,) = torch.autograd.grad(y.square().sum(), (w,))
            outs.append((y, gw))
    finally:
        medfuse.set_num_threads(old)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert np.isfinite(outs[0][1].numpy()).all()


def _op_grads(fn, inputs, gy):
    out = fn(*inputs)
    return (out, *torch.autograd.grad(out, [t for t in inputs if t is not None and t.requires_grad], gy))


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_eager_path_equals_the_operator(case, dtype, relu):
    """The eager fast path (autograd.Function straight to C++) gives the operator's bits, with and without the
    fused ReLU, and matches torch's conv2d (+ relu) and its gradients."""
    xs, ws, s, p, d, g = case
    gen = _gen(3)
    x = torch.randn(xs, generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn(ws, generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(ws[0], generator=gen, dtype=dtype, requires_grad=True)
    act = "relu" if relu else None
    pair = lambda v: [v, v] if isinstance(v, int) else list(v)  # noqa: E731
    y = F.conv2d(x, w, b, s, p, d, g, activation=act)
    gy = torch.randn(y.shape, generator=gen, dtype=dtype)
    eager = _op_grads(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g, activation=act), (x, w, b), gy)
    op = _op_grads(lambda x, w, b: torch.ops.medfuse.conv2d(x, w, b, pair(s), pair(p), pair(d), g, relu),
                   (x, w, b), gy)
    for a, r in zip(eager, op):
        assert torch.equal(a, r)
    ref = _op_grads(lambda x, w, b: (torch.relu if relu else (lambda t: t))(
        torch.nn.functional.conv2d(x, w, b, s, p, d, g)), (x, w, b), gy)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for a, r in zip(eager, ref):
        torch.testing.assert_close(a, r, rtol=tol, atol=tol)
    if relu and dtype == torch.float64:
        x, w, b = (t.detach()[:1].clone().requires_grad_() if t is x else t for t in (x, w, b))
        assert torch.autograd.gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g, activation="relu"), (x, w, b))
        torch.library.opcheck(torch.ops.medfuse.conv2d.default, (x, w, b, pair(s), pair(p), pair(d), g, True))


def test_conv2d_eager_path_partial_grads_and_no_grad():
    gen = _gen(4)
    x = torch.randn(2, 4, 9, 9, generator=gen)
    w = torch.randn(6, 4, 3, 3, generator=gen, requires_grad=True)
    y = F.conv2d(x, w, None, 1, 1)  # no bias, no grad for x: only grad weight is computed
    (gw,) = torch.autograd.grad(y.sum(), (w,))
    (gw_ref,) = torch.autograd.grad(torch.nn.functional.conv2d(x, w, None, 1, 1).sum(), (w,))
    torch.testing.assert_close(gw, gw_ref, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        assert not F.conv2d(x, w, None, 1, 1).requires_grad
    with torch.inference_mode():
        torch.testing.assert_close(F.conv2d(x, w.detach(), None, 1, 1), y.detach())


def test_traced_calls_go_through_the_custom_operators():
    """Under tracing (make_fx, as torch.compile's AOT stage) the functions emit torch.ops.medfuse.* nodes, not
    the eager fast path (which would bake results into the graph)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    x = torch.randn(1, 2, 6, 6)
    w = torch.randn(3, 2, 3, 3)
    q = torch.randn(2, 4, 8)
    gm = make_fx(lambda x, w, q: (F.conv2d(x, w, None, 1, 1, activation="relu"), F.attention(q, q, q)))(x, w, q)
    targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
    assert "medfuse.conv2d.default" in targets and "medfuse.attention.default" in targets
    y, o = gm(x, w, q)
    assert torch.equal(y, F.conv2d(x, w, None, 1, 1, activation="relu")) and torch.equal(o, F.attention(q, q, q))


def test_jit_trace_records_the_operators_and_saved_module_reloads():
    """torch.jit.trace (and the tracing torch.onnx.export) must record torch.ops.medfuse.*: the eager
    fast path's Python autograd.Function would be a prim::PythonOp that torch.jit.save refuses."""
    import io
    import warnings

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = mnn.Conv2d(2, 8, 3, padding=1)
            self.attn = mnn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            y = self.conv(x)
            t = y.flatten(2).transpose(1, 2)  # (batch, pixels, 8) tokens
            return y, self.attn(t, t, t, need_weights=False)[0]

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 2, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants, as intended
        warnings.filterwarnings("ignore", r"`?torch\.jit", DeprecationWarning)  # deprecated, still what ONNX uses
        traced = torch.jit.trace(net, x)
        kinds = {n.kind() for n in traced.inlined_graph.nodes()}
        assert {"medfuse::conv2d", "medfuse::attention"} <= kinds and "prim::PythonOp" not in kinds, kinds
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        buf.seek(0)
        back = torch.jit.load(buf)
    x2 = torch.randn(2, 2, 6, 6)  # other values than at tracing: nothing was baked in
    with torch.no_grad():
        for got, want in zip(back(x2), net(x2)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_attention_eager_path_equals_the_operator():
    gen = _gen(5)
    q = torch.randn(2, 3, 5, 4, generator=gen, requires_grad=True)
    k = torch.randn(2, 3, 7, 4, generator=gen, requires_grad=True)
    v = torch.randn(1, 3, 7, 6, generator=gen, requires_grad=True)  # broadcast over the batch
    for m in (None, torch.rand(2, 1, 1, 7, generator=gen) > 0.3, torch.randn(5, 7, generator=gen)):
        for causal in (False, True):
            out = F.attention(q, k, v, m, causal)
            go = torch.randn(out.shape, generator=gen)
            eager = (out, *torch.autograd.grad(out, (q, k, v), go))
            o2 = torch.ops.medfuse.attention(q, k, v, m, causal, None)[0]
            op = (o2, *torch.autograd.grad(o2, (q, k, v), go))
            for a, r in zip(eager, op):
                assert torch.equal(a, r)
    # non-contiguous views (as a fused qkv projection gives) read the same values
    qkv = torch.randn(2, 4, 3, 2, 8, generator=gen).permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(F.attention(*qkv), F.attention(*(t.contiguous() for t in qkv)), rtol=0, atol=0)


def test_conv2d_activation_refused_and_module_activation():
    x = torch.randn(1, 2, 8, 8)
    w = torch.randn(3, 2, 3, 3)
    with pytest.raises(ValueError, match="activation"):
        F.conv2d(x, w, activation="tanh")
    conv = mnn.Conv2d(2, 3, 3, padding=1)
    torch.testing.assert_close(conv(x, activation="relu"), torch.relu(conv(x)))
    torch.testing.assert_close(conv(x[0], activation="relu"), torch.relu(conv(x[0])))
    reflect = mnn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")
    torch.testing.assert_close(reflect(x, activation="relu"), torch.relu(reflect(x)))
    with pytest.raises(ValueError, match="activation"):
        reflect(x, activation="gelu")


def test_fused_relu_keeps_nan_in_both_dtypes():
    """The fused ReLU keeps NaN as torch.relu does (bad input gives NaN out), float32 and float64 alike."""
    for dt in (torch.float32, torch.float64):
        x = torch.rand(1, 1, 6, 6, generator=_gen(6), dtype=dt) + 0.1  # positive: ReLU keeps the finite outputs
        x[0, 0, 3, 3] = float("nan")
        w = torch.ones(1, 1, 3, 3, dtype=dt)
        y = F.conv2d(x, w, None, 1, 1, activation="relu")
        ref = torch.relu(torch.nn.functional.conv2d(x, w, None, 1, 1))
        assert torch.isnan(y[0, 0, 2:5, 2:5]).all() and torch.isfinite(y[0, 0, 0]).all()
        torch.testing.assert_close(y, ref, equal_nan=True)
        neg = F.conv2d(-x, w, None, 1, 1, activation="relu")
        assert (neg[0, 0, 0] == 0).all() and torch.isnan(neg[0, 0, 2:5, 2:5]).all()
        assert torch.isnan(F.conv2d(x, torch.ones(1, 1, 3, 3, dtype=dt), None, 1, 1)).any()
