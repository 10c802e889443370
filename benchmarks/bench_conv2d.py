"""conv2d (CNN layer): medfuse vs torch.nn.functional.conv2d, the NumPy twin,
and the float32 GEMM rate numpy.matmul reaches on one core.

Main case (issue target): batch 8, 32 -> 64 channels, 64x64, 3x3, padding 1,
bias and ReLU. As an implicit GEMM that is M=64 (output channels),
K=32*3*3=288, N=8*64*64 pixels; the "numpy.matmul GEMM" row times exactly
that GEMM with NumPy's BLAS pinned to one thread (threadpoolctl), so the
report's ratio medfuse(1 thread) / numpy gives the share of the one-core GEMM
rate (target >= 60%). Every implementation is checked against torch (or the
twin when torch is absent) once, outside the timing, to 1e-4 relative.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import medfuse
import medfuse.reference as ref

CASES = {
    # group: (n, cin, h, w, cout, k, stride, padding, groups, description)
    "conv2d-b8-32to64-64x64-k3": (8, 32, 64, 64, 64, 3, 1, 1, 1,
                                  "x 8x32x64x64 float32, weight 64x32x3x3, padding 1, bias, ReLU"),
    "conv2d-b4-16to32-64x64-k3": (4, 16, 64, 64, 32, 3, 1, 1, 1,
                                  "x 4x16x64x64 float32, weight 32x16x3x3, padding 1, bias, ReLU (the quick-bench case)"),
    "conv2d-b1-64to128-56x56-k3": (1, 64, 56, 56, 128, 3, 1, 1, 1,
                                   "x 1x64x56x56 float32, weight 128x64x3x3, padding 1, bias, ReLU"),
    "conv2d-b4-96-28x28-k5-s2-g4": (4, 96, 28, 28, 96, 5, 2, 2, 4,
                                    "x 4x96x28x28 float32, weight 96x24x5x5, stride 2, padding 2, groups 4, bias, ReLU"),
}
IMPLS = ["medfuse-1", "medfuse-2", "torch-1", "torch-2", "numpy-gemm", "reference"]


def _inputs(group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    n, cin, h, w, cout, k, s, p, g, _ = CASES[group]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = (rng.standard_normal((cout, cin // g, k, k)) / np.sqrt(cin // g * k * k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    return x, wt, b, dict(stride=s, padding=p, groups=g)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[Any]:
    torch = pytest.importorskip("torch")
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield torch
    finally:
        torch.set_num_threads(saved)


def _expected(x: np.ndarray, wt: np.ndarray, b: np.ndarray, kw: dict[str, Any]) -> np.ndarray:
    try:
        import torch
    except ImportError:
        return ref.conv2d(x, wt, b, activation="relu", **kw)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), **kw)
        return torch.relu(y).numpy()


def _check(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * max(float(np.abs(want).max()), 1e-30)


def _params() -> list[Any]:
    return [pytest.param(g, i, id=f"{g}-{i}", marks=pytest.mark.benchmark(group=g))
            for g in CASES for i in IMPLS if not (i == "reference" and g.startswith("conv2d-b8"))]


@pytest.mark.parametrize("group,impl", _params())
def test_conv2d(benchmark: BenchmarkFixture, group: str, impl: str) -> None:
    x, wt, b, kw = _inputs(group)
    desc = CASES[group][-1]
    want = _expected(x, wt, b, kw)
    threads: int | None = None
    checked: str | None = "torch.nn.functional.conv2d + relu"
    if impl.startswith("medfuse"):
        threads = int(impl.split("-")[1])
        saved = medfuse.get_num_threads()
        medfuse.set_num_threads(threads)
        try:
            fn = lambda: medfuse.conv2d(x, wt, b, activation="relu", **kw)  # noqa: E731
            _check(fn(), want)
            benchmark(fn)
        finally:
            medfuse.set_num_threads(saved)
        label, family = f"medfuse.conv2d ({threads} thread{'s' if threads > 1 else ''})", "medfuse"
    elif impl.startswith("torch"):
        threads = int(impl.split("-")[1])
        with _torch_threads(threads) as torch:
            xt, wtt, bt = torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b)
            F = torch.nn.functional

            def fn() -> Any:
                with torch.no_grad():
                    return torch.relu(F.conv2d(xt, wtt, bt, **kw))

            _check(fn().numpy(), medfuse.conv2d(x, wt, b, activation="relu", **kw))
            benchmark(fn)
        label, family, checked = (f"torch conv2d + relu ({threads} thread{'s' if threads > 1 else ''})", "torch",
                                  "medfuse.conv2d")
    elif impl == "numpy-gemm":
        threadpoolctl = pytest.importorskip("threadpoolctl")
        n, cin, _h, _w, cout, k, _s, _p, g, _ = CASES[group]
        ho, wo = want.shape[2], want.shape[3]
        rng = np.random.default_rng(1)
        # The same GEMM per group (M = C_out/g, K = C_in/g * k * k, N = batch * pixels), g in sequence.
        a = rng.standard_normal((g, cout // g, cin // g * k * k)).astype(np.float32)
        bm = rng.standard_normal((g, cin // g * k * k, n * ho * wo)).astype(np.float32)
        with threadpoolctl.threadpool_limits(1):
            fn = lambda: np.matmul(a, bm)  # noqa: E731
            fn()
            benchmark(fn)
        threads, checked = 1, None
        label, family = f"numpy.matmul GEMM M={cout // g} K={cin // g * k * k} N={n * ho * wo} x{g} (1 thread)", "numpy"
        desc = desc + " (as the equivalent GEMM)"
    else:
        fn = lambda: ref.conv2d(x, wt, b, activation="relu", **kw)  # noqa: E731
        _check(fn(), want)
        benchmark(fn)
        label, family = "medfuse.reference.conv2d (NumPy einsum)", "reference"
    flops = 2.0 * want.size * (x.shape[1] // kw["groups"]) * wt.shape[2] * wt.shape[3]
    benchmark.extra_info.update(implementation=label, family=family, threads=threads, input=desc,
                                checked_against=checked, gflop=flops / 1e9)
