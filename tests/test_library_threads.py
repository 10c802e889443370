"""BLAS/OpenMP thread pools (threadpoolctl) are limited where medfuse runs learners and extraction workers.

Observed from inside: a learner that records ``threadpoolctl.threadpool_info()``
in its ``fit``, and a feature extractor that records it in each worker.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_info

import medfuse
import medfuse.extract as mx
from medfuse.cli import main
from medfuse.kernels import _threads
from medfuse.learn import MultimodalModel, cross_validate

SEEN: list[dict[str, int]] = []


def _pools() -> dict[str, int]:
    """Threads of each loaded BLAS/OpenMP library, keyed by file."""
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression that records the thread pools it runs under."""

    def fit(self, X, y):
        SEEN.append(_pools())
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        SEEN.append(_pools())
        return self.model_.predict_proba(X)


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    y = np.arange(n) % 2
    frame = pd.DataFrame({f"ct__f{i}": rng.normal(size=n) + y * (i == 0) for i in range(4)})
    frame["patient_id"] = [f"P{i:02d}" for i in range(n)]
    frame["label"] = y
    return frame


@pytest.fixture(autouse=True)
def _restore_threads():
    saved = (medfuse.get_num_threads(), medfuse.get_learner_threads())
    SEEN.clear()
    yield
    medfuse.set_num_threads(saved[0])
    medfuse.set_learner_threads(saved[1])


def _assert_all(seen: list[dict[str, int]], n: int) -> None:
    assert seen, "the probe never ran"
    for pools in seen:
        assert pools and set(pools.values()) == {n}, pools


def test_library_pools_have_several_threads_outside_medfuse():
    if _threads.default_num_threads() < 2:
        pytest.skip("one core: the default pools have one thread anyway")
    with _threads.library_threads(2):  # whatever the environment of this run set
        assert max(_pools().values()) == 2


def test_fit_and_predict_run_with_one_blas_thread_by_default(table):
    outside = _pools()
    model = MultimodalModel("early", RecordingClassifier()).fit(table)
    model.predict_proba(table)
    _assert_all(SEEN, 1)
    assert _pools() == outside  # restored afterwards


def test_learner_threads_setting_and_the_kernel_thread_cap(table):
    medfuse.set_num_threads(2)
    medfuse.set_learner_threads(2)
    MultimodalModel("early", RecordingClassifier()).fit(table)
    _assert_all(SEEN, 2)
    SEEN.clear()
    medfuse.set_num_threads(1)  # one thread for the kernels caps the learners too
    MultimodalModel("late", RecordingClassifier()).fit(table)
    _assert_all(SEEN, 1)
    assert medfuse.build_info()["learner_threads"] == 1


def test_cross_validation_runs_with_one_blas_thread(table):
    ev = cross_validate(table, folds=2, learner=RecordingClassifier(), fusions=())
    assert len(ev.table) == 1
    _assert_all(SEEN, 1)


class _RecordingFeatures(mx.CohortFeatures):
    def patient_row(self, *args, **kwargs):
        SEEN.append(_pools())
        SEEN.append({"kernel threads": medfuse.get_num_threads()})
        return super().patient_row(*args, **kwargs)


@pytest.fixture(scope="module")
def cohort():
    return medfuse.data.synthetic_cohort(4, seed=2, missing=0.0, shape=(16, 48, 48))


@pytest.mark.parametrize("workers", [1, 2])
def test_extraction_workers_get_one_blas_thread_each(cohort, workers):
    medfuse.set_num_threads(2)
    res = mx.extract_cohort(cohort, _RecordingFeatures(), workers=workers)
    assert res.n_ok == 4
    _assert_all(SEEN, 1 if workers > 1 else 2)  # one worker: as many as the kernels


def test_process_worker_initialiser_makes_the_process_single_threaded(monkeypatch):
    for var in _threads._SINGLE_THREAD_VARIABLES:
        monkeypatch.setenv(var, "4")  # restored by monkeypatch afterwards
    mx._process_init()
    try:
        assert max(_pools().values()) == 1 and medfuse.get_num_threads() == 1
        assert all(os.environ[v] == "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"))
    finally:
        mx._worker_limits.pop().restore_original_limits()


def test_cli_threads_option(capsys):
    assert main(["--threads", "1", "info"]) == 0
    out = capsys.readouterr().out
    assert "num_threads: 1" in out and "learner_threads: 1" in out


def test_learner_threads_argument_checks():
    with pytest.raises(ValueError, match="n must be between 1"):
        medfuse.set_learner_threads(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        medfuse.set_learner_threads(1.5)


def test_deep_fusion_runs_torch_with_the_learner_threads():
    torch = pytest.importorskip("torch")
    from medfuse.learn.deep import DeepFusionClassifier

    outside = torch.get_num_threads()
    medfuse.set_num_threads(2)
    medfuse.set_learner_threads(1)
    with DeepFusionClassifier()._threads():
        assert torch.get_num_threads() == 1  # not the kernels' 2: torch's threads spin when a core is busy
    medfuse.set_learner_threads(2)
    with DeepFusionClassifier()._threads():
        assert torch.get_num_threads() == 2
    medfuse.set_num_threads(1)  # the kernel count caps it
    with DeepFusionClassifier()._threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == outside
