"""Inputs more than one benchmark suite times (imported by the bench_*.py files; conftest.py puts this folder on
sys.path, as pytest's importlib mode does not)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from medfuse.data import phantoms as _phantoms


@functools.cache
def xray_u8(side: int) -> np.ndarray:
    """A chest X-ray as uint8, side x side: the phantom's projection resampled (bicubic), detector noise added."""
    cv2 = pytest.importorskip("cv2")
    ph = _phantoms.ct_phantom((64, 256, 256), seed=0)
    raw = _phantoms.xray_from_ct(ph.volume, ph.spacing, bits=12).astype(np.float32)
    img = cv2.resize(raw, (side, side), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) * (255.0 / max(float(np.ptp(img)), 1.0))
    img += np.random.default_rng(side).normal(0.0, 4.0, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
