"""Pure NumPy twins of every medfuse kernel, with the same signatures.

They are the ground truth for the tests and the "pure" baseline of the
benchmarks: readable first, fast enough for hypothesis-sized inputs.
"""

from .attention import attention, attention_backward, multi_head_attention
from .audio import mel_spectrogram, mfcc, spectrogram, stft
from .cnn import conv2d, conv2d_backward
from .contrast import clahe, equalize_hist
from .convolve import convolve, filter_bank, gaussian, sep_filter, unsharp_mask
from .denoise import nl_means
from .edges import canny, sobel
from .enhance import bilateral, median
from .histogram import first_order, histogram, quantize, window
from .morphology import (
    binary_close,
    binary_dilate,
    binary_erode,
    binary_open,
    fill_holes,
    label,
    regionprops_basic,
)
from .rnn import gru_backward, gru_forward
from .texture import glcm, glcm_features

__all__ = [
    "attention",
    "attention_backward",
    "bilateral",
    "binary_close",
    "binary_dilate",
    "binary_erode",
    "binary_open",
    "canny",
    "clahe",
    "conv2d",
    "conv2d_backward",
    "convolve",
    "equalize_hist",
    "fill_holes",
    "filter_bank",
    "first_order",
    "gaussian",
    "glcm",
    "glcm_features",
    "gru_backward",
    "gru_forward",
    "histogram",
    "label",
    "median",
    "mel_spectrogram",
    "mfcc",
    "multi_head_attention",
    "nl_means",
    "quantize",
    "regionprops_basic",
    "sep_filter",
    "sobel",
    "spectrogram",
    "stft",
    "unsharp_mask",
    "window",
]
