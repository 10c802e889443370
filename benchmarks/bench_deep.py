"""medfuse's torch operators vs torch's own: conv2d forward + backward, one training step.

- ``conv2d-train-*``: forward and backward (grad input, weight, bias) of one
  conv2d layer through ``medfuse.nn.functional.conv2d`` (the custom operator
  ``medfuse::conv2d``) vs ``torch.nn.functional.conv2d``, on the
  ``bench_conv2d.py`` shapes plus batch-1, grouped/strided and the deep
  model's first layer. Gradients are checked against torch's to 1e-4
  (relative to the largest) once, outside the timing.
- ``gru-train-*``: forward and backward (grad input, h0 and all four
  parameters) of a single-layer GRU over a padded batch with lengths:
  :class:`medfuse.nn.GRU` (the recurrence on ``medfuse::gru``) vs
  ``torch.nn.GRU`` on ``pack_padded_sequence`` (how the fusion network's
  report encoder calls it). ``b32-h32`` is the report encoder's shape (32
  reports of 10-48 tokens, embedding 32, hidden 32). Gradients are checked
  against torch's to 1e-4 (relative to the largest) once, outside the timing.
- ``fusion-train-step``: one AdamW step (forward, backward, update) of the
  :mod:`medfuse.learn.deep` fusion network on a batch of 32 patients,
  ``ops="medfuse"`` vs ``ops="torch"`` (same weights).

Run: ``python -m pytest benchmarks/bench_deep.py --benchmark-only``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import medfuse

torch = pytest.importorskip("torch")

CASES = {
    # group: (n, cin, h, w, cout, k, stride, padding, groups)
    "conv2d-train-b8-32to64-64x64-k3": (8, 32, 64, 64, 64, 3, 1, 1, 1),
    "conv2d-train-b1-64to128-56x56-k3": (1, 64, 56, 56, 128, 3, 1, 1, 1),
    "conv2d-train-b4-96-28x28-k5-s2-g4": (4, 96, 28, 28, 96, 5, 2, 2, 4),
    "conv2d-train-b1-16to32-32x32-k3-s2": (1, 16, 32, 32, 32, 3, 2, 1, 1),
    "conv2d-train-b32-1to8-64x64-k3-s2": (32, 1, 64, 64, 8, 3, 2, 1, 1),
}
IMPLS = ["medfuse-1", "torch-1", "medfuse-2", "torch-2"]


def _threads(n: int) -> Any:
    import contextlib

    @contextlib.contextmanager
    def ctx() -> Any:
        saved_t, saved_m = torch.get_num_threads(), medfuse.get_num_threads()
        torch.set_num_threads(n)
        medfuse.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(saved_t)
            medfuse.set_num_threads(saved_m)

    return ctx()


def _params(groups: Any) -> list[Any]:
    return [pytest.param(g, i, id=f"{g}-{i}", marks=pytest.mark.benchmark(group=g)) for g in groups for i in IMPLS]


@pytest.mark.parametrize("group,impl", _params(CASES))
def test_conv2d_train(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    from medfuse.nn import functional as mF

    n, cin, h, w, cout, k, s, p, g = CASES[group]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, cin, h, w, generator=gen, requires_grad=True)
    wt = (torch.randn(cout, cin // g, k, k, generator=gen) / np.sqrt(cin // g * k * k)).requires_grad_()
    b = torch.randn(cout, generator=gen, requires_grad=True)
    fam, threads = impl.split("-")
    conv = mF.conv2d if fam == "medfuse" else torch.nn.functional.conv2d
    with torch.no_grad():
        gy = torch.randn(torch.nn.functional.conv2d(x, wt, b, s, p, 1, g).shape, generator=gen)

    def step() -> Any:
        y = conv(x, wt, b, s, p, 1, g)
        return torch.autograd.grad(y, (x, wt, b), gy)

    with _threads(int(threads)):
        got = step()
        y = torch.nn.functional.conv2d(x, wt, b, s, p, 1, g)
        want = torch.autograd.grad(y, (x, wt, b), gy)
        for a, r in zip(got, want):
            assert float((a - r).abs().max()) <= 1e-4 * max(float(r.abs().max()), 1.0)
        benchmark(step)
    benchmark.extra_info.update(implementation=f"{fam} conv2d forward+backward ({threads} thread(s))", family=fam,
                                threads=int(threads), checked_against="torch autograd")


GRU_CASES = {
    # group: (batch, steps, input, hidden, min length)
    "gru-train-b32-t48-i32-h32": (32, 48, 32, 32, 10),
    "gru-train-b8-t200-i64-h128": (8, 200, 64, 128, 100),
}


@pytest.mark.parametrize("group,impl", _params(GRU_CASES))
def test_gru_train(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    import medfuse.nn as mnn

    b, t, i, h, lo = GRU_CASES[group]
    fam, threads = impl.split("-")
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ours = mnn.GRU(i, h, batch_first=True)
    theirs = torch.nn.GRU(i, h, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(b, t, i, generator=gen, requires_grad=True)
    h0 = torch.randn(1, b, h, generator=gen, requires_grad=True)
    lengths = torch.randint(lo, t + 1, (b,), generator=gen)
    go = torch.randn(b, t, h, generator=gen)
    rnn = torch.nn.utils.rnn

    def run(mod: Any) -> Any:
        if mod is ours:
            out, hn = ours(x, h0, lengths=lengths)
        else:
            packed = rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            po, hn = theirs(packed, h0)
            out = rnn.pad_packed_sequence(po, batch_first=True, total_length=t)[0]
        return torch.autograd.grad((out * go).sum() + hn.sum(), (x, h0, *mod.parameters()))

    mod = ours if fam == "medfuse" else theirs
    with _threads(int(threads)):
        if fam == "medfuse":
            for a, r in zip(run(ours), run(theirs)):
                assert float((a - r).abs().max()) <= 1e-4 * max(float(r.abs().max()), 1.0)
        benchmark(run, mod)
    benchmark.extra_info.update(implementation=f"{fam} GRU forward+backward ({threads} thread(s))", family=fam,
                                threads=int(threads), checked_against="torch autograd")


@pytest.mark.parametrize("group,impl", _params(["fusion-train-step-b32"]))
def test_fusion_train_step(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    from medfuse.learn.deep.network import build_network

    fam, threads = impl.split("-")
    cfg = dict(d_model=32, heads=4, layers=2, widths=[8, 16, 32], embedding_dim=32, rnn_hidden=32, rnn="gru",
               ops=fam, vocab_size=200, inputs={})
    gen = torch.Generator().manual_seed(0)
    batch = (torch.rand(32, 3, 32, 32, generator=gen), torch.rand(32, 1, 64, 64, generator=gen),
             torch.randint(2, 200, (32, 48), generator=gen), torch.randint(10, 49, (32,), generator=gen),
             torch.rand(32, 3, generator=gen) > 0.1)
    target = (torch.rand(32, generator=gen) > 0.5).float()
    with _threads(int(threads)):
        torch.manual_seed(0)
        net = build_network(cfg)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step() -> float:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(*batch), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return float(loss.detach())

        assert np.isfinite(step())
        benchmark(step)
    benchmark.extra_info.update(implementation=f"fusion network, ops={fam} ({threads} thread(s))", family=fam,
                                threads=int(threads), checked_against=None)
