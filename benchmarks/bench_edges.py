"""Canny edge detection: medfuse against its NumPy twin, OpenCV, scikit-image, SimpleITK.

One group per input (see ``medfuse.bench.cases.CASES`` for inputs and
parameters), parametrized over implementations. Inputs are built and
converted outside the timed call, and every implementation that promises an
identical result (medfuse vs its twin, medfuse vs cv2.Canny on 8-bit data,
medfuse with 2 threads vs 1) is checked once, outside the timing.

With ``--benchmark-disable`` every case runs once (CI); the largest volume
times 3 fixed rounds, since a single SimpleITK call there takes seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from medfuse.bench import cases as bc


def _run(benchmark: BenchmarkFixture, group: str, impl_id: str) -> None:
    case = bc.case(group)
    impl = bc.Impl.from_id(impl_id)
    module = bc.OPTIONAL_MODULES.get(impl.family)
    if module is not None:
        pytest.importorskip(module)
    prepared = bc.prepare(case, impl)

    with bc.pinned_threads(prepared.threads):
        if prepared.expected is not None:
            expected = prepared.expected()
            got = np.asarray(prepared.run())
            mismatched = int(np.count_nonzero(got != expected))
            assert mismatched == 0, (
                f"{impl.label(case)} differs from {prepared.expected_name} on {mismatched} pixels"
            )
        if case.large:  # medfuse: 7 rounds after a warm-up (a 3-round 2-thread median is one noisy call)
            medfuse = impl.family == "medfuse"
            result = benchmark.pedantic(prepared.run, rounds=7 if medfuse else 3, iterations=1,
                                        warmup_rounds=1 if medfuse else 0)
        else:
            result = benchmark(prepared.run)

    edges = prepared.edges(result)
    benchmark.extra_info.update(
        implementation=impl.label(case),
        family=impl.family,
        threads=impl.threads,
        input=case.description,
        edge_fraction=float(edges.mean()),
        checked_against=prepared.expected_name or None,
    )


def _impls(group: str) -> list[str]:
    """Implementation ids (plain strings, so the benchmark JSON records them)."""
    return [impl.id for impl in bc.implementations(bc.case(group))]


@pytest.mark.benchmark(group="canny-u8-512")
@pytest.mark.parametrize("impl", _impls("canny-u8-512"))
def test_canny_u8_512(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "canny-u8-512", impl)


@pytest.mark.benchmark(group="canny-u8-2048")
@pytest.mark.parametrize("impl", _impls("canny-u8-2048"))
def test_canny_u8_2048(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "canny-u8-2048", impl)


@pytest.mark.benchmark(group="canny-u8-xray-512")
@pytest.mark.parametrize("impl", _impls("canny-u8-xray-512"))
def test_canny_u8_xray_512(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "canny-u8-xray-512", impl)


@pytest.mark.benchmark(group="canny-i16-ct-512")
@pytest.mark.parametrize("impl", _impls("canny-i16-ct-512"))
def test_canny_i16_ct_512(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "canny-i16-ct-512", impl)


@pytest.mark.benchmark(group="canny-f32-512")
@pytest.mark.parametrize("impl", _impls("canny-f32-512"))
def test_canny_f32_512(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "canny-f32-512", impl)


@pytest.mark.benchmark(group="canny-i16-volume-32x128x128")
@pytest.mark.parametrize("impl", _impls("canny-i16-volume-32x128x128"))
def test_canny_i16_volume_32x128x128(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "canny-i16-volume-32x128x128", impl)


@pytest.mark.benchmark(group="canny-i16-volume-128x512x512")
@pytest.mark.parametrize("impl", _impls("canny-i16-volume-128x512x512"))
def test_canny_i16_volume_128x512x512(benchmark: BenchmarkFixture, impl: str) -> None:
    _run(benchmark, "canny-i16-volume-128x512x512", impl)
