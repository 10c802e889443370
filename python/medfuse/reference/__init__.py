"""Pure NumPy twins of every medfuse kernel, with the same signatures.

They are the ground truth for the tests and the "pure" baseline of the
benchmarks: readable first, fast enough for hypothesis-sized inputs.
"""

from .contrast import clahe, equalize_hist
from .edges import canny, sobel
from .histogram import first_order, histogram, quantize, window

__all__ = ["canny", "clahe", "equalize_hist", "first_order", "histogram", "quantize", "sobel", "window"]
