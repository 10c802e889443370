"""Learners over a cohort's feature table.

- :mod:`medfuse.learn.fusion`: ``EarlyFusionClassifier``,
  ``LateFusionClassifier``, ``AttentionFusionClassifier`` — scikit-learn
  classifiers over named column blocks (one block per modality).
- :mod:`medfuse.learn.evaluate`: ``cross_validate`` (each modality and each
  fusion), ``MultimodalModel``, the HTML report (``write_report``).
"""

from __future__ import annotations

from .evaluate import Evaluation, MultimodalModel, cross_validate, example_images, write_report
from .fusion import AttentionFusionClassifier, EarlyFusionClassifier, LateFusionClassifier

__all__ = [
    "AttentionFusionClassifier",
    "EarlyFusionClassifier",
    "Evaluation",
    "LateFusionClassifier",
    "MultimodalModel",
    "cross_validate",
    "example_images",
    "write_report",
]
