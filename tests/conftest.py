"""Shared test configuration: hypothesis profiles, image fixtures, thread hygiene.

Hypothesis profiles (select with HYPOTHESIS_PROFILE=<name>):
  default   100 examples per property, fresh random examples every run
  ci        the same, derandomised: every run draws the same examples, so a CI
            failure reproduces by rerunning (.ci/run uses it)
  stress    500 examples, fresh seeds (.ci/stress, with --hypothesis-seed per round)
  thorough  2000 examples per property, fresh seeds
  quick     8 examples (local iteration)
A test that pins its own count (``@settings(max_examples=N)``, usually because
its examples are expensive) keeps N under default/ci/quick/sanitize; under
stress and thorough N is scaled by the profile's factor over the default (5x,
20x; see ``pytest_collection_modifyitems``), so those profiles enlarge every
property, not only the unpinned ones.
  sanitize  6 examples (.ci/sanitize, under ASan + UBSan)
All have deadline=None. HYPOTHESIS_DATABASE_DIR=<dir> keeps the example
database (the failing examples, replayed first by the next run) in <dir>
(default: .hypothesis/examples under the current directory); CI keeps it as
an artifact. Derandomised runs use no database (hypothesis forbids it, and a
rerun replays the same examples anyway).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# The helper modules (images.py, strategies.py) live next to this file; with
# --import-mode=importlib pytest does not put this directory on sys.path.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import hygiene
import images
import scipy_safe

# scipy.ndimage's repeat-until-stable morphology corrupts the heap (issue 25):
# any call that would take it fails the calling test (tests/scipy_safe.py).
scipy_safe.install_guard()

_COMMON: dict = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DATABASE_DIR = os.environ.get("HYPOTHESIS_DATABASE_DIR") or None
_DB = dict(_COMMON, database=DirectoryBasedExampleDatabase(DATABASE_DIR)) if DATABASE_DIR else _COMMON
settings.register_profile("default", max_examples=100, **_DB)
settings.register_profile("ci", max_examples=100, derandomize=True, **_COMMON)
settings.register_profile("stress", max_examples=500, **_DB)
settings.register_profile("thorough", max_examples=2000, **_DB)
settings.register_profile("quick", max_examples=8, **_DB)
# .ci/sanitize's profile (see "sanitizer profile" below); registered before the environment's profile is loaded,
# so HYPOTHESIS_PROFILE=sanitize works too.
settings.register_profile("sanitize", max_examples=6, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config, items):
    """Scale pinned ``max_examples`` under the stress and thorough profiles (see hygiene.scale_pinned_examples)."""
    hygiene.scale_pinned_examples(items)


def pytest_report_header(config):
    s = settings.default
    db = "none (derandomised)" if s.derandomize else (DATABASE_DIR or os.path.abspath(".hypothesis/examples"))
    return f"hypothesis: max_examples={s.max_examples}, derandomize={s.derandomize}, example database: {db}"


@pytest.fixture(autouse=True)
def _restore_num_threads():
    """No test leaks a changed thread count into the next one."""
    import medfuse

    before = medfuse.get_num_threads()
    yield
    medfuse.set_num_threads(before)


# ---- no background threads leak between tests (issue 25) ---------------------
@pytest.fixture(autouse=True)
def _dask_closed():
    """Dask clients and clusters a test starts are closed when it ends (a test
    that forgets to fails; the fixture closes them either way, so the next
    test never runs next to a live Dask event loop)."""
    yield
    left = hygiene.close_dask()
    assert not left, f"the test left Dask clients/clusters open (now closed): {left}"


@pytest.fixture(autouse=True, scope="module")
def _no_thread_survives_the_module():
    """No non-daemon thread started during a test module outlives it
    (thread pools shut down, Dask closed); a few seconds are allowed for
    threads that are already stopping."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10.0
    while (leaked := hygiene.leaked_threads(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked, f"non-daemon threads outlived the test module: {[t.name for t in leaked]}"


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
if os.environ.get("MEDFUSE_SANITIZE_RUN") and "HYPOTHESIS_PROFILE" not in os.environ:
    settings.load_profile("sanitize")
