"""The compiled extension ``medfuse._core``, imported on first use and then kept.

The kernel wrappers call :func:`core` on every call; the NumPy twins and the
plans work without the extension, so nothing imports it at module import.
"""

from __future__ import annotations

from typing import Any

_module: Any = None


def core() -> Any:
    """``medfuse._core`` (imported the first time, then a global lookup)."""
    global _module
    if _module is None:
        from .. import _core as module

        _module = module
    return _module
