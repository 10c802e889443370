"""Feature extractors: scikit-learn transformers over cohort modalities.

- :class:`ReportVectorizer` (``medfuse.features.text``): report text →
  pooled word vectors (+ optional TF-IDF), negation-aware, English/Chinese.
- :class:`ImageFeatureExtractor` (``medfuse.features.image``): X-rays and CT
  volumes → first-order, histogram, edge, GLCM and filter-bank features.
- :class:`AudioFeatureExtractor` (``medfuse.features.audio``): lung-sound
  recordings → MFCC / log-mel / spectral statistics, crackle and wheeze
  detectors.
"""

from __future__ import annotations

from .audio import AudioFeatureExtractor
from .image import ImageFeatureExtractor
from .text import ReportVectorizer

__all__ = ["AudioFeatureExtractor", "ImageFeatureExtractor", "ReportVectorizer"]
