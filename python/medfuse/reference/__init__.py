"""Pure NumPy twins of every medfuse kernel, with the same signatures.

They are the ground truth for the tests and the "pure" baseline of the
benchmarks: readable first, fast enough for hypothesis-sized inputs.
"""

from .edges import canny, sobel
from .attention import attention, attention_backward, multi_head_attention

__all__ = ["canny", "sobel", "attention", "attention_backward", "multi_head_attention"]
