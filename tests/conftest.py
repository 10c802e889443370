"""Shared test configuration: hypothesis profiles, image fixtures, thread hygiene.

Hypothesis profiles (select with HYPOTHESIS_PROFILE=<name>):
  default   deadline=None, 100 examples per property (CI: whole suite ~1 min on 2 cores)
  thorough  deadline=None, 2000 examples per property
  quick     deadline=None, 8 examples (local iteration)
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The helper modules (images.py, strategies.py) live next to this file; with
# --import-mode=importlib pytest does not put this directory on sys.path.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import images

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("default", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.register_profile("quick", max_examples=8, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _restore_num_threads():
    """No test leaks a changed thread count into the next one."""
    import medfuse

    before = medfuse.get_num_threads()
    yield
    medfuse.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def make_image():
    """Factory: ``make_image(family, shape, dtype=np.uint8, seed=0)`` (see tests/images.py)."""
    return images.make


@pytest.fixture
def natural_image() -> np.ndarray:
    return images.make("natural", (96, 80), np.uint8, seed=1)


@pytest.fixture
def ct_slice() -> np.ndarray:
    """A 2D synthetic CT slice in HU (int16)."""
    return images.make("ct", (96, 112), np.int16, seed=2)


@pytest.fixture
def ct_volume() -> np.ndarray:
    """A 3D synthetic CT volume in HU (int16), (z, y, x)."""
    return images.make("ct", (12, 40, 44), np.int16, seed=3)


@pytest.fixture
def noise_image() -> np.ndarray:
    return images.make("noise", (64, 64), np.uint8, seed=4)


@pytest.fixture
def constant_image() -> np.ndarray:
    return images.make("constant", (20, 30), np.uint8, seed=5)


@pytest.fixture
def blocks_image() -> np.ndarray:
    return images.make("blocks", (48, 40), np.uint8, seed=6)


@pytest.fixture(params=images.tiny_shapes(), ids=lambda s: f"{s[0]}x{s[1]}")
def tiny_image(request) -> np.ndarray:
    """Every size from 1x1 to 4x4 (uint8 noise)."""
    return images.make("noise", request.param, np.uint8, seed=sum(request.param))


@pytest.fixture(scope="session")
def cv2():
    """OpenCV, or skip (session-scoped so hypothesis tests may use it)."""
    return pytest.importorskip("cv2")


def pytest_configure(config):
    # Hypothesis' failure report imports mypy_extensions, whose TypedDict now
    # raises a DeprecationWarning; under filterwarnings=error that turns every
    # falsified property into an INTERNALERROR that hides the example.
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )


# ---- hardening (issue 9): sanitizer profile ---------------------------------
# .ci/sanitize runs the kernel tests under ASan + UBSan (2-4x slower); a few
# examples per property keep that job within its time budget.
# Chosen by .ci/sanitize (MEDFUSE_SANITIZE_RUN=1) unless HYPOTHESIS_PROFILE
# names another profile.
settings.register_profile("sanitize", max_examples=6, **_COMMON)
if os.environ.get("MEDFUSE_SANITIZE_RUN") and "HYPOTHESIS_PROFILE" not in os.environ:
    settings.load_profile("sanitize")
