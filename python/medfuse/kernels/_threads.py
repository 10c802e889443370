"""Thread count for the C++ kernels.

The kernels' own worker threads are set here (``set_num_threads``) or by the
``MEDFUSE_NUM_THREADS`` environment variable, read once at import. The default
is every core this process may run on, as OpenCV and PyTorch do. The value is
passed to the core as an argument on every call: the C++ side keeps no state.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["default_num_threads", "get_num_threads", "set_num_threads"]

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


def _from_env() -> int:
    raw = os.environ.get("MEDFUSE_NUM_THREADS")
    if raw is None or raw.strip() == "":
        return default_num_threads()
    try:
        return _check(int(raw.strip()), "MEDFUSE_NUM_THREADS")
    except (TypeError, ValueError):
        warnings.warn(
            f"MEDFUSE_NUM_THREADS={raw!r} is not an integer between 1 and {_MAX_THREADS}; "
            f"using {default_num_threads()} threads",
            RuntimeWarning,
            stacklevel=2,
        )
        return default_num_threads()


_num_threads = _from_env()


def set_num_threads(n: int) -> None:
    """Set how many threads each kernel call may use (process-wide).

    Results are identical for every thread count.
    """
    global _num_threads
    _num_threads = _check(n, "n")


def get_num_threads() -> int:
    """Threads each kernel call may use."""
    return _num_threads
