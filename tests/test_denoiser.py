"""medfuse.nn.denoiser: the learned DnCNN-style CT denoiser (torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medfuse import restore as R
from medfuse.data import phantoms
from medfuse.nn import denoiser as D


@pytest.fixture(scope="module")
def held_out():
    ph = phantoms.nodule_ct_phantom((12, 128, 128), seed=777)
    sl = ph.volume[6].astype(np.float32)
    ref = R.low_dose_ct(sl, None, pixel_mm=ph.spacing[1])
    return ref, R.low_dose_ct(sl, 0.1, pixel_mm=ph.spacing[1], seed=5)


def test_shipped_weights_denoise_held_out_ct(held_out):
    ref, low = held_out
    den = D.load_denoiser()
    out = R.denoise(low, den)
    assert out.dtype == np.float32 and out.shape == low.shape
    assert R.psnr(ref, out, data_range=1500) > R.psnr(ref, low, data_range=1500) + 2.0
    assert R.ssim(ref, out, data_range=1500) > R.ssim(ref, low, data_range=1500)


def test_training_learns_and_is_deterministic(tmp_path, held_out):
    ref, low = held_out
    kw = dict(depth=3, channels=8, n_volumes=2, slices_per_volume=2, shape=(8, 128, 128), patch=40, steps=150, lr=5e-3,
              batch=4, seed=1)
    a = D.train_denoiser(path=tmp_path / "w.safetensors", **kw)
    assert R.psnr(ref, a(low), data_range=1500) > R.psnr(ref, low, data_range=1500) + 1.0
    b = D.load_denoiser(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(a(low), b(low))
    c = D.train_denoiser(**kw)
    np.testing.assert_array_equal(a(low), c(low))


def test_refusals(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights"):
        D.load_denoiser(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a medfuse denoiser"):
        D.load_denoiser(bad)
    den = D.load_denoiser()
    with pytest.raises(ValueError, match="NaN"):
        den(np.full((8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="2D"):
        den(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="depth"):
        D.DnCNN(depth=1)
