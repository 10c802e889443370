"""The package's layout follows the pipeline: no import circle, twins import
plans (never wrappers), no module imports a later stage, and public
submodules are reachable as attributes of ``medfuse`` without importing the
heavy libraries up front."""

from __future__ import annotations

import subprocess
import sys

import pytest

import medfuse
from import_graph import cycles, edges, stage  # tests/ is on sys.path (conftest.py)

GRAPH = edges()


def test_no_import_circle():
    assert cycles(GRAPH) == []


def test_twins_import_plans_only():
    bad = {
        m: sorted(d for d in deps if d.startswith("medfuse.kernels") and not d.rsplit(".", 1)[-1].startswith("_"))
        for m, deps in GRAPH.items()
        if m.startswith("medfuse.reference")
    }
    assert not any(bad.values()), f"twins importing kernel wrappers: {bad}"
    for m, deps in GRAPH.items():
        if m.startswith("medfuse.reference"):
            assert all(d.startswith(("medfuse.kernels", "medfuse.reference")) for d in deps), (m, deps)


def test_no_module_imports_a_later_stage():
    bad = []
    for m, deps in GRAPH.items():
        for d in deps:
            if d == "medfuse":
                continue  # the top-level re-exports (kernels)
            if stage(d)[1] > stage(m)[1]:
                bad.append(f"{m} -> {d}")
    assert bad == []


def test_kernel_wrappers_do_not_import_the_python_layer():
    for m, deps in GRAPH.items():
        if m.startswith("medfuse.kernels"):
            assert all(d.startswith(("medfuse.kernels", "medfuse._core")) for d in deps), (m, deps)


@pytest.mark.parametrize("name", ["reference", "data", "features", "learn", "segment", "extract", "bench"])
def test_public_submodules_are_attributes(name):
    assert getattr(medfuse, name).__name__ == f"medfuse.{name}"


def test_reference_twin_reachable_after_plain_import():
    code = "import numpy as np, medfuse; print(int(medfuse.reference.canny(np.zeros((5, 5), np.uint8), 1, 2).sum()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_import_medfuse_stays_light():
    """Kernel users do not pay for pandas, scikit-learn, gensim, pydicom or torch."""
    code = (
        "import sys, medfuse; heavy = ['pandas', 'sklearn', 'gensim', 'pydicom', 'torch', 'jieba', 'cv2', 'scipy'];"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
