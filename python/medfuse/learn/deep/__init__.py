"""Deep multimodal learners on PyTorch (the ``deep`` extra: ``pip install "medfuse[deep]"``).

- :class:`DeepFusionClassifier`: CNN encoders for the X-ray, the 2.5D CT
  nodule patch and the lung sounds' log-mel spectrogram, a GRU/LSTM report
  encoder over medfuse's tokenizer (plus a bag-of-tokens token), one MLP
  token per hand-made feature block of the extracted table (ct__*, xray__*,
  audio__*), and transformer fusion of the modality tokens on medfuse's
  attention operator, trained end to end (scikit-learn API).
- :func:`prepare_inputs` / :class:`DeepInputs`: the model's raw inputs.

Importing this package imports torch (ImportError naming the extra when it
is missing); ``import medfuse`` and ``import medfuse.learn`` do not.
"""

from __future__ import annotations

from ...nn._torch import require_torch

require_torch("medfuse.learn.deep")

from .classifier import DeepFusionClassifier
from .inputs import DeepInputs, prepare_inputs

__all__ = ["DeepFusionClassifier", "DeepInputs", "prepare_inputs"]
