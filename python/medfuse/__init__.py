"""medfuse: multimodal medical image analysis with a fast C++ core.

Kernels (C++, GIL released, threaded) are re-exported here; their pure NumPy
twins live in :mod:`medfuse.reference`.
"""

from __future__ import annotations

from typing import Any

from .kernels._threads import get_learner_threads, get_num_threads, set_learner_threads, set_num_threads
from .kernels.attention import attention, attention_backward, multi_head_attention
from .kernels.audio import mel_spectrogram, mfcc, spectrogram, stft
from .kernels.cnn import conv2d, conv2d_backward
from .kernels.contrast import clahe, equalize_hist
from .kernels.convolve import convolve, filter_bank, gaussian, sep_filter, unsharp_mask
from .kernels.denoise import nl_means
from .kernels.edges import canny, sobel
from .kernels.enhance import bilateral, median
from .kernels.histogram import first_order, histogram, quantize, window
from .kernels.morphology import (
    binary_close,
    binary_dilate,
    binary_erode,
    binary_open,
    fill_holes,
    label,
    regionprops_basic,
)
from .kernels.texture import glcm, glcm_features

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "annotate",
    "attention",
    "attention_backward",
    "bilateral",
    "binary_close",
    "binary_dilate",
    "binary_erode",
    "binary_open",
    "build_info",
    "canny",
    "clahe",
    "conv2d",
    "conv2d_backward",
    "convolve",
    "data",
    "equalize_hist",
    "extract",
    "fill_holes",
    "filter_bank",
    "first_order",
    "gaussian",
    "get_learner_threads",
    "get_num_threads",
    "glcm",
    "glcm_features",
    "histogram",
    "kernels",
    "label",
    "learn",
    "median",
    "mel_spectrogram",
    "mfcc",
    "multi_head_attention",
    "nl_means",
    "quantize",
    "reference",
    "regionprops_basic",
    "segment",
    "sep_filter",
    "set_learner_threads",
    "set_num_threads",
    "sobel",
    "spectrogram",
    "stft",
    "unsharp_mask",
    "window",
]

# The package's folders follow the pipeline: kernels -> data -> features ->
# learn (plus segment, extract, cli and bench). Data integration, features
# and learners pull in pandas, pydicom, gensim and scikit-learn; they load on
# first use (``medfuse.data``, ``medfuse.learn`` ... as attributes) so that
# `import medfuse` stays fast for users who only call the kernels.
_LAZY_SUBMODULES = frozenset(
    {"annotate", "bench", "cli", "data", "extract", "features", "learn", "nn", "reference", "segment"}
)


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'medfuse' has no attribute {name!r}")


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
    info["learner_threads"] = min(get_learner_threads(), get_num_threads())
    return info
