"""PyTorch operators and layers backed by medfuse's C++ kernels (the ``deep`` extra).

Importing this package imports torch; without it the import raises an
ImportError naming ``pip install "medfuse[deep]"``. ``import medfuse`` never
imports this package.

- :func:`conv2d` / :func:`attention`: functional forms of the custom
  operators ``torch.ops.medfuse.conv2d`` and ``torch.ops.medfuse.attention``
  (``torch.library.custom_op`` with fake kernels and autograd: the backward
  passes run medfuse's C++ gradient kernels ``conv2d_backward`` and
  ``attention_backward``).
- :func:`gru`: a single-layer GRU over a padded batch with lengths, the
  recurrence on ``torch.ops.medfuse.gru`` (C++ forward and backward).
- :class:`Conv2d`, :class:`MultiheadAttention` and :class:`GRU`: drop-in
  ``torch.nn`` modules with torch's parameter names and layouts.

CPU float32 and float64 tensors run medfuse's kernels; any other device
(CUDA, meta, ...) or floating dtype (float16, bfloat16) goes to torch's own
operator, so the modules work everywhere torch does.
"""

from __future__ import annotations

from ._torch import require_torch

require_torch("medfuse.nn")

from .functional import attention, conv2d, gru
from .modules import GRU, Conv2d, MultiheadAttention

__all__ = ["GRU", "Conv2d", "MultiheadAttention", "attention", "conv2d", "gru"]
