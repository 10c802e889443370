"""The one place medfuse.nn and medfuse.learn.deep import torch, and torch's thread count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

INSTALL_HINT = 'pip install "medfuse[deep]"'


def require_torch(feature: str = "medfuse.nn") -> ModuleType:
    """torch, or an ImportError saying which extra installs it."""
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"{feature} needs PyTorch, which is not installed: {INSTALL_HINT}") from err
    return torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block and restored after.

    The count is process-wide (torch has one pool). medfuse's policy: training
    (the deep classifier, the DQN agent, the denoiser) runs at
    ``medfuse.kernels._threads.learner_threads()`` like every learner (threads
    waiting at torch's barriers spin: with a core busy elsewhere 2 threads
    cost 14x the CPU of one, benchmarks/busy_core.py); the denoiser applied
    to a slice (inference, one large forward) runs at ``get_num_threads()``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    torch = require_torch()
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
