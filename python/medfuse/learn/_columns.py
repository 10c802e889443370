"""Column naming of the feature table (``<modality>__<feature>``), shared by the learners.

A leaf module (no heavy import, nothing of medfuse): :mod:`medfuse.learn.evaluate`
and :mod:`medfuse.learn.deep.inputs` both read the table through it, and the
former imports the latter, so it cannot live in either.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NUMERIC_MODALITIES", "SEP", "image_blocks"]

# Modalities whose features are numeric columns of the table (<m>__<feature>).
NUMERIC_MODALITIES = ("ct", "xray", "audio")
SEP = "__"


def image_blocks(frame: Any) -> dict[str, list[str]]:
    """Numeric modality -> its feature columns (``ct__*``, ``xray__*``, ``audio__*``) present in ``frame``."""
    out: dict[str, list[str]] = {}
    for m in NUMERIC_MODALITIES:
        cols = [c for c in frame.columns if isinstance(c, str) and c.startswith(m + SEP)]
        if cols:
            out[m] = cols
    return out
