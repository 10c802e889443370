"""Learners over a cohort's feature table.

- :mod:`medfuse.learn.fusion`: ``EarlyFusionClassifier``,
  ``LateFusionClassifier``, ``AttentionFusionClassifier`` — scikit-learn
  classifiers over named column blocks (one block per modality).
- :mod:`medfuse.learn.evaluate`: ``cross_validate`` (each modality and each
  fusion), ``MultimodalModel`` (``save``/``load``), ``cv_metrics``, the HTML
  report (``write_report``).
- :mod:`medfuse.learn.modelfile`: the model file format (zip of JSON, skops
  and safetensors parts; nothing runs on load): ``save_model``,
  ``load_model``, ``read_card``, ``register_kind``.
- :mod:`medfuse.learn.acquire`: which test to order next — the gymnasium
  environment ``AcquisitionEnv``, the agents ``QLearningAgent``,
  ``PolicyGradientAgent``, ``DQNAgent`` (torch), ``evaluate_acquisition``
  (loaded on first use: ``medfuse.learn.AcquisitionEnv`` works too).
"""

from __future__ import annotations

from .evaluate import Evaluation, MultimodalModel, cross_validate, cv_metrics, example_images, table_fingerprint, write_report
from .fusion import AttentionFusionClassifier, EarlyFusionClassifier, LateFusionClassifier
from .modelfile import ModelFileError, load_model, read_card, register_kind, save_model

_ACQUIRE = ("AcquisitionEnv", "DQNAgent", "PolicyGradientAgent", "QLearningAgent", "evaluate_acquisition")


def __getattr__(name: str) -> object:
    if name in _ACQUIRE:
        from . import acquire

        return getattr(acquire, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AttentionFusionClassifier",
    "EarlyFusionClassifier",
    "Evaluation",
    "LateFusionClassifier",
    "ModelFileError",
    "MultimodalModel",
    "cross_validate",
    "cv_metrics",
    "example_images",
    "load_model",
    "read_card",
    "register_kind",
    "save_model",
    "table_fingerprint",
    "write_report",
]
