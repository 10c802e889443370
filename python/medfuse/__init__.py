"""medfuse: multimodal medical image analysis with a fast C++ core.

Kernels (C++, GIL released, threaded) are re-exported here; their pure NumPy
twins live in :mod:`medfuse.reference`.
"""

from __future__ import annotations

from typing import Any

from ._threads import get_num_threads, set_num_threads
from .edges import canny, sobel
from . import cohort, io  # data integration (pure Python); medfuse.features is imported on demand (sklearn is slow to import)
from .convolve import convolve, filter_bank, gaussian, sep_filter, unsharp_mask
from .cnn import conv2d
from .enhance import bilateral, median
from .contrast import clahe, equalize_hist
from .histogram import first_order, histogram, quantize, window
from .texture import glcm, glcm_features
from .attention import attention, attention_backward, multi_head_attention

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "attention",
    "attention_backward",
    "multi_head_attention",
    "build_info",
    "bilateral",
    "canny",
    "cohort",
    "io",
    "convolve",
    "filter_bank",
    "gaussian",
    "sep_filter",
    "unsharp_mask",
    "conv2d",
    "get_num_threads",
    "median",
    "clahe",
    "equalize_hist",
    "first_order",
    "get_num_threads",
    "histogram",
    "quantize",
    "glcm",
    "glcm_features",
    "set_num_threads",
    "sobel",
    "window",
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
