"""Feature extractors: scikit-learn transformers over cohort modalities.

- :class:`ReportVectorizer` (``medfuse.features.text``): report text →
  pooled word vectors (+ optional TF-IDF), negation-aware, English/Chinese.
- Image features live in ``medfuse.features.image`` (added separately).
"""

from __future__ import annotations

from .text import ReportVectorizer

__all__ = ["ReportVectorizer"]
