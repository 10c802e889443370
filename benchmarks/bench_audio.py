"""Audio spectra: medfuse.mfcc / stft against librosa, scipy.signal.stft and the NumPy twin.

Groups (float32 noise + a tone, librosa defaults otherwise):

- ``mfcc-4k-30s`` / ``mfcc-22k-60s``: 20 MFCC of 30 s at 4 kHz (n_fft 256,
  hop 64, 40 mel bands) and 60 s at 22.05 kHz (librosa defaults: n_fft
  2048, hop 512, 128 bands); medfuse at 1 and 2 threads, librosa, the twin.
- ``stft-4k-30s`` / ``stft-22k-60s``: the STFT (n_fft 256 / hop 64 and n_fft
  2048 / hop 512, Hann): medfuse, scipy.signal.stft (same frames up to its
  1/sum(w) scaling and one extra end frame), librosa.stft.

librosa and scipy run with one BLAS / FFT thread (threadpoolctl) so the
"1 thread" comparison is fair. Each result is checked once against
medfuse's, outside the timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import medfuse
import medfuse.reference as ref

librosa = pytest.importorskip("librosa")
signal = pytest.importorskip("scipy.signal")

CASES = {
    "4k-30s": dict(sr=4000, seconds=30, n_fft=256, hop=64, n_mels=40),
    "22k-60s": dict(sr=22050, seconds=60, n_fft=2048, hop=512, n_mels=128),
}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - bench extra not installed
        yield
        return
    with threadpool_limits(1):
        yield


def _signal(sr: int, seconds: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(sr * seconds) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)


def _mfcc_impls(c: dict[str, Any]) -> dict[str, Callable[[np.ndarray], Any]]:
    kw = dict(sr=c["sr"], n_mfcc=20, n_fft=c["n_fft"], hop_length=c["hop"], n_mels=c["n_mels"])
    return {
        "medfuse-1": lambda y: medfuse.mfcc(y, **kw),
        "medfuse-2": lambda y: medfuse.mfcc(y, **kw),
        "librosa": lambda y: librosa.feature.mfcc(y=y, **kw),
        "reference": lambda y: ref.mfcc(y, **kw),
    }


def _stft_impls(c: dict[str, Any]) -> dict[str, Callable[[np.ndarray], Any]]:
    n, hop = c["n_fft"], c["hop"]
    return {
        "medfuse-1": lambda y: medfuse.stft(y, n_fft=n, hop_length=hop),
        "medfuse-2": lambda y: medfuse.stft(y, n_fft=n, hop_length=hop),
        "scipy": lambda y: signal.stft(y, nperseg=n, noverlap=n - hop)[2],
        "librosa": lambda y: librosa.stft(y, n_fft=n, hop_length=hop),
    }


def _run(benchmark: BenchmarkFixture, impl: str, fn: Callable[[np.ndarray], Any], y: np.ndarray) -> Any:
    n = 2 if impl == "medfuse-2" else 1
    medfuse.set_num_threads(n)
    # report.py reads the implementation's family and thread count from here
    # (single-threaded librosa / scipy / the twin: compared with medfuse on 1 thread)
    family = impl.split("-")[0]
    benchmark.extra_info.update(implementation=impl, family=family, threads=n if family == "medfuse" else None)
    with one_blas_thread():
        return benchmark(fn, y)


@pytest.mark.parametrize("impl", ["medfuse-1", "medfuse-2", "librosa", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_mfcc(benchmark: BenchmarkFixture, case: str, impl: str) -> None:
    c = CASES[case]
    benchmark.group = f"mfcc-{case}"
    y = _signal(c["sr"], c["seconds"])
    fns = _mfcc_impls(c)
    got = _run(benchmark, impl, fns[impl], y)
    want = fns["medfuse-1"](y)
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-3 * float(np.abs(want).max())


@pytest.mark.parametrize("impl", ["medfuse-1", "medfuse-2", "scipy", "librosa"])
@pytest.mark.parametrize("case", list(CASES))
def test_stft(benchmark: BenchmarkFixture, case: str, impl: str) -> None:
    c = CASES[case]
    benchmark.group = f"stft-{case}"
    y = _signal(c["sr"], c["seconds"])
    fns = _stft_impls(c)
    got = _run(benchmark, impl, fns[impl], y)
    want = fns["medfuse-1"](y)
    if impl == "scipy":
        want = want / signal.get_window("hann", c["n_fft"]).sum()
    n = min(got.shape[-1], want.shape[-1])
    assert n >= want.shape[-1] - 1
    assert float(np.abs(got[:, :n] - want[:, :n]).max()) <= 1e-4 * float(np.abs(want).max())
