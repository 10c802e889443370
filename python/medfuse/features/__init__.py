"""Feature extractors: scikit-learn transformers over cohort modalities.

- :class:`ReportVectorizer` (``medfuse.features.text``): report text →
  pooled word vectors (+ optional TF-IDF), negation-aware, English/Chinese.
- :class:`ImageFeatureExtractor` (``medfuse.features.image``): X-rays and CT
  volumes → first-order, histogram, edge, GLCM and filter-bank features.
"""

from __future__ import annotations

from .image import ImageFeatureExtractor
from .text import ReportVectorizer

__all__ = ["ImageFeatureExtractor", "ReportVectorizer"]
