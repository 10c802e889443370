"""NumPy twins of ``medfuse.glcm`` and ``medfuse.glcm_features``.

Same signatures, same refusals (shared checks in ``medfuse.kernels._texture_plan``).
Written for clarity: co-occurrences by ``numpy.bincount`` over shifted views,
features by the formulas as written (graycoprops weights over the full
matrix; PyRadiomics' p_x, p_y, p_{x+y}, p_{x-y} and entropies; MCC's Q by an
explicit sum over k, as in PyRadiomics' source).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..kernels import _texture_plan as tp

__all__ = ["glcm", "glcm_features"]

EPS = tp.EPS


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
    """Twin of :func:`medfuse.glcm`."""
    plan = tp.plan_glcm(image, distances, angles, levels, mask, symmetric, normed)
    img, L = plan.image, plan.levels
    counted = img if plan.mask is None else img[plan.mask]
    bad = int(np.count_nonzero((counted < 0) | (counted >= L)))
    if bad:
        raise ValueError(tp.out_of_range_message(bad, L))
    m = np.ones(img.shape, dtype=bool) if plan.mask is None else plan.mask
    n = len(plan.offsets)
    P = np.zeros((L, L, n), dtype=np.uint32)
    for k, off in enumerate(plan.offsets):
        src, dst = [], []
        for o, size in zip(off, img.shape):
            o = int(o)
            src.append(slice(max(0, -o), max(0, min(size, size - o))))
            dst.append(slice(max(0, o), max(0, min(size, size + o))))
        a, b = img[tuple(src)], img[tuple(dst)]
        both = m[tuple(src)] & m[tuple(dst)]
        pair = a[both].astype(np.int64) * L + b[both].astype(np.int64)
        P[:, :, k] = np.bincount(pair, minlength=L * L).reshape(L, L)
    if plan.symmetric:
        P = P + P.transpose(1, 0, 2)
    P4 = P.reshape(L, L, plan.n_distances, plan.n_angles)
    if plan.normed:
        Pf = P4.astype(np.float64)
        sums = Pf.sum(axis=(0, 1), keepdims=True)
        sums[sums == 0] = 1
        return Pf / sums
    return P4


def _skimage_props(p: npt.NDArray[np.float64]) -> list[float]:
    """graycoprops' definitions on one normalised matrix p (levels x levels)."""
    L = p.shape[0]
    I, J = np.ogrid[0:L, 0:L]  # noqa: E741 - graycoprops' notation
    contrast = float(np.sum(p * (I - J) ** 2))
    dissimilarity = float(np.sum(p * np.abs(I - J)))
    homogeneity = float(np.sum(p / (1.0 + (I - J) ** 2)))
    asm = float(np.sum(p**2))
    mean_i = float(np.sum(I * p))
    mean_j = float(np.sum(J * p))
    std_i = float(np.sqrt(np.sum(p * (I - mean_i) ** 2)))
    std_j = float(np.sqrt(np.sum(p * (J - mean_j) ** 2)))
    cov = float(np.sum(p * (I - mean_i) * (J - mean_j)))
    correlation = 1.0 if (std_i < 1e-15 or std_j < 1e-15) else cov / (std_i * std_j)
    variance = float(np.sum(p * (I - mean_i) ** 2))
    nz = p[p > 0]
    entropy = float(-np.sum(nz * np.log(nz)))
    return [contrast, dissimilarity, homogeneity, asm, float(np.sqrt(asm)), correlation,
            mean_i, variance, float(np.sqrt(variance)), entropy]


def _radiomics(p: npt.NDArray[np.float64], Ng: int) -> dict[str, float]:
    """PyRadiomics' per-direction GLCM features (without MCC) of a normalised matrix."""
    L = p.shape[0]
    g = np.arange(L, dtype=np.float64)  # the gray level of row / column i is i
    i, j = g[:, None], g[None, :]
    px, py = p.sum(axis=1), p.sum(axis=0)
    ux, uy = float(np.sum(i * p)), float(np.sum(j * p))
    # p_{x+y}(k), k = i + j, and p_{x-y}(k), k = |i - j|
    ii, jj = np.indices((L, L))
    kadd = np.arange(2 * L - 1, dtype=np.float64)
    kdiff = np.arange(L, dtype=np.float64)
    pxAddy = np.bincount((ii + jj).ravel(), weights=p.ravel(), minlength=2 * L - 1)
    pxSuby = np.bincount(np.abs(ii - jj).ravel(), weights=p.ravel(), minlength=L)
    HX = -np.sum(px * np.log2(px + EPS))
    HY = -np.sum(py * np.log2(py + EPS))
    HXY = -np.sum(p * np.log2(p + EPS))
    pxy = px[:, None] * py[None, :]
    HXY1 = -np.sum(p * np.log2(pxy + EPS))
    HXY2 = -np.sum(pxy * np.log2(pxy + EPS))
    sigx = np.sqrt(np.sum(p * (i - ux) ** 2))
    sigy = np.sqrt(np.sum(p * (j - uy) ** 2))
    corm = np.sum(p * (i - ux) * (j - uy))
    diffavg = np.sum(kdiff * pxSuby)
    div = max(HX, HY)
    if HXY2 == HXY:
        imc2 = 0.0
    else:
        a = 1 - np.exp(-2 * (HXY2 - HXY))
        imc2 = float(np.sqrt(a)) if a >= 0 else float("nan")
    Ngf = float(max(Ng, 1))
    return {
        "Autocorrelation": np.sum(p * i * j),
        "ClusterProminence": np.sum(p * (i + j - ux - uy) ** 4),
        "ClusterShade": np.sum(p * (i + j - ux - uy) ** 3),
        "ClusterTendency": np.sum(p * (i + j - ux - uy) ** 2),
        "Contrast": np.sum(p * (i - j) ** 2),
        "Correlation": 1.0 if sigx * sigy == 0 else corm / (sigx * sigy + EPS),
        "DifferenceAverage": diffavg,
        "DifferenceEntropy": -np.sum(pxSuby * np.log2(pxSuby + EPS)),
        "DifferenceVariance": np.sum(pxSuby * (kdiff - diffavg) ** 2),
        "Id": np.sum(pxSuby / (1 + kdiff)),
        "Idm": np.sum(pxSuby / (1 + kdiff**2)),
        "Idmn": np.sum(pxSuby / (1 + kdiff**2 / Ngf**2)),
        "Idn": np.sum(pxSuby / (1 + kdiff / Ngf)),
        "Imc1": (HXY - HXY1) / div if div != 0 else 0.0,
        "Imc2": imc2,
        "InverseVariance": np.sum(pxSuby[1:] / kdiff[1:] ** 2),
        "JointAverage": ux,
        "JointEnergy": np.sum(p**2),
        "JointEntropy": HXY,
        "MaximumProbability": np.max(p),
        "SumAverage": np.sum(kadd * pxAddy),
        "SumEntropy": -np.sum(pxAddy * np.log2(pxAddy + EPS)),
        "SumSquares": np.sum(p * (i - ux) ** 2),
    }


def _mcc_q(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Q(i, j) = sum_k p(i,k) p(j,k) / (px(i) py(k) + eps), summed over k as PyRadiomics does."""
    px, py = p.sum(axis=1), p.sum(axis=0)
    G = p.shape[0]
    Q = np.zeros((G, G))
    for k in range(G):
        Q += np.outer(p[:, k], p[:, k]) / (px[:, None] * py[k] + EPS)
    return Q


def glcm_features(
    P: npt.ArrayLike, *, features: str | Sequence[str] | None = None
) -> dict[str, Any]:
    """Twin of :func:`medfuse.glcm_features`."""
    plan = tp.plan_features(P, features)
    P3 = plan.P.astype(np.float64)
    n = P3.shape[2]
    totals = np.array([P3[:, :, k].sum() for k in range(n)])
    present = (P3.sum(axis=(1, 2)) > 0) | (P3.sum(axis=(0, 2)) > 0)
    Ng = int(np.flatnonzero(present).max()) if present.any() else 0
    ski = np.zeros((n, len(tp.SKIMAGE_PROPS)))
    rad = np.full((n, len(tp.RADIOMICS_CORE)), np.nan)
    for k in range(n):
        p = P3[:, :, k] / (totals[k] if totals[k] != 0 else 1.0)
        ski[k] = _skimage_props(p)
        if totals[k] > 0 and plan.want_radiomics:
            r = _radiomics(p, Ng)
            rad[k] = [float(r[name]) for name in tp.RADIOMICS_CORE]
    mcc_value = None
    if "MCC" in plan.names:
        idx = np.flatnonzero(present)
        keep = [k for k in range(n) if totals[k] > 0]
        G = len(idx)
        if not keep:
            mcc_value = float("nan")
        elif G < 2:
            mcc_value = 1.0
        else:
            # One batched eigvals call, as PyRadiomics: if any direction has complex
            # eigenvalues, all are complex and a negative one has root 0j, not NaN.
            Qs = np.stack([_mcc_q(P3[np.ix_(idx, idx)][:, :, k] / totals[k]) for k in keep])
            ev = np.linalg.eigvals(Qs)
            ev.sort(axis=-1)
            with np.errstate(invalid="ignore"):
                v = np.sqrt(ev[:, -2])
            ok = ~np.isnan(v)
            mcc_value = float(np.real(v[ok].mean())) if ok.any() else float("nan")
    return tp.assemble(plan.names, plan.n_distances, plan.n_angles, ski, rad, totals, mcc_value)
