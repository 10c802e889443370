"""Pure NumPy twins of every medfuse kernel, with the same signatures.

They are the ground truth for the tests and the "pure" baseline of the
benchmarks: readable first, fast enough for hypothesis-sized inputs.
"""

from .contrast import clahe, equalize_hist
from .edges import canny, sobel
from .convolve import convolve, filter_bank, gaussian, sep_filter, unsharp_mask

__all__ = ["canny", "sobel", "convolve", "filter_bank", "gaussian", "sep_filter", "unsharp_mask"]
from .cnn import conv2d
from .enhance import bilateral, median

__all__ = ["bilateral", "canny", "conv2d", "median", "sobel"]
from .histogram import first_order, histogram, quantize, window

__all__ = ["canny", "clahe", "equalize_hist", "first_order", "histogram", "quantize", "sobel", "window"]
from .texture import glcm, glcm_features

__all__ = ["canny", "glcm", "glcm_features", "sobel"]
from .attention import attention, attention_backward, multi_head_attention

__all__ = ["canny", "sobel", "attention", "attention_backward", "multi_head_attention"]
