"""medfuse: multimodal medical image analysis with a fast C++ core.

Kernels (C++, GIL released, threaded) are re-exported here; their pure NumPy
twins live in :mod:`medfuse.reference`.
"""

from __future__ import annotations

from typing import Any

from ._threads import get_num_threads, set_num_threads
from .edges import canny, sobel
from .attention import attention, attention_backward, multi_head_attention

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "attention",
    "attention_backward",
    "multi_head_attention",
    "build_info",
    "canny",
    "get_num_threads",
    "set_num_threads",
    "sobel",
]

try:
    from . import _core
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "medfuse's compiled extension medfuse._core could not be imported. "
        "Install the package (python -m pip install .) rather than importing it "
        "from the source tree; see README.md."
    ) from err


def build_info() -> dict[str, Any]:
    """What was compiled in and what is used: version, compiler, SIMD, threads."""
    info = dict(_core.build_info())
    info["version"] = __version__
    info["num_threads"] = get_num_threads()
    return info
