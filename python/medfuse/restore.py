"""Restoration and enhancement as a measured task: degrade, denoise, enhance, score.

Degradation models
------------------
* :func:`low_dose_ct` simulates a reduced-dose acquisition of a CT slice in
  the projection domain. The HU slice is turned into linear attenuation
  (``mu = MU_WATER * (1 + HU / 1000)`` per mm, air clipped at 0), forward
  projected over ``views`` angles in [0, 180) with
  ``skimage.transform.radon`` (line integrals ``p`` in mm x 1/mm), and each
  detector bin receives ``N = Poisson(dose * photons * exp(-p)) +
  Normal(0, electronic_noise)`` counts (``photons`` is the unattenuated count
  of a full-dose bin, ``dose`` the fraction of it). Counts are floored at 1
  (a log of zero is undefined; scanners do the same), ``p' = -log(N / (dose *
  photons))`` and the slice is rebuilt by filtered back-projection
  (``skimage.transform.iradon``, ramp filter, linear interpolation) and
  returned in HU. ``dose=None`` gives the noise-free reconstruction of the
  same pipeline: the *normal-dose reference* that restoration is scored
  against (it has the same resolution loss as the noisy one, so the score
  measures noise, not the projector).
* :func:`noisy_xray` applies a Gaussian blur (detector and focal spot) and
  Poisson-Gaussian quantum noise to a radiograph.

Metrics: :func:`psnr`, :func:`ssim` (scikit-image's definitions, computed
here with scipy filters), :func:`noise_sd` in a uniform region and the
contrast-to-noise ratio :func:`cnr` of a lesion.

Methods: :func:`denoise` (gaussian, median, bilateral, nlm — medfuse's C++
kernels — or any callable, e.g. the learned denoiser of
:mod:`medfuse.nn.denoiser`) and :func:`enhance` (clahe, unsharp, window).
:func:`denoise_volume` restores a CT volume: each axial slice with one of
those methods, then each slice blended with its two neighbours along z
(weights ``z_weight``, ``1 - 2 z_weight``, ``z_weight``). Low-dose noise is
independent from slice to slice (each slice is its own reconstruction) while
the anatomy changes little over one slice step, so the blend averages noise
that the in-plane method had to leave (noise in the lesion's own spatial
frequencies). :func:`low_dose_ct` degrades a volume slice by slice.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .kernels.contrast import clahe
from .kernels.convolve import gaussian, unsharp_mask
from .kernels.denoise import nl_means
from .kernels.enhance import bilateral, median
from .kernels.histogram import window

__all__ = [
    "DENOISE_METHODS",
    "ENHANCE_METHODS",
    "MU_WATER_PER_MM",
    "cnr",
    "denoise",
    "denoise_volume",
    "enhance",
    "low_dose_ct",
    "noise_sd",
    "noisy_xray",
    "psnr",
    "ssim",
]

MU_WATER_PER_MM = 0.019  # linear attenuation of water at ~70 keV (as medfuse.data.phantoms)
DENOISE_METHODS = ("gaussian", "median", "bilateral", "nlm")
ENHANCE_METHODS = ("clahe", "unsharp", "window")


# ---- argument checks ----------------------------------------------------------


def _image(image: object, name: str = "image", ndim: int = 2) -> npt.NDArray[Any]:
    """A numeric, non-empty, finite array of ``ndim`` dimensions (2: (y, x); 3: (z, y, x))."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "uif":
        raise TypeError(f"{name} must be a numeric array; got dtype {arr.dtype}")
    if arr.ndim != ndim or arr.size == 0:
        axes = "(y, x)" if ndim == 2 else "(z, y, x)"
        raise ValueError(f"{name} must be a non-empty {ndim}D array {axes}; got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}; got {v:g}")
    return v


def _rng(seed: object) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int, a numpy Generator or None; got {seed!r}")
    return np.random.default_rng(seed)  # type: ignore[arg-type]


# ---- degradation models -----------------------------------------------------------


def low_dose_ct(
    hu: npt.ArrayLike,
    dose: float | None,
    *,
    pixel_mm: float = 1.0,
    photons: float = 1e5,
    electronic_noise: float = 5.0,
    views: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> npt.NDArray[np.float32]:
    """Reconstruct a CT slice (HU) after a scan at ``dose`` (see the module doc).

    ``hu`` is a 2D slice in HU (any real dtype, finite), or a 3D volume
    (z, y, x) whose axial slices are each reconstructed on their own (an
    axial scan: one sinogram per slice), with noise independent between
    slices, drawn from one generator slice after slice; ``pixel_mm`` its
    in-plane pixel size; ``dose`` > 0 is the fraction of the full-dose photon count
    ``photons`` (per detector bin, unattenuated), ``electronic_noise`` the
    detector's read-noise SD in counts, ``views`` the number of projection
    angles (default: ``ceil(pi / 2 * max(shape))``). ``dose=None``: the
    noise-free reconstruction (the normal-dose reference). Returns float32 HU
    of the input's shape. Requires scikit-image.
    """
    from skimage.transform import iradon, radon

    vol = np.asarray(hu)
    if vol.ndim not in (2, 3):
        raise ValueError(f"hu must be a 2D slice (y, x) or a 3D volume (z, y, x); got shape {vol.shape}")
    if vol.ndim == 3:
        vol = _image(vol, "hu", ndim=3)
        rng3 = _rng(seed) if dose is not None else None
        return np.stack([low_dose_ct(vol[k], dose, pixel_mm=pixel_mm, photons=photons,
                                     electronic_noise=electronic_noise, views=views, seed=rng3)
                         for k in range(vol.shape[0])])
    img = _image(hu, "hu").astype(np.float64)
    px = _positive(pixel_mm, "pixel_mm")
    n_photons = _positive(photons, "photons")
    e_noise = _positive(electronic_noise, "electronic_noise", allow_zero=True)
    if dose is not None:
        d = _positive(dose, "dose")
    if views is None:
        n_views = math.ceil(math.pi / 2 * max(img.shape))
    elif isinstance(views, bool) or not isinstance(views, numbers.Integral) or int(views) < 1:
        raise ValueError(f"views must be a positive integer; got {views!r}")
    else:
        n_views = int(views)
    rows, cols = img.shape
    side = max(rows, cols)
    square = np.full((side, side), -1000.0)
    y0, x0 = (side - rows) // 2, (side - cols) // 2
    square[y0 : y0 + rows, x0 : x0 + cols] = img
    mu = np.maximum(MU_WATER_PER_MM * (1.0 + square / 1000.0), 0.0) * px  # per pixel
    theta = np.arange(n_views) * (180.0 / n_views)
    sino = radon(mu, theta=theta, circle=False)
    if dose is not None:
        rng = _rng(seed)
        expected = d * n_photons * np.exp(-sino)
        counts = rng.poisson(expected).astype(np.float64)
        if e_noise > 0:
            counts += rng.normal(0.0, e_noise, size=counts.shape)
        sino = -np.log(np.maximum(counts, 1.0) / (d * n_photons))
    rec = iradon(sino, theta=theta, output_size=side, filter_name="ramp", circle=False)
    rec_hu = (rec / px / MU_WATER_PER_MM - 1.0) * 1000.0
    return rec_hu[y0 : y0 + rows, x0 : x0 + cols].astype(np.float32)


def noisy_xray(
    image: npt.ArrayLike,
    *,
    photons: float = 1000.0,
    read_noise: float = 2.0,
    blur_sigma: float = 0.0,
    seed: int | np.random.Generator | None = 0,
) -> npt.NDArray[Any]:
    """A radiograph after blur and Poisson-Gaussian quantum noise.

    The image is scaled to [0, 1] (integers by their dtype's maximum; floats
    must already lie in [0, 1]), blurred with a Gaussian of ``blur_sigma``
    pixels (0: none), and ``photons`` (> 0) at full brightness become
    ``Poisson(photons * x) + Normal(0, read_noise)`` counts, divided back by
    ``photons``. Returns the input's dtype and shape, clipped to its range.
    """
    img = _image(image)
    n = _positive(photons, "photons")
    rn = _positive(read_noise, "read_noise", allow_zero=True)
    bs = _positive(blur_sigma, "blur_sigma", allow_zero=True)
    top = float(np.iinfo(img.dtype).max) if img.dtype.kind in "ui" else 1.0
    if img.dtype.kind == "i" or (img.dtype.kind == "f" and (img.min() < 0 or img.max() > 1)):
        raise ValueError("image must be unsigned integers or floats in [0, 1] (a radiograph's intensities)")
    x = img.astype(np.float64) / top
    if bs > 0:
        x = gaussian(x, bs)
    rng = _rng(seed)
    counts = rng.poisson(np.maximum(x, 0.0) * n).astype(np.float64)
    if rn > 0:
        counts += rng.normal(0.0, rn, size=counts.shape)
    y = np.clip(counts / n, 0.0, 1.0) * top
    if img.dtype.kind == "u":
        return np.rint(y).astype(img.dtype)
    return y.astype(img.dtype)


# ---- quality metrics ---------------------------------------------------------------


def _pair(reference: object, image: object) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ref = _image(reference, "reference")
    img = _image(image, "image")
    if ref.shape != img.shape:
        raise ValueError(f"reference and image must have the same shape; got {ref.shape} and {img.shape}")
    return ref.astype(np.float64), img.astype(np.float64)


def _data_range(reference: object, data_range: float | None) -> float:
    if data_range is not None:
        return _positive(data_range, "data_range")
    dt = np.asarray(reference).dtype
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return float(info.max) - float(info.min)
    raise ValueError("data_range is required for float images (e.g. the HU window width, or 1.0)")


def psnr(reference: npt.ArrayLike, image: npt.ArrayLike, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``.

    As ``skimage.metrics.peak_signal_noise_ratio``: ``data_range`` defaults to
    the dtype's range for integers and is required for floats; identical
    images give ``inf``.
    """
    ref, img = _pair(reference, image)
    dr = _data_range(reference, data_range)
    mse = float(np.mean((ref - img) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(dr * dr / mse)


def ssim(
    reference: npt.ArrayLike,
    image: npt.ArrayLike,
    *,
    data_range: float | None = None,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
    full: bool = False,
) -> float | tuple[float, npt.NDArray[np.float64]]:
    """Mean structural similarity, as ``skimage.metrics.structural_similarity``.

    Same definitions and defaults (window 7 uniform, or Gaussian of ``sigma``
    truncated at 3.5 sigma, window ``2 int(3.5 sigma + 0.5) + 1``; sample covariance; K1, K2;
    reflect border; the mean over the image without a border of
    ``(win_size - 1) // 2``); equal to scikit-image's value to 1e-7.
    ``full=True`` also returns the SSIM map.
    """
    from scipy import ndimage

    ref, img = _pair(reference, image)
    dr = _data_range(reference, data_range)
    s = _positive(sigma, "sigma")
    if win_size is None:  # scikit-image: the Gaussian's support (11 for sigma 1.5), else 7
        win_size = 2 * int(3.5 * s + 0.5) + 1 if gaussian_weights else 7
    if isinstance(win_size, bool) or not isinstance(win_size, numbers.Integral) or win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 3; got {win_size!r}")
    if min(ref.shape) < win_size:
        raise ValueError(f"win_size {win_size} exceeds the image's shape {ref.shape}")
    c1 = (_positive(k1, "k1") * dr) ** 2
    c2 = (_positive(k2, "k2") * dr) ** 2

    def filt(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if gaussian_weights:
            return ndimage.gaussian_filter(x, sigma=s, truncate=3.5)
        return ndimage.uniform_filter(x, size=win_size)

    npix = win_size**2
    cov_norm = npix / (npix - 1) if use_sample_covariance else 1.0
    ux, uy = filt(ref), filt(img)
    vx = cov_norm * (filt(ref * ref) - ux * ux)
    vy = cov_norm * (filt(img * img) - uy * uy)
    vxy = cov_norm * (filt(ref * img) - ux * uy)
    a1, a2 = 2 * ux * uy + c1, 2 * vxy + c2
    b1, b2 = ux**2 + uy**2 + c1, vx + vy + c2
    smap = (a1 * a2) / (b1 * b2)
    pad = (win_size - 1) // 2
    mssim = float(smap[pad : smap.shape[0] - pad, pad : smap.shape[1] - pad].mean(dtype=np.float64))
    return (mssim, smap) if full else mssim


def _mask(mask: object, shape: tuple[int, ...], name: str) -> npt.NDArray[np.bool_]:
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array; got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"{name} must have the image's shape {shape}; got {m.shape}")
    if m.sum() < 2:
        raise ValueError(f"{name} must select at least 2 pixels")
    return m


def noise_sd(image: npt.ArrayLike, region: npt.ArrayLike) -> float:
    """Noise standard deviation (ddof=1) inside a uniform ``region`` (boolean mask)."""
    img = np.asarray(image)
    if img.dtype.kind not in "uif" or img.size == 0:
        raise TypeError(f"image must be a non-empty numeric array; got {img.dtype}")
    m = _mask(region, img.shape, "region")
    vals = img[m].astype(np.float64)
    if not np.isfinite(vals).all():
        raise ValueError("image contains NaN or infinity inside region")
    return float(vals.std(ddof=1))


def cnr(image: npt.ArrayLike, lesion: npt.ArrayLike, background: npt.ArrayLike) -> float:
    """Contrast-to-noise ratio ``|mean(lesion) - mean(background)| / sd(background)``."""
    img = np.asarray(image)
    if img.dtype.kind not in "uif" or img.size == 0:
        raise TypeError(f"image must be a non-empty numeric array; got {img.dtype}")
    les = _mask(lesion, img.shape, "lesion")
    bg = _mask(background, img.shape, "background")
    if (les & bg).any():
        raise ValueError("lesion and background must not overlap")
    sd = noise_sd(img, bg)
    diff = abs(float(img[les].astype(np.float64).mean()) - float(img[bg].astype(np.float64).mean()))
    return math.inf if sd == 0 else diff / sd


# ---- methods -------------------------------------------------------------------------


def _float_work(img: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], Callable[[npt.NDArray[Any]], npt.NDArray[Any]]]:
    """uint8 and float32 stay as they are; other dtypes go through float32 and back."""
    if img.dtype in (np.uint8, np.float32):
        return img, lambda y: y
    dt = img.dtype

    def back(y: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if dt.kind in "ui":
            info = np.iinfo(dt)
            return np.clip(np.rint(y), info.min, info.max).astype(dt)
        return y.astype(dt)

    return img.astype(np.float32), back


def denoise(
    image: npt.ArrayLike,
    method: str | Callable[[npt.NDArray[Any]], npt.NDArray[Any]] = "nlm",
    **params: Any,
) -> npt.NDArray[Any]:
    """Denoise a 2D image; returns the input's dtype and shape.

    ``method``:
    * ``"gaussian"`` — ``sigma`` (default 1.0 pixel), :func:`medfuse.gaussian`;
    * ``"median"`` — ``size`` (default 3), :func:`medfuse.median`;
    * ``"bilateral"`` — ``d`` (5), ``sigma_color`` (required, image units),
      ``sigma_space`` (2.0), :func:`medfuse.bilateral`;
    * ``"nlm"`` — ``h`` (required, image units), ``patch_size`` (7),
      ``search_size`` (21), ``sigma`` (0), :func:`medfuse.nl_means`;
    * a callable ``f(image) -> image`` (e.g. ``medfuse.nn.denoiser.load_denoiser()``,
      the learned DnCNN-style denoiser, which needs torch).

    Integer images other than uint8 (e.g. int16 HU, uint16 X-rays) are
    filtered in float32 and rounded back; float64 goes through float32.
    """
    img = _image(image)
    if callable(method):
        out = np.asarray(method(img))
        if out.shape != img.shape:
            raise ValueError(f"the denoiser returned shape {out.shape}; expected {img.shape}")
        return out.astype(img.dtype, copy=False)
    if method not in DENOISE_METHODS:
        raise ValueError(f"method must be one of {', '.join(DENOISE_METHODS)} or a callable; got {method!r}")
    allowed = {
        "gaussian": {"sigma"},
        "median": {"size"},
        "bilateral": {"d", "sigma_color", "sigma_space"},
        "nlm": {"h", "patch_size", "search_size", "sigma"},
    }[method]
    extra = set(params) - allowed
    if extra:
        raise TypeError(f"method {method!r} takes {', '.join(sorted(allowed))}; got {', '.join(sorted(extra))}")
    if method in ("bilateral", "nlm"):
        need = "sigma_color" if method == "bilateral" else "h"
        if need not in params:
            raise TypeError(f"method {method!r} needs {need} (the noise level in the image's units)")
    work, back = _float_work(img)
    if method == "gaussian":
        out = gaussian(work, params.get("sigma", 1.0), out_dtype=work.dtype)
    elif method == "median":
        out = median(work, params.get("size", 3))
    elif method == "bilateral":
        out = bilateral(work, params.get("d", 5), params["sigma_color"], params.get("sigma_space", 2.0))
    else:
        out = nl_means(
            work,
            params["h"],
            patch_size=params.get("patch_size", 7),
            search_size=params.get("search_size", 21),
            sigma=params.get("sigma", 0.0),
        )
    return back(out)


def denoise_volume(
    volume: npt.ArrayLike,
    method: str | Callable[[npt.NDArray[Any]], npt.NDArray[Any]] = "nlm",
    *,
    z_weight: float = 0.25,
    **params: Any,
) -> npt.NDArray[Any]:
    """Denoise a CT volume (z, y, x): each slice in-plane, then a blend along z.

    Every axial slice is denoised by :func:`denoise` with ``method`` and
    ``params`` (computed in float32), then each slice ``k`` becomes
    ``z_weight * d[k-1] + (1 - 2 * z_weight) * d[k] + z_weight * d[k+1]``
    (the end slices repeat themselves in place of the missing neighbour).
    ``z_weight`` in [0, 1/3]; 0 gives exactly the slice-by-slice result.
    Returns the input's dtype and shape (integers rounded and clipped).

    Meant for volumes whose noise is independent between slices, as in
    low-dose CT (see the module doc). With the learned denoiser
    (``load_denoiser(kind="lowdose", smooth=1.0)``) and ``z_weight=0.25`` it
    recovers more of the diagnostic AUC that low dose loses than any
    in-plane method (BENCHMARKS.md, "Does restoration help the diagnosis?").
    The blend also averages anatomy one slice step away: for slices thicker
    than the smallest structures of interest use a smaller ``z_weight``.
    """
    vol = _image(volume, "volume", ndim=3)
    if isinstance(z_weight, (bool, np.bool_)) or not isinstance(z_weight, numbers.Real):
        raise TypeError(f"z_weight must be a real number; got {z_weight!r}")
    w = float(z_weight)
    if not (0.0 <= w <= 1.0 / 3.0):
        raise ValueError(f"z_weight must be in [0, 1/3] (the neighbours never outweigh the slice); got {w:g}")
    work = vol.astype(np.float32, copy=False)
    den = np.empty(work.shape, np.float32)
    for k in range(work.shape[0]):
        den[k] = denoise(work[k], method, **params)
    if w > 0 and den.shape[0] > 1:
        # (w * d[k-1] + c * d[k]) + w * d[k+1] in place, without shifted copies of the volume (float addition
        # commutes exactly, so the sums are those of the formula)
        wf = np.float32(w)
        out = np.float32(1.0 - 2.0 * w) * den
        out[1:] += wf * den[:-1]
        out[0] += wf * den[0]
        out[:-1] += wf * den[1:]
        out[-1] += wf * den[-1]
        den = out
    if vol.dtype == np.float32:
        return den
    if vol.dtype.kind in "ui":
        info = np.iinfo(vol.dtype)
        return np.clip(np.rint(den), info.min, info.max).astype(vol.dtype)
    return den.astype(vol.dtype)


def enhance(image: npt.ArrayLike, method: str = "clahe", **params: Any) -> npt.NDArray[Any]:
    """Contrast enhancement and sharpening of a 2D image.

    * ``"clahe"`` — ``clip_limit`` (2.0), ``tile_grid`` ((8, 8)); uint8/uint16
      images (others are refused by :func:`medfuse.clahe`); same dtype out.
    * ``"unsharp"`` — ``sigma`` (1.0), ``amount`` (1.0), ``threshold`` (0);
      same dtype out, :func:`medfuse.unsharp_mask`.
    * ``"window"`` — ``center`` and ``width`` (required, e.g. HU -600/1500),
      ``out_dtype`` (uint8); :func:`medfuse.window`.
    """
    img = _image(image)
    allowed = {
        "clahe": {"clip_limit", "tile_grid"},
        "unsharp": {"sigma", "amount", "threshold"},
        "window": {"center", "width", "out_dtype"},
    }.get(method)
    if allowed is None:
        raise ValueError(f"method must be one of {', '.join(ENHANCE_METHODS)}; got {method!r}")
    extra = set(params) - allowed
    if extra:
        raise TypeError(f"method {method!r} takes {', '.join(sorted(allowed))}; got {', '.join(sorted(extra))}")
    if method == "clahe":
        return clahe(img, params.get("clip_limit", 2.0), params.get("tile_grid", (8, 8)))
    if method == "unsharp":
        return unsharp_mask(img, params.get("sigma", 1.0), params.get("amount", 1.0), threshold=params.get("threshold", 0.0))
    if "center" not in params or "width" not in params:
        raise TypeError("method 'window' needs center and width (e.g. center=-600, width=1500 for lung)")
    return window(img, params["center"], params["width"], out_dtype=params.get("out_dtype", np.uint8))
