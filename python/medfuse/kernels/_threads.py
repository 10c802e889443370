"""Thread counts: the C++ kernels' threads, and the BLAS/OpenMP pools medfuse runs under.

The kernels' own worker threads are set here (``set_num_threads``) or by the
``MEDFUSE_NUM_THREADS`` environment variable, read once at import. The default
is every core this process may run on, as OpenCV and PyTorch do. The value is
passed to the core as an argument on every call: the C++ side keeps no state.

The libraries medfuse calls have thread pools of their own (OpenBLAS or MKL
behind NumPy/SciPy, OpenMP inside scikit-learn); left alone each starts one
thread per core, on top of medfuse's. medfuse limits them with threadpoolctl:

- learners (``medfuse.learn``: fitting, predicting, cross-validation) run
  with ``learner_threads()`` = min(``get_learner_threads()``,
  ``get_num_threads()``) BLAS/OpenMP threads. ``get_learner_threads()``
  defaults to 1 (``set_learner_threads`` or ``MEDFUSE_LEARNER_THREADS``
  change it): a feature table has one row per patient, far too small for
  threads to pay, while threads that wait spin — with one core busy elsewhere
  a 2-thread gradient-boosting fit was 9× slower than a 1-thread one
  (benchmarks/busy_core.py).
- batch extraction with several workers gives each worker one kernel thread
  and one BLAS/OpenMP thread; a single worker uses ``get_num_threads()`` of each.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "default_num_threads",
    "get_learner_threads",
    "get_num_threads",
    "learner_threads",
    "library_threads",
    "set_learner_threads",
    "set_num_threads",
    "single_thread_environment",
    "with_learner_threads",
]

F = TypeVar("F", bound=Callable[..., Any])

_MAX_THREADS = 1024


def default_num_threads() -> int:
    """Cores available to this process (affinity-aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _check(n: object, name: str) -> int:
    if isinstance(n, bool) or (not isinstance(n, (int,)) and not hasattr(n, "__index__")):
        raise TypeError(f"{name} must be an integer >= 1, got {n!r}")
    value = int(n)  # type: ignore[call-overload]
    if value < 1 or value > _MAX_THREADS:
        raise ValueError(f"{name} must be between 1 and {_MAX_THREADS}, got {value}")
    return value


def _from_env(variable: str = "MEDFUSE_NUM_THREADS", default: int | None = None) -> int:
    fallback = default_num_threads() if default is None else default
    raw = os.environ.get(variable)
    if raw is None or raw.strip() == "":
        return fallback
    try:
        return _check(int(raw.strip()), variable)
    except (TypeError, ValueError):
        warnings.warn(
            f"{variable}={raw!r} is not an integer between 1 and {_MAX_THREADS}; using {fallback} threads",
            RuntimeWarning,
            stacklevel=2,
        )
        return fallback


_num_threads = _from_env()
_learner_threads = _from_env("MEDFUSE_LEARNER_THREADS", 1)


def set_num_threads(n: int) -> None:
    """Set how many threads each kernel call may use (process-wide).

    Results are identical for every thread count.
    """
    global _num_threads
    _num_threads = _check(n, "n")


def get_num_threads() -> int:
    """Threads each kernel call may use."""
    return _num_threads


def set_learner_threads(n: int) -> None:
    """Set the BLAS/OpenMP threads of medfuse's learners (process-wide; default 1).

    The learners never use more than ``get_num_threads()``, so
    ``set_num_threads(1)`` makes everything single-threaded.
    """
    global _learner_threads
    _learner_threads = _check(n, "n")


def get_learner_threads() -> int:
    """The learners' BLAS/OpenMP thread setting (before the ``get_num_threads()`` cap)."""
    return _learner_threads


def learner_threads() -> int:
    """BLAS/OpenMP threads the learners run with: min(learner setting, kernel threads)."""
    return min(_learner_threads, _num_threads)


_active = threading.local()  # the limits this thread is inside (library_threads blocks)


@contextmanager
def library_threads(n: int, user_api: str | None = None) -> Iterator[None]:
    """Limit every loaded BLAS and OpenMP thread pool to ``n`` threads inside the block (threadpoolctl).

    ``user_api``: "blas" or "openmp" to limit only those (default both).
    Only libraries loaded when the block starts are limited: import what
    will run (scikit-learn, SciPy) before entering it. BLAS limits are
    process-wide; OpenMP limits hold for the calling thread only (each
    thread has its own OpenMP settings), so a worker thread sets its own.
    """
    from threadpoolctl import threadpool_limits

    key = (_check(n, "n"), user_api)
    stack: list[tuple[int, str | None]] = _active.__dict__.setdefault("stack", [])
    if stack and stack[-1] in (key, (key[0], None)):  # nested in the same limit: nothing to do (a limit costs ~ms)
        yield
        return
    stack.append(key)
    try:
        with threadpool_limits(limits=key[0], user_api=user_api):
            yield
    finally:
        stack.pop()


def with_learner_threads(method: F) -> F:
    """Decorator: run ``method`` under ``library_threads(learner_threads())``."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with library_threads(learner_threads()):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


_SINGLE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MEDFUSE_NUM_THREADS")


def single_thread_environment() -> Any:
    """Make this process single-threaded for good: kernels, and BLAS/OpenMP pools
    loaded now (threadpoolctl) or later (environment variables). For worker
    processes; returns the threadpoolctl limiter (keep it referenced)."""
    from threadpoolctl import threadpool_limits

    for var in _SINGLE_THREAD_VARIABLES:
        os.environ[var] = "1"
    set_num_threads(1)
    return threadpool_limits(limits=1)
