"""medfuse.attention_backward: kernel vs NumPy twin vs torch autograd vs finite
differences, broadcast gradients, fully masked rows, threads and refusals.

Tolerances: ``tol · B · scale_of_gradient`` with tol 1e-4 (float32) / 1e-10
(float64), B = max(1, largest |score|) as in test_attention.py, and the
gradient's scale = max(1, max |reference gradient|). float32 results are
compared with torch autograd run in float64 on the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import medfuse
import medfuse.reference as ref
from strategies import attention_cases, attention_live_rows, attention_score_bound, torch_attention

TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def _forward(case):
    return medfuse.attention(
        case["q"], case["k"], case["v"], mask=case["mask"], causal=case["causal"], scale=case["scale"],
        return_lse=True,
    )


def _backward(fn, case, out, g, lse):
    return fn(case["q"], case["k"], case["v"], out, g, lse, mask=case["mask"], causal=case["causal"],
              scale=case["scale"])


def _check(got, want, case, what, factor=1.0):
    b = attention_score_bound(case)
    for name, x, y in zip(("dq", "dk", "dv"), got, want):
        assert x.shape == y.shape, f"{what} {name}: shape {x.shape} != {y.shape}"
        assert np.isfinite(x).all(), f"{what} {name}: non-finite"
        bound = factor * TOL[x.dtype] * b * max(1.0, float(np.abs(y).max()))
        err = float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max())
        assert err <= bound, f"{what} {name}: max error {err:.3g} > {bound:.3g}"


def _grad_out(case, out):
    rng = np.random.default_rng(out.size)
    return rng.standard_normal(out.shape).astype(out.dtype)


@settings(max_examples=120)
@given(case=attention_cases(max_len=70))
def test_matches_twin(case):
    out, lse = _forward(case)
    g = _grad_out(case, out)
    got = _backward(medfuse.attention_backward, case, out, g, lse)
    assert all(x.dtype == out.dtype for x in got)
    want = _backward(ref.attention_backward, case, out, g, lse)
    _check(got, want, case, "twin", factor=2.0)


@settings(max_examples=80)
@given(case=attention_cases(max_len=70))
def test_matches_torch_autograd(case):
    pytest.importorskip("torch")
    out, lse = _forward(case)
    g = _grad_out(case, out)
    got = _backward(medfuse.attention_backward, case, out, g, lse)
    _, want = torch_attention(case, grad_out=g)  # float64 autograd on the same inputs
    if any(np.isnan(w).any() for w in want):
        # older torch: NaN gradients from fully masked rows (decided from the
        # mask/causal structure); anything else is a failure
        assert not attention_live_rows(case).all(), "torch: NaN gradients without a fully masked row"
        return
    _check(got, want, case, "torch")


def test_finite_differences_float64(rng):
    """Central differences of L = sum(out * G) for every input element."""
    q = rng.standard_normal((2, 3, 5))
    k = rng.standard_normal((1, 4, 5))  # broadcast over the batch: its gradient is summed
    v = rng.standard_normal((2, 4, 3))
    mask = rng.standard_normal((3, 4))
    mask[1, 2] = -np.inf
    kw = dict(mask=mask, causal=True, scale=0.8)
    out, lse = medfuse.attention(q, k, v, return_lse=True, **kw)
    G = rng.standard_normal(out.shape)
    grads = medfuse.attention_backward(q, k, v, out, G, lse, **kw)
    h = 1e-6
    for which, x in enumerate((q, k, v)):
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            args = [q.copy(), k.copy(), v.copy()]
            args[which][idx] += h
            fp = (medfuse.attention(*args, **kw) * G).sum()
            args[which][idx] -= 2 * h
            fm = (medfuse.attention(*args, **kw) * G).sum()
            num[idx] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(grads[which], num, rtol=0, atol=1e-8, err_msg=("dq", "dk", "dv")[which])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows_have_no_gradient(rng, dtype):
    q = rng.standard_normal((70, 8)).astype(dtype)
    k = rng.standard_normal((90, 8)).astype(dtype)
    v = rng.standard_normal((90, 6)).astype(dtype)
    mask = rng.random((70, 90)) < 0.5
    mask[10] = False
    mask[66] = False
    out, lse = medfuse.attention(q, k, v, mask=mask, return_lse=True)
    g = rng.standard_normal(out.shape).astype(dtype)
    dq, dk, dv = medfuse.attention_backward(q, k, v, out, g, lse, mask=mask)
    assert np.all(dq[[10, 66]] == 0)
    assert all(np.isfinite(x).all() for x in (dq, dk, dv))
    # the masked rows' grad_out does not reach dk/dv
    g2 = g.copy()
    g2[[10, 66]] = 1e3
    for a, b in zip((dq, dk, dv), medfuse.attention_backward(q, k, v, out, g2, lse, mask=mask)):
        assert np.array_equal(a, b)


def test_broadcast_gradients_sum(rng):
    q = rng.standard_normal((2, 3, 20, 4))
    k = rng.standard_normal((3, 30, 4))
    v = rng.standard_normal((2, 1, 30, 5))
    out, lse = medfuse.attention(q, k, v, return_lse=True)
    g = rng.standard_normal(out.shape)
    dq, dk, dv = medfuse.attention_backward(q, k, v, out, g, lse)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    full = [np.ascontiguousarray(np.broadcast_to(x, (2, 3) + x.shape[-2:])) for x in (q, k, v)]
    fq, fk, fv = medfuse.attention_backward(*full, out, g, lse)
    np.testing.assert_allclose(dk, fk.sum(0), atol=1e-13)
    np.testing.assert_allclose(dv, fv.sum(1, keepdims=True), atol=1e-13)
    np.testing.assert_allclose(dq, fq, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d,dv", [(40, 24), (64, 64)])  # padded copies / rows used in place
def test_identical_for_any_thread_count(rng, dtype, causal, d, dv):
    """1 thread runs one pass per batch element, 2 and 7 threads run the
    key-block / query-block passes: the same arithmetic, bit for bit."""
    q = rng.standard_normal((3, 200, d)).astype(dtype)
    k = rng.standard_normal((3, 150, d)).astype(dtype)
    v = rng.standard_normal((3, 150, dv)).astype(dtype)
    mask = rng.random((200, 150)) < 0.9
    out, lse = medfuse.attention(q, k, v, mask=mask, causal=causal, return_lse=True)
    g = rng.standard_normal(out.shape).astype(dtype)
    res = {}
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        res[n] = medfuse.attention_backward(q, k, v, out, g, lse, mask=mask, causal=causal)
    for n in (2, 7):
        for a, b in zip(res[1], res[n]):
            assert np.array_equal(a, b), f"{n} threads differ from 1"


@pytest.mark.parametrize("fn", [medfuse.attention_backward, ref.attention_backward], ids=["kernel", "twin"])
class TestRefusals:
    @pytest.fixture
    def args(self, rng):
        q = rng.standard_normal((2, 5, 4))
        k = rng.standard_normal((2, 6, 4))
        v = rng.standard_normal((2, 6, 3))
        out, lse = medfuse.attention(q, k, v, return_lse=True)
        return [q, k, v, out, np.ones_like(out), lse]

    @pytest.mark.parametrize("which,name", [(3, "out"), (4, "grad_out"), (5, "lse")])
    def test_shape(self, fn, args, which, name):
        args[which] = args[which][:1]
        with pytest.raises(ValueError, match=f"{name} must have shape"):
            fn(*args)

    @pytest.mark.parametrize("which,name", [(3, "out"), (4, "grad_out"), (5, "lse")])
    def test_dtype(self, fn, args, which, name):
        args[which] = args[which].astype(np.float32)
        with pytest.raises(TypeError, match=f"{name} must have q's dtype"):
            fn(*args)

    def test_d_mismatch(self, fn, args):
        args[1] = args[1][..., :3]
        with pytest.raises(ValueError, match="k must have the same last dimension as q"):
            fn(*args)

    def test_non_finite_scale(self, fn, args):
        with pytest.raises(ValueError, match="scale must be finite"):
            fn(*args, scale=np.nan)

    def test_mask(self, fn, args):
        with pytest.raises(ValueError, match="mask of shape"):
            fn(*args, mask=np.ones((5, 5), bool))
