"""The one place medfuse.nn and medfuse.learn.deep import torch."""

from __future__ import annotations

from types import ModuleType

INSTALL_HINT = 'pip install "medfuse[deep]"'


def require_torch(feature: str = "medfuse.nn") -> ModuleType:
    """torch, or an ImportError saying which extra installs it."""
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"{feature} needs PyTorch, which is not installed: {INSTALL_HINT}") from err
    return torch
