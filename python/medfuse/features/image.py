"""Image features: a scikit-learn transformer over X-rays (2D) and CT volumes (3D).

Every number comes from the C++ kernels (``medfuse.first_order``,
``histogram``, ``canny``, ``sobel``, ``quantize``, ``glcm``,
``glcm_features``, ``filter_bank``, ``window``, ``median``, ``gaussian``,
``clahe``); this module only chains them and names the results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["FINDINGS_FEATURES", "FIRST_ORDER_FEATURES", "GLCM_FEATURES", "ImageFeatureExtractor"]

#: PyRadiomics GLCM features computed by default (all of them).
GLCM_FEATURES = (
    "Autocorrelation", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast", "Correlation",
    "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "Id", "Idm", "Idmn", "Idn", "Imc1", "Imc2",
    "InverseVariance", "JointAverage", "JointEnergy", "JointEntropy", "MCC", "MaximumProbability",
    "SumAverage", "SumEntropy", "SumSquares",
)

#: ``medfuse.first_order`` features, in its order.
FIRST_ORDER_FEATURES = (
    "Energy", "TotalEnergy", "Entropy", "Minimum", "10Percentile", "90Percentile", "Maximum", "Mean", "Median",
    "InterquartileRange", "Range", "MeanAbsoluteDeviation", "RobustMeanAbsoluteDeviation", "RootMeanSquared",
    "StandardDeviation", "Skewness", "Kurtosis", "Variance", "Uniformity",
)

_GROUPS = ("first_order", "histogram", "edges", "glcm", "filters")
#: Groups that may be asked for; "findings" (3D CT only) is not in the default ``groups``.
_ALL_GROUPS = (*_GROUPS, "findings")
#: The "findings" group's features (after the prefix ``findings_``), from medfuse.segment.
FINDINGS_FEATURES = (
    "lung_volume_ml", "cavity_count", "cavity_max_radius_mm", "cavity_max_wall_fraction", "fibrosis_total",
    "fibrosis_RU", "fibrosis_RM", "fibrosis_RL", "fibrosis_LU", "fibrosis_LM", "fibrosis_LL",
)
_ROIS = (None, "mask", "lung", "nodule")
_LAWS = ("L5", "E5", "S5", "R5", "W5")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _unwrap(item: Any, index: int) -> tuple[Any, Any, tuple[float, ...] | None]:
    """(image array or None, mask or None, spacing or None) of one input item."""
    mask = None
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"X[{index}]: a tuple item must be (image, mask); got {len(item)} elements")
        item, mask = item
    spacing = None
    if item is not None and hasattr(item, "array") and hasattr(item, "spacing"):  # medfuse.data.Volume
        spacing = tuple(float(s) for s in item.spacing)
        item = item.array
    return item, mask, spacing


def _auto_roi(img: npt.NDArray, spacing: Any, roi: str | None, index: int) -> npt.NDArray[np.bool_] | None:
    """The ROI that ``roi="lung"`` / ``"nodule"`` computes for a 3D CT with a spacing; None otherwise."""
    if roi not in ("lung", "nodule") or img.ndim != 3 or spacing is None or len(spacing) != 3:
        return None
    from .. import segment

    try:
        lungs = segment.lung_mask(img, spacing=spacing)
    except ValueError as err:
        raise ValueError(f"X[{index}]: roi={roi!r} could not segment the lungs: {err}") from None
    if roi == "nodule":
        cands = segment.nodule_candidates(img, lungs, spacing=spacing, max_candidates=1)
        if cands:
            nodule = segment.nodule_mask(img, cands[0], spacing=spacing, lung_mask=lungs)
            if nodule.any():
                return nodule
    return lungs > 0


def _findings_features(img: npt.NDArray, spacing: Any, index: int) -> list[float]:
    """The "findings" group of a 3D CT in HU: lung volume, cavities, fibrosis extent per zone.

    NaN when the CT has no spacing (a plain array) or no lungs are found.
    """
    nan = [math.nan] * len(FINDINGS_FEATURES)
    if spacing is None or len(spacing) != 3:
        return nan
    from .. import segment

    try:
        lungs = segment.lung_mask(img, spacing=spacing)
    except ValueError:
        return nan
    lung = lungs > 0
    cands = segment.cavity_candidates(img, lung, spacing=spacing)
    ext = segment.fibrosis_extent(img, lung, spacing=spacing)
    volume_ml = float(np.count_nonzero(lung)) * float(np.prod(spacing)) / 1000.0
    return [
        volume_ml,
        float(len(cands)),
        max((c.radius_mm for c in cands), default=0.0),
        max((c.wall_fraction for c in cands), default=0.0),
        ext["total"],
        *(ext[z] for z in segment.ZONES),
    ]


def _reduce_2d(
    img: npt.NDArray, mask: npt.NDArray[np.bool_] | None, spacing: Any, max_side: int
) -> tuple[npt.NDArray, npt.NDArray[np.bool_] | None, Any]:
    """Block means of f x f pixels, f the smallest integer that brings the longer side within ``max_side``."""
    f = -(-max(img.shape) // max_side)
    if f <= 1:
        return img, mask, spacing
    h, w = img.shape[0] // f, img.shape[1] // f
    if h < 1 or w < 1:
        raise ValueError(f"max_side={max_side} would reduce an image of shape {img.shape} to nothing")

    def blocks(a: npt.NDArray) -> npt.NDArray[np.float64]:
        mean: npt.NDArray[np.float64] = a[: h * f, : w * f].reshape(h, f, w, f).mean(axis=(1, 3), dtype=np.float64)
        return mean

    small = blocks(img)
    out = np.rint(small).astype(img.dtype) if img.dtype.kind in "iu" else small.astype(img.dtype)
    m = None
    if mask is not None:
        m = blocks(mask) >= 0.5
        if not m.any():  # a tiny ROI: keep the block that holds most of it
            m.flat[int(np.argmax(blocks(mask)))] = True
    sp = tuple(float(s) * f for s in spacing) if spacing is not None and len(spacing) == 2 else spacing
    return np.ascontiguousarray(out), m, sp


def _as_items(X: Any) -> list[Any]:
    if isinstance(X, (str, bytes)):
        raise TypeError("X must be a sequence of images (ndarrays or medfuse.data.Volume); got a str")
    if isinstance(X, np.ndarray):
        if X.dtype == object:
            return list(X.ravel()) if X.ndim == 1 else _refuse_array(X)
        if X.ndim in (3, 4):  # a stack of 2D images or of 3D volumes
            return list(X)
        return _refuse_array(X)
    if hasattr(X, "iloc"):  # a pandas Series / one-column DataFrame of images
        if getattr(X, "ndim", 1) == 2:
            if X.shape[1] != 1:
                raise ValueError(f"X must be one column of images; got a DataFrame of shape {X.shape}")
            X = X.iloc[:, 0]
        return list(X)
    try:
        items = list(X)
    except TypeError:
        raise TypeError(f"X must be a sequence of images (ndarrays or medfuse.data.Volume); got {type(X).__name__}") from None
    return items


def _refuse_array(X: npt.NDArray) -> list[Any]:
    raise ValueError(
        f"X must be a sequence of 2D images or 3D volumes (a list, or an array of shape (n, h, w) or "
        f"(n, d, h, w)); got an array of shape {X.shape}"
    )


class ImageFeatureExtractor(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Radiomics-style features of 2D X-rays or 3D CT volumes, through the C++ kernels.

    Input ``X``: a sequence of images, all 2D (y, x) or all 3D (z, y, x):
    ndarrays (uint8, uint16, int16, float32, float64) or ``medfuse.data.Volume``
    (its ``spacing`` gives the voxel volume and Canny's anisotropy); an
    array of shape (n, h, w) or (n, d, h, w) is a stack. An item may be an
    ``(image, mask)`` tuple, or masks may be passed to :meth:`transform` as
    ``masks=`` (a bool ROI of the image's shape per item, or None for the
    whole image); features are then computed over the ROI only. An item
    ``None`` (missing image) gives a row of NaN.

    Pipeline per image
    ------------------
    1. working image: ``window`` = (center, width) → ``medfuse.window`` onto
       uint8 (e.g. (-600, 1500) lung window for CT in HU); "auto" uses the
       image's (ROI's) min and max; None keeps the image as it is (it must
       then be uint8 or uint16 for CLAHE and GLCM quantisation works on any).
    2. ``denoise``: None, "median" (``medfuse.median``, ``median_size``) or
       "gaussian" (``medfuse.gaussian``, ``gaussian_sigma`` voxels, result
       rounded back to the working dtype).
    3. ``clahe``: ``medfuse.clahe(work, clahe_clip, clahe_grid)`` (2D only).

    Features (``groups`` selects among them), in this order:

    * ``first_order``: ``medfuse.first_order`` of the ORIGINAL intensities
      (HU for CT) in the ROI with ``bin_width``: ``fo_<Name>``.
    * ``histogram``: ``medfuse.histogram`` of the working image in the ROI,
      ``hist_bins`` equal bins over ``hist_range`` (default (0, 255) for a
      windowed uint8 image, else the ROI's range), as fractions: ``hist_<i>``.
    * ``edges``: ``medfuse.canny(work, *canny_thresholds)``; ``edge_density``
      = fraction of ROI voxels that are edges; ``edge_orient_<k>`` =
      fraction of edge voxels whose in-plane gradient orientation
      ``atan2(dy, dx) mod pi`` (``medfuse.sobel``) falls in bin k of
      ``n_orientations`` equal bins over [0, pi) (binned with
      ``medfuse.histogram``); all zero when there is no edge.
    * ``glcm``: ``medfuse.quantize(work, levels=glcm_levels, mask=roi)`` →
      ``medfuse.glcm(q, glcm_distances, None, glcm_levels + 1, mask=roi,
      symmetric=True)`` (4 angles in 2D, 13 directions in 3D) →
      ``medfuse.glcm_features`` (PyRadiomics definitions, averaged over
      directions and distances): ``glcm_<Name>``.
    * ``filters``: ``medfuse.filter_bank`` of the working image (as float32):
      LoG at ``log_sigmas``, Laws with ``laws_vectors`` (window
      ``laws_window``), and Gabor (2D only) at ``gabor_frequencies`` x
      ``gabor_orientations``; per response the ROI mean of the squared
      response (``<name>_energy``; Laws maps are already local energies,
      so their feature is the ROI mean, ``laws_<name>_mean``).
    * ``findings`` (3D CT in HU only; not in the default ``groups``): the
      disease findings of the whole scan, whatever the ROI, through
      :mod:`medfuse.segment`: ``findings_lung_volume_ml`` (``lung_mask``),
      ``findings_cavity_count``, ``findings_cavity_max_radius_mm`` and
      ``findings_cavity_max_wall_fraction`` (``cavity_candidates``; 0 when
      none), ``findings_fibrosis_total`` and ``findings_fibrosis_<zone>``
      for the zones RU, RM, RL, LU, LM, LL (``fibrosis_extent``). NaN for a
      CT without a spacing or without lungs. 2D images get no such
      features.

    ``roi``: None or "mask" (default) uses the masks given (else the whole
    image). "lung" and "nodule" compute the ROI of each 3D CT that has a
    spacing (a ``medfuse.data.Volume``) and no mask given: "lung" =
    ``medfuse.segment.lung_mask`` (both lungs), "nodule" = the
    ``medfuse.segment.nodule_mask`` of the top ``nodule_candidates``
    candidate, or the lung mask when no candidate (or an empty nodule mask)
    is found. 2D images, arrays without a spacing and items with a mask are
    unaffected.

    ``max_side``: None (default) or an integer >= 8: a 2D image whose longer
    side exceeds it is first reduced by the smallest integer factor f that
    brings it within (the mean of each f x f block; rows and columns beyond
    a multiple of f are dropped; integer images are rounded back to their
    dtype; a mask keeps the blocks it covers at least half; a spacing is
    multiplied by f). A 2048 x 2048 radiograph costs ~100x a 200 x 200 one
    and its texture at full resolution is mostly quantum noise. 3D volumes
    are unaffected.

    ``fit`` learns nothing from the data: it validates X and records
    ``n_dims_`` (2 or 3) which fixes the feature names (Gabor is 2D only).
    Output: float64 (n_images, n_features); ``set_output(transform="pandas")``
    gives a DataFrame with ``get_feature_names_out()`` as columns.
    """

    def __init__(
        self,
        *,
        window: Any = "auto",
        denoise: str | None = None,
        median_size: int = 3,
        gaussian_sigma: float = 1.0,
        clahe: bool = False,
        clahe_clip: float = 2.0,
        clahe_grid: tuple[int, int] = (8, 8),
        groups: Sequence[str] = _GROUPS,
        bin_width: float = 25.0,
        hist_bins: int = 16,
        hist_range: tuple[float, float] | None = None,
        canny_thresholds: tuple[float, float] = (40.0, 100.0),
        n_orientations: int = 8,
        glcm_levels: int = 16,
        glcm_distances: Sequence[int] = (1,),
        glcm_features: Sequence[str] = GLCM_FEATURES,
        log_sigmas: Sequence[float] = (1.0, 2.0, 4.0),
        laws_vectors: Sequence[str] = ("L5", "E5"),
        laws_window: int = 7,
        gabor_frequencies: Sequence[float] = (0.25, 0.4),
        gabor_orientations: int = 4,
        roi: str | None = None,
        max_side: int | None = None,
    ) -> None:
        self.window = window
        self.denoise = denoise
        self.median_size = median_size
        self.gaussian_sigma = gaussian_sigma
        self.clahe = clahe
        self.clahe_clip = clahe_clip
        self.clahe_grid = clahe_grid
        self.groups = groups
        self.bin_width = bin_width
        self.hist_bins = hist_bins
        self.hist_range = hist_range
        self.canny_thresholds = canny_thresholds
        self.n_orientations = n_orientations
        self.glcm_levels = glcm_levels
        self.glcm_distances = glcm_distances
        self.glcm_features = glcm_features
        self.log_sigmas = log_sigmas
        self.laws_vectors = laws_vectors
        self.laws_window = laws_window
        self.gabor_frequencies = gabor_frequencies
        self.gabor_orientations = gabor_orientations
        self.roi = roi
        self.max_side = max_side

    # ------------------------------------------------------------------ sklearn API
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags

    def _check_params(self) -> None:
        w = self.window
        if not (w is None or (isinstance(w, str) and w == "auto")):
            if not (isinstance(w, (tuple, list)) and len(w) == 2):
                raise ValueError(f"window must be None, 'auto' or (center, width); got {w!r}")
            if not float(w[1]) > 0:
                raise ValueError(f"window width must be > 0; got {w[1]!r}")
        if self.denoise not in (None, "median", "gaussian"):
            raise ValueError(f"denoise must be None, 'median' or 'gaussian'; got {self.denoise!r}")
        if isinstance(self.groups, str):
            raise TypeError(f"groups must be a sequence of group names, not a str; got {self.groups!r}")
        bad = [g for g in self.groups if g not in _ALL_GROUPS]
        if bad or len(self.groups) == 0:
            raise ValueError(f"groups must be a non-empty subset of {_ALL_GROUPS}; got {list(self.groups)!r}")
        for name in ("hist_bins", "n_orientations", "glcm_levels", "gabor_orientations"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"{name} must be a positive integer; got {val!r}")
        if not (isinstance(self.canny_thresholds, (tuple, list)) and len(self.canny_thresholds) == 2):
            raise ValueError(f"canny_thresholds must be (low, high); got {self.canny_thresholds!r}")
        if self.roi not in _ROIS:
            raise ValueError(f"roi must be one of {_ROIS}; got {self.roi!r}")
        ms = self.max_side
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, np.integer)) or ms < 8):
            raise ValueError(f"max_side must be None or an integer >= 8; got {ms!r}")
        bad_laws = [v for v in self.laws_vectors if v not in _LAWS]
        if bad_laws or isinstance(self.laws_vectors, str):
            raise ValueError(f"laws_vectors must be a sequence drawn from {_LAWS}; got {self.laws_vectors!r}")

    def _items(self, X: Any, masks: Any) -> list[tuple[Any, Any, Any]]:
        items = _as_items(X)
        if not items:
            raise ValueError("X is empty: found 0 images; at least 1 is required")
        if masks is not None:
            masks = list(masks)
            if len(masks) != len(items):
                raise ValueError(f"masks has {len(masks)} entries for {len(items)} images")
        out = []
        for i, it in enumerate(items):
            img, mask, spacing = _unwrap(it, i)
            if masks is not None and masks[i] is not None:
                if mask is not None:
                    raise ValueError(f"X[{i}] is an (image, mask) tuple and masks[{i}] is also given; pass one")
                mask = masks[i]
            if img is not None:
                img = self._check_image(img, i)
                if mask is not None:
                    mask = self._check_mask(mask, img.shape, i)
            out.append((img, mask, spacing))
        return out

    @staticmethod
    def _check_image(img: Any, i: int) -> npt.NDArray:
        if not isinstance(img, np.ndarray):
            if isinstance(img, (str, bytes)) or np.isscalar(img):
                raise TypeError(f"X[{i}] must be an image ndarray or a medfuse.data.Volume; got {type(img).__name__}")
            img = np.asarray(img)
        if img.dtype == np.bool_ or img.dtype.kind not in "iuf":
            raise TypeError(f"X[{i}] must be a numeric image (uint8, uint16, int16, float32, float64); got {img.dtype}")
        if img.ndim not in (2, 3):
            raise ValueError(f"X[{i}] must be a 2D image (y, x) or a 3D volume (z, y, x); got shape {img.shape}")
        if min(img.shape) < 1:
            raise ValueError(f"X[{i}] is empty (shape {img.shape})")
        if img.dtype.kind == "f" and not np.isfinite(img).all():
            raise ValueError(f"X[{i}] contains NaN or infinite values")
        if img.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
            if img.dtype.kind == "f":
                img = img.astype(np.float64)
            elif img.min() >= np.iinfo(np.int16).min and img.max() <= np.iinfo(np.int16).max:
                img = img.astype(np.int16)
            else:
                img = img.astype(np.float64)
        return np.ascontiguousarray(img)

    @staticmethod
    def _check_mask(mask: Any, shape: tuple[int, ...], i: int) -> npt.NDArray[np.bool_]:
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            if m.dtype.kind not in "iu" or not np.isin(m, (0, 1)).all():
                raise TypeError(f"masks[{i}] must be a boolean ROI (or 0/1 integers); got dtype {m.dtype}")
            m = m.astype(bool)
        if m.shape != shape:
            raise ValueError(f"masks[{i}] has shape {m.shape}; image {i} has shape {shape}")
        if not m.any():
            raise ValueError(f"masks[{i}] selects no voxel; an ROI must select at least one")
        return np.ascontiguousarray(m)

    def fit(self, X: Any, y: Any = None, *, masks: Any = None) -> ImageFeatureExtractor:
        """Validate X and record ``n_dims_`` (no statistics are learned)."""
        self._check_params()
        items = self._items(X, masks)
        ndims = {img.ndim for img, _m, _s in items if img is not None}
        if not ndims:
            raise ValueError("X has no image (every item is None); cannot tell 2D from 3D")
        if len(ndims) > 1:
            raise ValueError("X mixes 2D images and 3D volumes; use one extractor per modality")
        self.n_dims_ = ndims.pop()
        if self.clahe and self.n_dims_ != 2:
            raise ValueError("clahe applies to 2D images (X-rays) only; got 3D volumes")
        self.feature_names_ = np.asarray(self._names(self.n_dims_), dtype=object)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def transform(self, X: Any, *, masks: Any = None) -> npt.NDArray[np.float64]:
        """Features of each image: float64 (n_images, n_features); None items give NaN rows."""
        check_is_fitted(self, "n_dims_")
        self._check_params()
        items = self._items(X, masks)
        out = np.full((len(items), self.n_features_out_), np.nan, dtype=np.float64)
        for i, (img, mask, spacing) in enumerate(items):
            if img is None:
                continue
            if img.ndim != self.n_dims_:
                raise ValueError(f"X[{i}] is {img.ndim}D; this extractor was fitted on {self.n_dims_}D images")
            if img.ndim == 2 and self.max_side is not None:
                img, mask, spacing = _reduce_2d(img, mask, spacing, int(self.max_side))
            findings: list[float] = []
            if "findings" in self.groups and img.ndim == 3:
                findings = _findings_features(img, spacing, i)
            if mask is None:
                mask = _auto_roi(img, spacing, self.roi, i)
            out[i] = np.concatenate([self._features(img, mask, spacing), findings]) if findings else self._features(
                img, mask, spacing
            )
        return out

    def fit_transform(self, X: Any, y: Any = None, *, masks: Any = None) -> Any:
        return self.fit(X, y, masks=masks).transform(X, masks=masks)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        check_is_fitted(self, "n_dims_")
        return self.feature_names_.copy()

    # ------------------------------------------------------------------ features
    def _names(self, ndim: int) -> list[str]:
        names: list[str] = []
        g = set(self.groups)
        if "first_order" in g:
            names += [f"fo_{n}" for n in FIRST_ORDER_FEATURES]
        if "histogram" in g:
            names += [f"hist_{i:02d}" for i in range(self.hist_bins)]
        if "edges" in g:
            names += ["edge_density"] + [f"edge_orient_{k}" for k in range(self.n_orientations)]
        if "glcm" in g:
            names += [f"glcm_{n}" for n in self.glcm_features]
        if "filters" in g:
            names += [f"{n}_energy" for n in self._log_names()]
            names += [f"laws_{a}{b}{c}_mean" if ndim == 3 else f"laws_{a}{b}_mean"
                      for a, b, c in self._laws_triples(ndim)]
            if ndim == 2:
                names += [f"gabor_f{_fmt(f)}_t{k}_energy" for f in self.gabor_frequencies
                          for k in range(self.gabor_orientations)]
        if "findings" in g and ndim == 3:
            names += [f"findings_{n}" for n in FINDINGS_FEATURES]
        return names

    def _log_names(self) -> list[str]:
        return [f"log_s{_fmt(float(s))}" for s in self.log_sigmas]

    def _laws_triples(self, ndim: int) -> list[tuple[str, str, str]]:
        vs = list(self.laws_vectors)
        if ndim == 2:
            return [(a, b, "") for a in vs for b in vs]
        return [(a, b, c) for a in vs for b in vs for c in vs]

    def working_image(self, image: Any, mask: Any = None) -> npt.NDArray:
        """The preprocessed image the texture, edge and filter features are computed on."""
        import medfuse as mf

        img = self._check_image(image, 0)
        m = None if mask is None else self._check_mask(mask, img.shape, 0)
        if img.ndim == 2 and self.max_side is not None:
            img, m, _ = _reduce_2d(img, m, None, int(self.max_side))
        return self._work(mf, img, m)

    def _work(self, mf: Any, img: npt.NDArray, m: npt.NDArray[np.bool_] | None) -> npt.NDArray:
        w = self.window
        work = img
        if isinstance(w, str):  # "auto": the ROI's range onto uint8
            vals = img[m] if m is not None else img
            lo, hi = float(vals.min()), float(vals.max())
            width = hi - lo if hi > lo else 1.0
            work = mf.window(img, lo + width / 2.0, width, out_dtype=np.uint8)
        elif w is not None:
            work = mf.window(img, float(w[0]), float(w[1]), out_dtype=np.uint8)
        if self.denoise == "median":
            if work.dtype == np.float64:
                work = work.astype(np.float32)
            work = mf.median(work, int(self.median_size))
        elif self.denoise == "gaussian":
            work = mf.gaussian(work, float(self.gaussian_sigma), out_dtype=work.dtype)
        if self.clahe:
            if work.ndim != 2:
                raise ValueError("clahe applies to 2D images (X-rays) only")
            if work.dtype not in (np.uint8, np.uint16):
                raise ValueError("clahe needs a uint8/uint16 working image: set window= or pass uint8/uint16 images")
            work = mf.clahe(work, float(self.clahe_clip), tuple(self.clahe_grid))
        return work

    #: Crop to the ROI's bounding box (plus the filters' reach) before computing; see _crop_box.
    _crop_to_roi = True

    def _support_radius(self, ndim: int) -> int:
        """Voxels a working-image feature at one voxel can depend on, in each direction.

        Denoise radius + the largest of: LoG (truncate 4), Laws (5-tap vector +
        window), Gabor (3 standard deviations, as the kernel), Canny (its
        Gaussian/Sobel neighbourhood plus 8 voxels of hysteresis reach).
        """
        pre = 0
        if self.denoise == "median":
            pre = int(self.median_size) // 2
        elif self.denoise == "gaussian":
            pre = int(4.0 * float(self.gaussian_sigma) + 0.5)
        reach = 2 + 8  # Canny: Sobel + hysteresis slack
        if len(self.log_sigmas):
            reach = max(reach, int(4.0 * max(float(s) for s in self.log_sigmas) + 0.5) + 1)
        if len(self.laws_vectors):
            reach = max(reach, 2 + int(self.laws_window) // 2 + 1)
        if ndim == 2 and len(self.gabor_frequencies):
            b = 2.0
            sig = math.sqrt(math.log(2) / 2) / math.pi * (b + 1) / (b - 1) / min(float(f) for f in self.gabor_frequencies)
            reach = max(reach, math.ceil(3.0 * sig) + 1)
        return pre + reach

    def _crop_box(self, m: npt.NDArray[np.bool_]) -> tuple[slice, ...] | None:
        """Bounding box of the ROI grown by the support radius; None when cropping saves little.

        Every feature is computed on the ROI only, and each ROI voxel's
        working-image value depends on at most ``_support_radius`` voxels
        around it, so the numbers are those of the whole image (the
        intensity window "auto" uses ROI values, which the crop keeps).
        CLAHE works on tiles of the whole image and is never cropped.
        """
        if self.clahe or not self._crop_to_roi:
            return None
        r = self._support_radius(m.ndim)
        box = []
        for ax in range(m.ndim):
            other = tuple(a for a in range(m.ndim) if a != ax)
            idx = np.flatnonzero(m.any(axis=other))
            box.append(slice(max(0, int(idx[0]) - r), min(m.shape[ax], int(idx[-1]) + r + 1)))
        size = int(np.prod([b.stop - b.start for b in box]))
        return tuple(box) if size < 0.7 * m.size else None

    def _features(self, img: npt.NDArray, m: npt.NDArray[np.bool_] | None, spacing: Any) -> npt.NDArray:
        import medfuse as mf

        if m is not None:
            box = self._crop_box(m)
            if box is not None:
                img, m = np.ascontiguousarray(img[box]), np.ascontiguousarray(m[box])
        g = set(self.groups)
        vals: list[float] = []
        n_roi = int(m.sum()) if m is not None else img.size
        if "first_order" in g:
            vv = float(np.prod(spacing)) if spacing is not None and len(spacing) == img.ndim else 1.0
            fo = mf.first_order(img, m, bin_width=float(self.bin_width), voxel_volume=vv)
            vals += [fo[n] for n in FIRST_ORDER_FEATURES]
        if not g & set(_GROUPS):
            return np.zeros(0, dtype=np.float64)
        need_work = bool(g & {"histogram", "edges", "glcm", "filters"})
        work = self._work(mf, img, m) if need_work else img
        if "histogram" in g:
            rng = self.hist_range
            if rng is None and work.dtype == np.uint8 and self.window is not None:
                rng = (0.0, 255.0)
            counts, _edges = mf.histogram(work, int(self.hist_bins), rng, mask=m)
            vals += list(counts.astype(np.float64) / n_roi)
        if "edges" in g:
            vals += self._edge_features(mf, work, m, n_roi, spacing)
        if "glcm" in g:
            vals += self._glcm_features(mf, work, m)
        if "filters" in g:
            vals += self._filter_features(mf, work, m)
        return np.asarray(vals, dtype=np.float64)

    def _edge_features(self, mf: Any, work: npt.NDArray, m: Any, n_roi: int, spacing: Any) -> list[float]:
        low, high = (float(t) for t in self.canny_thresholds)
        sp = spacing if spacing is not None and len(spacing) == work.ndim else None
        edges = mf.canny(work, low, high, spacing=sp) > 0
        sel = edges if m is None else (edges & m)
        n_edges = int(sel.sum())
        out = [n_edges / n_roi]
        if n_edges == 0:
            return out + [0.0] * int(self.n_orientations)
        grads = mf.sobel(work)
        gy, gx = grads[-2][sel].astype(np.float64), grads[-1][sel].astype(np.float64)
        theta = np.mod(np.arctan2(gy, gx), np.pi)
        theta[theta >= np.pi] = 0.0  # mod can round up to pi
        counts, _e = mf.histogram(theta, int(self.n_orientations), (0.0, math.pi))
        return out + list(counts.astype(np.float64) / n_edges)

    def _glcm_features(self, mf: Any, work: npt.NDArray, m: Any) -> list[float]:
        L = int(self.glcm_levels)
        q = mf.quantize(work, levels=L, mask=m)
        P = mf.glcm(q, list(self.glcm_distances), None, L + 1, mask=m, symmetric=True)
        feats = mf.glcm_features(P, features=list(self.glcm_features))
        return [float(feats[n]) for n in self.glcm_features]

    def _filter_features(self, mf: Any, work: npt.NDArray, m: Any) -> list[float]:
        src = work if work.dtype in (np.float32, np.float64) else work.astype(np.float32)
        out: list[float] = []

        def roi_mean(stack: npt.NDArray, square: bool) -> list[float]:
            res = []
            for r in stack:
                v = r[m] if m is not None else r.ravel()
                v64 = v.astype(np.float64)
                res.append(float(np.dot(v64, v64) / v64.size) if square else float(v64.mean()))
            return res

        if len(self.log_sigmas):
            stack, _n = mf.filter_bank(src, kind="log", sigmas=[float(s) for s in self.log_sigmas])
            out += roi_mean(stack, True)
        if len(self.laws_vectors):
            stack, _n = mf.filter_bank(src, kind="laws", laws_vectors=list(self.laws_vectors),
                                       laws_window=int(self.laws_window))
            out += roi_mean(stack, False)
        if work.ndim == 2 and len(self.gabor_frequencies):
            stack, _n = mf.filter_bank(src, kind="gabor", frequencies=[float(f) for f in self.gabor_frequencies],
                                       orientations=int(self.gabor_orientations))
            out += roi_mean(stack, True)
        return out
