"""Shared setup for the pytest-benchmark suites.

Run from the repository root:

    python -m pytest benchmarks --benchmark-only                  # timings
    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json -o BENCHMARKS.md       # Markdown tables
    python -m pytest benchmarks --benchmark-disable               # each case once (CI)
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import medfuse

# scipy.ndimage's repeat-until-stable morphology corrupts the heap (issue 25): the same guard as the test suite
# (tests/scipy_safe.py), so a reference or agreement check cannot take that path by accident. The timed scipy
# fill-holes anchors call the unguarded function on purpose (scipy_safe.unguarded; bench_morphology.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import scipy_safe

scipy_safe.install_guard()

# Inputs several suites share (_inputs.py): --import-mode=importlib leaves this folder off sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record what the numbers depend on beyond the CPU: build and library versions."""
    machine_info["medfuse"] = medfuse.build_info()
    machine_info["libraries"] = {
        name: _version(name)
        for name in ("numpy", "scipy", "opencv-python-headless", "scikit-image", "SimpleITK")
    }
    machine_info["platform"] = platform.platform()
    machine_info["command"] = " ".join(["python -m pytest", *sys.argv[1:]])
    if hasattr(os, "getloadavg"):  # how quiet the machine was (1, 5, 15 minute load averages)
        machine_info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    limits = {name: os.environ[name] for name in ISA_LIMIT_VARIABLES if name in os.environ}
    if limits:  # SIMD limits of the reference libraries (benchmarks/as_avx2.sh, or the machine's environment)
        machine_info["isa_limits"] = limits


# Environment variables that limit the reference libraries' SIMD level (set by benchmarks/as_avx2.sh).
ISA_LIMIT_VARIABLES = ("OPENCV_IPP", "OPENCV_CPU_DISABLE", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                       "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")


@pytest.fixture(autouse=True)
def _restore_thread_counts() -> Iterator[None]:
    """Put medfuse's and OpenCV's thread counts back after every benchmark."""
    saved = medfuse.get_num_threads()
    cv2 = sys.modules.get("cv2")
    saved_cv2 = cv2.getNumThreads() if cv2 is not None else None
    yield
    medfuse.set_num_threads(saved)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(saved_cv2 if saved_cv2 is not None else -1)  # -1: OpenCV's default
