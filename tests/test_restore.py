"""medfuse.restore: degradation models, metrics (vs scikit-image), denoise/enhance, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

import images
import medfuse
from medfuse import restore as R
from medfuse.data import phantoms

skm = pytest.importorskip("skimage.metrics")


@pytest.fixture(scope="module")
def ct_slice():
    ph = phantoms.nodule_ct_phantom((12, 64, 64), seed=3, diameter_mm=14.0)
    z = round(ph.nodule_center[0])
    return ph, ph.volume[z].astype(np.float32)


# ---- metrics --------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"gaussian_weights": True}, {"win_size": 11}, {"use_sample_covariance": False},
                                {"gaussian_weights": True, "sigma": 0.8, "use_sample_covariance": False}])
def test_ssim_matches_skimage(kw):
    rng = np.random.default_rng(0)
    a = images.make("natural", (57, 64), np.float32, seed=1).astype(np.float64)
    b = a + rng.normal(0, 0.1 * a.std(), a.shape)
    dr = float(np.ptp(a))
    want = skm.structural_similarity(a, b, data_range=dr, **kw)
    assert abs(R.ssim(a, b, data_range=dr, **kw) - want) < 1e-7
    a8, b8 = np.clip(a / dr * 255, 0, 255).astype(np.uint8), np.clip(b / dr * 255, 0, 255).astype(np.uint8)
    assert abs(R.ssim(a8, b8, **kw) - skm.structural_similarity(a8, b8, **kw)) < 1e-7
    mssim, smap = R.ssim(a8, b8, full=True, **kw)
    assert smap.shape == a8.shape and abs(mssim - skm.structural_similarity(a8, b8, **kw)) < 1e-7


def test_psnr_matches_skimage():
    a = images.make("natural", (40, 50), np.uint8, seed=2)
    b = images.make("noise", (40, 50), np.uint8, seed=3)
    assert R.psnr(a, b) == pytest.approx(skm.peak_signal_noise_ratio(a, b), rel=1e-12)
    af, bf = a.astype(np.float32), b.astype(np.float32)
    assert R.psnr(af, bf, data_range=300.0) == pytest.approx(skm.peak_signal_noise_ratio(af, bf, data_range=300.0))
    assert R.psnr(a, a) == math.inf
    assert R.ssim(a, a) == pytest.approx(1.0)


def test_noise_sd_and_cnr():
    rng = np.random.default_rng(4)
    img = rng.normal(0.0, 10.0, (200, 200))
    les = np.zeros(img.shape, bool)
    les[80:120, 80:120] = True
    img[les] += 50.0
    bg = np.zeros(img.shape, bool)
    bg[:60, :] = True
    assert R.noise_sd(img, bg) == pytest.approx(10.0, rel=0.05)
    assert R.cnr(img, les, bg) == pytest.approx(5.0, rel=0.08)
    with pytest.raises(ValueError, match="overlap"):
        R.cnr(img, les, les)
    with pytest.raises(TypeError, match="region"):
        R.noise_sd(img, bg.astype(np.uint8))
    with pytest.raises(ValueError, match="region"):
        R.noise_sd(img, bg[:10])


def test_metric_refusals():
    a = np.zeros((10, 10), np.float32)
    with pytest.raises(ValueError, match="data_range"):
        R.psnr(a, a)
    with pytest.raises(ValueError, match="shape"):
        R.psnr(a, a[:5], data_range=1.0)
    with pytest.raises(ValueError, match="win_size"):
        R.ssim(a, a, data_range=1.0, win_size=4)
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        R.ssim(a, bad, data_range=1.0)


# ---- degradation ------------------------------------------------------------------


def test_low_dose_ct_noise_follows_dose(ct_slice):
    ph, sl = ct_slice
    ref = R.low_dose_ct(sl, None, pixel_mm=ph.spacing[1])
    assert ref.dtype == np.float32 and ref.shape == sl.shape
    # the noise-free round trip keeps HU: body interior close to the phantom
    body = sl > -200
    assert abs(float(np.median(ref[body] - sl[body]))) < 15
    sds = []
    for dose in (1.0, 0.25, 0.0625):
        low = R.low_dose_ct(sl, dose, pixel_mm=ph.spacing[1], seed=1)
        sds.append(float(np.std(low - ref)))
    # quantum noise: SD ~ 1 / sqrt(dose), so each quarter dose roughly doubles it
    assert 1.6 < sds[1] / sds[0] < 2.5 and 1.6 < sds[2] / sds[1] < 2.5
    a = R.low_dose_ct(sl, 0.25, pixel_mm=ph.spacing[1], seed=7)
    np.testing.assert_array_equal(a, R.low_dose_ct(sl, 0.25, pixel_mm=ph.spacing[1], seed=7))


@pytest.mark.parametrize("dose", [0.0, -0.5, float("nan")])
def test_low_dose_ct_refuses_bad_dose(ct_slice, dose):
    with pytest.raises(ValueError, match="dose"):
        R.low_dose_ct(ct_slice[1], dose)


def test_low_dose_ct_refuses_bad_image():
    x = np.zeros((8, 8), np.float32)
    x[2, 2] = np.inf
    with pytest.raises(ValueError, match="NaN"):
        R.low_dose_ct(x, 0.5)
    with pytest.raises(ValueError, match="2D slice"):
        R.low_dose_ct(np.zeros((2, 2, 8, 8)), 0.5)
    with pytest.raises(ValueError, match="2D slice"):
        R.low_dose_ct(np.zeros(8), 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        R.low_dose_ct(np.zeros((0, 8, 8)), 0.5)
    with pytest.raises(TypeError, match="numeric"):
        R.low_dose_ct(np.zeros((2, 8, 8), bool), 0.5)
    x3 = np.zeros((3, 8, 8), np.float32)
    x3[1, 4, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        R.low_dose_ct(x3, 0.5)


def test_low_dose_ct_volume_slices_independent(ct_slice):
    ph, _ = ct_slice
    z = round(ph.nodule_center[0])
    vol = ph.volume[z - 1 : z + 2].astype(np.float32)
    ref = R.low_dose_ct(vol, None, pixel_mm=ph.spacing[1])
    assert ref.shape == vol.shape and ref.dtype == np.float32
    for k in range(3):  # noise-free: exactly the 2D reconstruction of each slice
        np.testing.assert_array_equal(ref[k], R.low_dose_ct(vol[k], None, pixel_mm=ph.spacing[1]))
    low = R.low_dose_ct(vol, 0.1, pixel_mm=ph.spacing[1], seed=5)
    np.testing.assert_array_equal(low, R.low_dose_ct(vol, 0.1, pixel_mm=ph.spacing[1], seed=5))
    # slice k draws from the same generator after slices 0..k-1
    rng = np.random.default_rng(5)
    first = [R.low_dose_ct(vol[k], 0.1, pixel_mm=ph.spacing[1], seed=rng) for k in range(3)]
    np.testing.assert_array_equal(low, np.stack(first))
    noise = (low - ref).reshape(3, -1)
    sd2d = float(np.std(R.low_dose_ct(vol[1], 0.1, pixel_mm=ph.spacing[1], seed=9) - ref[1]))
    for k in range(3):
        assert 0.8 < float(noise[k].std()) / sd2d < 1.25
    # independent between slices: correlation of neighbouring slices' noise near 0
    for k in range(2):
        assert abs(float(np.corrcoef(noise[k], noise[k + 1])[0, 1])) < 0.05


def test_noisy_xray_poisson_gaussian():
    flat = np.full((300, 300), 0.5, np.float64)
    out = R.noisy_xray(flat, photons=400.0, read_noise=0.0, seed=0)
    # Poisson: variance of counts = mean = 200, so sd of the image = sqrt(200) / 400
    assert out.std() == pytest.approx(math.sqrt(200) / 400, rel=0.05)
    assert out.mean() == pytest.approx(0.5, abs=0.005)
    out2 = R.noisy_xray(flat, photons=400.0, read_noise=20.0, seed=0)
    assert out2.std() == pytest.approx(math.sqrt(200 + 400) / 400, rel=0.05)
    edge = np.zeros((64, 64), np.uint16)
    edge[:, 32:] = 4000
    blurred = R.noisy_xray(edge, photons=1e9, read_noise=0.0, blur_sigma=2.0)
    assert blurred.dtype == np.uint16 and 0 < blurred[10, 31] < 4000
    with pytest.raises(ValueError, match="photons"):
        R.noisy_xray(flat, photons=0.0)
    with pytest.raises(ValueError, match="radiograph"):
        R.noisy_xray(flat * 3)


# ---- methods ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def denoise_case():
    ph = phantoms.nodule_ct_phantom((12, 128, 128), seed=4)
    sl = ph.volume[6].astype(np.float32)
    return R.low_dose_ct(sl, None, pixel_mm=ph.spacing[1]), R.low_dose_ct(sl, 0.05, pixel_mm=ph.spacing[1], seed=2)


@pytest.mark.parametrize("method,params", [("gaussian", {"sigma": 1.0}), ("median", {"size": 3}),
                                           ("bilateral", {"sigma_color": 60.0}), ("nlm", {"h": 40.0})])
def test_denoise_improves_low_dose_ct(denoise_case, method, params):
    ref, low = denoise_case
    out = R.denoise(low, method, **params)
    assert out.dtype == low.dtype and out.shape == low.shape
    assert R.psnr(ref, out, data_range=1500) > R.psnr(ref, low, data_range=1500) + 1.0


def test_denoise_dtypes_and_dispatch():
    x16 = (images.make("natural", (40, 40), np.uint16, seed=1) // 16).astype(np.int16)
    out = R.denoise(x16, "nlm", h=30.0, search_size=7)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(
        out, np.rint(medfuse.nl_means(x16.astype(np.float32), 30.0, search_size=7)).astype(np.int16))
    x8 = images.make("natural", (40, 40), np.uint8, seed=2)
    np.testing.assert_array_equal(R.denoise(x8, "median", size=5), medfuse.median(x8, 5))
    np.testing.assert_array_equal(R.denoise(x8, lambda a: a[::-1]), x8[::-1])


def test_denoise_refusals():
    x = np.zeros((10, 10), np.uint8)
    with pytest.raises(ValueError, match="method"):
        R.denoise(x, "wiener")
    with pytest.raises(TypeError, match="needs h"):
        R.denoise(x, "nlm")
    with pytest.raises(TypeError, match="takes"):
        R.denoise(x, "gaussian", size=3)
    with pytest.raises(ValueError, match="shape"):
        R.denoise(x, lambda a: a[:5])
    with pytest.raises(ValueError, match="NaN"):
        R.denoise(np.full((5, 5), np.nan, np.float32), "gaussian")


@pytest.fixture(scope="module")
def volume_case():
    # anatomy constant along z (five copies of one slice), noise independent per slice
    ph = phantoms.nodule_ct_phantom((12, 96, 96), seed=8, diameter_mm=12.0)
    sl = ph.volume[round(ph.nodule_center[0])].astype(np.float32)
    vol = np.stack([sl] * 5)
    return (R.low_dose_ct(vol, None, pixel_mm=ph.spacing[1]),
            R.low_dose_ct(vol, 0.05, pixel_mm=ph.spacing[1], seed=3))


def test_denoise_volume_blend_matches_scipy(volume_case):
    from scipy import ndimage

    _, low = volume_case
    per_slice = np.stack([R.denoise(s, "gaussian", sigma=1.0) for s in low])
    np.testing.assert_array_equal(R.denoise_volume(low, "gaussian", z_weight=0.0, sigma=1.0), per_slice)
    for w in (0.1, 0.25, 1 / 3):
        out = R.denoise_volume(low, "gaussian", z_weight=w, sigma=1.0)
        want = ndimage.correlate1d(per_slice.astype(np.float64), [w, 1 - 2 * w, w], axis=0, mode="nearest")
        assert out.dtype == np.float32 and out.shape == low.shape
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-3)
    one = low[:1]  # a single slice has no neighbours: the blend leaves it as denoised
    np.testing.assert_array_equal(R.denoise_volume(one, "median", size=3), R.denoise(low[0], "median", size=3)[None])


def test_denoise_volume_averages_independent_noise(volume_case):
    ref, low = volume_case
    inner = (slice(1, -1), slice(None), slice(None))  # the end slices have one neighbour
    flat = R.denoise_volume(low, "bilateral", z_weight=0.0, sigma_color=90.0)
    blended = R.denoise_volume(low, "bilateral", z_weight=0.25, sigma_color=90.0)
    def score(x):
        return R.psnr(ref[inner].reshape(-1, ref.shape[2]), x[inner].reshape(-1, ref.shape[2]), data_range=1500)

    assert score(blended) > score(flat) + 0.5


def test_denoise_volume_dtypes_and_callables():
    vol = (images.make("natural", (24, 24), np.uint16, seed=3) // 16).astype(np.int16)
    vol = np.stack([vol, vol[::-1], vol[:, ::-1]])
    out = R.denoise_volume(vol, lambda a: a, z_weight=0.25)
    assert out.dtype == np.int16
    f = vol.astype(np.float64)
    mid = 0.25 * f[0] + 0.5 * f[1] + 0.25 * f[2]
    np.testing.assert_array_equal(out[1], np.rint(mid).astype(np.int16))
    np.testing.assert_array_equal(R.denoise_volume(vol[..., ::2], lambda a: a, z_weight=0.0), vol[..., ::2])
    u8 = np.full((2, 5, 5), 255, np.uint8)
    np.testing.assert_array_equal(R.denoise_volume(u8, lambda a: a + 10, z_weight=0.2), 255)  # clipped


@pytest.mark.parametrize("bad,kw,exc,match", [
    (np.zeros((8, 8), np.float32), {}, ValueError, "3D"),
    (np.zeros((0, 8, 8), np.float32), {}, ValueError, "3D"),
    (np.zeros((2, 8, 8), bool), {}, TypeError, "numeric"),
    (np.full((2, 8, 8), np.inf, np.float32), {}, ValueError, "NaN"),
    (np.zeros((2, 8, 8), np.float32), {"z_weight": 0.4}, ValueError, "z_weight"),
    (np.zeros((2, 8, 8), np.float32), {"z_weight": -0.1}, ValueError, "z_weight"),
    (np.zeros((2, 8, 8), np.float32), {"z_weight": float("nan")}, ValueError, "z_weight"),
    (np.zeros((2, 8, 8), np.float32), {"z_weight": True}, TypeError, "z_weight"),
    (np.zeros((2, 8, 8), np.float32), {"z_weight": "0.2"}, TypeError, "z_weight"),
    (np.zeros((2, 8, 8), np.float32), {"size": 3}, TypeError, "takes"),
])
def test_denoise_volume_refusals(bad, kw, exc, match):
    method = "gaussian"
    with pytest.raises(exc, match=match):
        R.denoise_volume(bad, method, **kw)


def test_enhance():
    x = images.make("natural", (64, 64), np.uint8, seed=5)
    np.testing.assert_array_equal(R.enhance(x, "clahe", clip_limit=3.0), medfuse.clahe(x, 3.0, (8, 8)))
    np.testing.assert_array_equal(R.enhance(x, "unsharp", sigma=2.0, amount=0.5), medfuse.unsharp_mask(x, 2.0, 0.5))
    hu = np.linspace(-1500, 500, 64 * 64, dtype=np.float32).reshape(64, 64)
    w = R.enhance(hu, "window", center=-600, width=1500)
    assert w.dtype == np.uint8 and w.min() == 0 and w.max() == 255
    with pytest.raises(TypeError, match="center"):
        R.enhance(hu, "window")
    with pytest.raises(ValueError, match="method"):
        R.enhance(x, "gamma")
