"""Texture: gray-level co-occurrence matrices (GLCM) and their features (C++ kernels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _texture_plan as tp
from . import _validate as v
from ._ext import core as _core
from ._threads import get_num_threads

__all__ = ["glcm", "glcm_features"]





def glcm(
    image: npt.ArrayLike,
    distances: Sequence[float] | npt.ArrayLike,
    angles: Sequence[float] | npt.ArrayLike | None,
    levels: int | None,
    *,
    mask: npt.ArrayLike | None = None,
    symmetric: bool = False,
    normed: bool = False,
) -> npt.NDArray:
    """Gray-level co-occurrence matrices of a 2D image or a 3D volume.

    Parameters
    ----------
    image : 2D (y, x) or 3D (z, y, x) integer array
        uint8, uint16, uint32, uint64, int8, int16, int32 or int64, any
        strides and byte order. Values must lie in ``[0, levels)`` wherever
        they are counted (everywhere, or inside ``mask``); otherwise a
        ValueError names how many do not.
    distances : 1D sequence of numbers >= 0
        Pair distances. With angles in radians (2D) any finite value works
        as in scikit-image; with direction vectors they must be integers.
    angles : 1D sequence of radians (2D only), (n, ndim) integer array of direction vectors, or None
        * radians (2D, scikit-image's convention): the neighbour of pixel
          (r, c) is (r + round(sin(a) d), c + round(cos(a) d)), rounding
          halves away from zero exactly as ``skimage.feature.graycomatrix``
          (angle 0 is the pixel to the right, pi/2 the pixel below).
        * vectors: offsets ``d * v`` for each distance d and vector v,
          given as (dy, dx) in 2D or (dz, dy, dx) in 3D.
        * None: 2D ``[0, pi/4, pi/2, 3pi/4]``; 3D the 13 unique directions
          of the 26-neighbourhood, ``(0,0,1) (0,1,1) (0,1,0) (0,1,-1)
          (1,0,0) (1,0,1) (1,0,-1) (1,1,0) (1,-1,0) (1,1,1) (1,1,-1)
          (1,-1,1) (1,-1,-1)`` (the first four are the 2D default angles, so a
          volume of depth 1 gives the 2D matrices there at distance 1; at
          distance d vectors scale exactly, d * v, while radians round:
          pi/4 at d = 2 is (1, 1) in scikit-image). PyRadiomics uses the same
          13 directions at distance 1.
    levels : int >= 1, or None for uint8/int8 images (then 256)
        The matrices are ``levels x levels`` (at most 65536 levels).
    mask : bool array of the image's shape, optional
        A pair counts only when both voxels are in the mask. Must select at
        least one voxel.
    symmetric : bool
        Count (j, i) whenever (i, j) is counted: ``P + P.T`` per offset.
    normed : bool
        Divide each matrix by its sum (an all-zero matrix stays zero).

    Returns
    -------
    P : ndarray of shape (levels, levels, n_distances, n_angles)
        ``P[i, j, d, a]`` counts voxels of value i whose neighbour at offset
        (d, a) has value j: uint32, or float64 when ``normed``. For 2D input
        with angles in radians this is identical to
        ``skimage.feature.graycomatrix(image, distances, angles, levels,
        symmetric, normed)``. Results do not depend on the thread count.
    """
    plan = tp.plan_glcm(image, distances, angles, levels, mask, symmetric, normed)
    v.check_alloc((8 if plan.normed else 4) * plan.levels**2 * plan.n_distances * plan.n_angles, f"glcm with levels={plan.levels}")
    fn = getattr(_core(), "glcm_" + v.core_suffix(plan.image.dtype))
    out = fn(plan.image, plan.mask, plan.levels, plan.offsets, plan.symmetric, plan.normed, get_num_threads())
    return out.reshape(plan.levels, plan.levels, plan.n_distances, plan.n_angles)


def glcm_features(
    P: npt.ArrayLike, *, features: str | Sequence[str] | None = None
) -> dict[str, Any]:
    """Texture features of co-occurrence matrices ``P`` (levels, levels, n_distances, n_angles).

    ``P`` holds counts or fractions (any non-negative numeric dtype, e.g.
    the output of :func:`glcm`); each matrix ``P[:, :, d, a]`` is normalised
    to sum to 1 first.

    Returns a dict, name -> value, for the names in ``features`` (default:
    all). Two families:

    * scikit-image ``graycoprops`` properties, one value per matrix — an
      ndarray of shape (n_distances, n_angles), equal to
      ``skimage.feature.graycoprops(P, name)``: ``contrast``,
      ``dissimilarity``, ``homogeneity``, ``ASM``, ``energy``,
      ``correlation`` (1 where a standard deviation is < 1e-15), ``mean``,
      ``variance``, ``std``, ``entropy`` (natural log).
    * PyRadiomics GLCM features, one float each, computed per matrix by
      PyRadiomics' documented definitions (log2, eps = numpy.spacing(1))
      and averaged over the non-empty matrices (NaN-skipping mean, as
      PyRadiomics): ``Autocorrelation``, ``ClusterProminence``,
      ``ClusterShade``, ``ClusterTendency``, ``Contrast``, ``Correlation``,
      ``DifferenceAverage``, ``DifferenceEntropy``, ``DifferenceVariance``,
      ``Id``, ``Idm``, ``Idmn``, ``Idn``, ``Imc1``, ``Imc2``,
      ``InverseVariance``, ``JointAverage``, ``JointEnergy``,
      ``JointEntropy``, ``MCC``, ``MaximumProbability``, ``SumAverage``,
      ``SumEntropy``, ``SumSquares``. The gray level of row i is i, and
      ``Ng`` (in Idmn, Idn) is the largest level with a non-zero row or
      column; MCC uses the levels with a non-zero row or column. With
      ``glcm(q, ..., symmetric=True, mask=roi)`` on an image discretised as
      PyRadiomics does (levels from 1), the values equal PyRadiomics'
      ``RadiomicsGLCM`` (default settings, distance 1, 13 directions in
      3D). A level present in the ROI only in voxels without any neighbour
      in the ROI is invisible in ``P`` (PyRadiomics still counts it in Ng).
      All matrices empty: every PyRadiomics feature is NaN.

    MCC needs eigenvalues (PyRadiomics: numpy.linalg.eigvals of a
    non-symmetric Q). Q is a tiny perturbation of a matrix similar to a
    symmetric one S, so MCC comes from Lanczos iterations on S (products
    with vectors only) plus a first-order correction for the perturbation,
    taken only when a certificate (residual bounds on the Ritz pairs, a bound
    on the eigenvalues Lanczos does not see, Kato's bound on the neglected
    terms) proves it within 1e-13 of the exact value; otherwise LAPACK's
    symmetric solver plus a second-order correction under the same kind of
    proof; otherwise (e.g. a second eigenvalue near 0, or equal to the
    third) eigvals as PyRadiomics. Everything else is computed in C++.
    """
    plan = tp.plan_features(P, features)
    core = _core()
    fn = core.glcm_features_u32 if plan.P.dtype == np.uint32 else core.glcm_features_f64
    ski, rad, totals, present = fn(
        plan.P, plan.want_skimage, plan.want_radiomics, "entropy" in plan.names, get_num_threads()
    )
    mcc_value = None
    if "MCC" in plan.names:
        counts, sums = _present_counts(plan.P, present, totals)
        mcc_value = tp.mcc(counts, get_num_threads(), totals=sums)
    return tp.assemble(plan.names, plan.n_distances, plan.n_angles, ski, rad, totals, mcc_value)


def _present_counts(
    P3: npt.NDArray, present: npt.NDArray[np.bool_], totals: npt.NDArray
) -> tuple[npt.NDArray, npt.NDArray[np.float64]]:
    """(n_nonempty, G, G) matrices over the present levels (P3's dtype) and their sums."""
    idx = np.flatnonzero(present)
    keep = np.flatnonzero(totals > 0)
    stack = P3.transpose(2, 0, 1)
    stack = np.ascontiguousarray(stack if len(keep) == P3.shape[2] else stack[keep])
    # Two one-axis gathers: several times faster than one P3[np.ix_(...)] on a 3D array.
    return np.take(np.take(stack, idx, axis=1), idx, axis=2), np.asarray(totals, dtype=np.float64)[keep]


def _present_submatrices(P3: npt.NDArray, present: npt.NDArray[np.bool_], totals: npt.NDArray) -> npt.NDArray:
    """(n_nonempty, G, G) float64 matrices over the present levels, each normalised."""
    sub, sums = _present_counts(P3, present, totals)
    return np.divide(sub, sums[:, None, None], dtype=np.float64)
