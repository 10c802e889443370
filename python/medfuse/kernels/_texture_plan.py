"""Argument checks and planning shared by ``medfuse.glcm`` / ``medfuse.glcm_features``
and their NumPy twins (same refusals, same messages, same offsets).
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._validate import contiguous

GLCM_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64)

# The four 2D angles of the classical GLCM (skimage offsets (0,1), (1,1), (1,0), (1,-1)).
DEFAULT_ANGLES_2D = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)

# The 13 unique directions of the 26-neighbourhood, (dz, dy, dx). The first
# four are the in-plane directions in the order of DEFAULT_ANGLES_2D, so a
# volume of depth 1 gives the 2D matrices in its first four columns.
DIRECTIONS_3D = np.array(
    [
        (0, 0, 1), (0, 1, 1), (0, 1, 0), (0, 1, -1),
        (1, 0, 0), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0),
        (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1),
    ],
    dtype=np.int64,
)

SKIMAGE_PROPS = (
    "contrast", "dissimilarity", "homogeneity", "ASM", "energy", "correlation",
    "mean", "variance", "std", "entropy",
)
# PyRadiomics GLCM features, in PyRadiomics' (alphabetical) order.
RADIOMICS_FEATURES = (
    "Autocorrelation", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast",
    "Correlation", "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "Id", "Idm",
    "Idmn", "Idn", "Imc1", "Imc2", "InverseVariance", "JointAverage", "JointEnergy",
    "JointEntropy", "MCC", "MaximumProbability", "SumAverage", "SumEntropy", "SumSquares",
)
# Per-direction values computed by the kernels (everything but MCC), in this order.
RADIOMICS_CORE = tuple(f for f in RADIOMICS_FEATURES if f != "MCC")
ALL_FEATURES = SKIMAGE_PROPS + RADIOMICS_FEATURES
EPS = float(np.spacing(1))


def c_round(r: float) -> int:
    """scikit-image's rounding of offsets: ``int(r + 0.5)`` for r > 0, else ``int(r - 0.5)``."""
    return int(r + 0.5) if r > 0.0 else int(r - 0.5)


@dataclass(frozen=True)
class GlcmPlan:
    image: npt.NDArray  # (z, y, x), C-contiguous, native byte order
    mask: npt.NDArray[np.bool_] | None  # same shape or None
    levels: int
    offsets: npt.NDArray[np.int64]  # (n_distances * n_angles, 3), distance-major
    n_distances: int
    n_angles: int
    symmetric: bool
    normed: bool


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _image(image: object) -> npt.NDArray:
    arr = image if isinstance(image, np.ndarray) else np.asarray(image)
    if arr.dtype.kind not in "ui" or arr.dtype.type not in tuple(np.dtype(d).type for d in GLCM_DTYPES):
        raise TypeError(
            "image must have an integer dtype (uint8, uint16, uint32, uint64, int8, int16, int32, int64); "
            f"got {arr.dtype}"
        )
    if arr.ndim not in (2, 3):
        raise ValueError(f"image must be 2- or 3-dimensional; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"image is empty (shape {arr.shape}); every axis needs at least one element")
    return contiguous(arr, dtype=arr.dtype.newbyteorder("="))


def _levels(levels: object, dtype: np.dtype) -> int:
    if levels is None:
        if dtype in (np.dtype(np.uint8), np.dtype(np.int8)):
            return 256
        raise ValueError(f"levels is required for {dtype} images (it may be None only for uint8 and int8)")
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, numbers.Integral):
        raise TypeError(f"levels must be an integer >= 1; got {levels!r}")
    lv = int(levels)
    if lv < 1:
        raise ValueError(f"levels must be >= 1; got {lv}")
    if lv > 65536:
        raise ValueError(f"levels must be <= 65536 (the matrices have levels**2 cells); got {lv}")
    return lv


def _distances(distances: object, integer: bool) -> npt.NDArray[np.float64]:
    try:
        d = np.asarray(distances)
    except Exception:
        raise TypeError(f"distances must be a 1D sequence of numbers; got {distances!r}") from None
    if d.dtype.kind not in "uif":
        raise TypeError(f"distances must be a 1D sequence of numbers; got dtype {d.dtype}")
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"distances must be a non-empty 1D sequence; got shape {d.shape}")
    d = d.astype(np.float64)
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError(f"distances must be finite and >= 0; got {d.tolist()}")
    if integer and (d != np.round(d)).any():
        raise ValueError(f"distances must be integers when directions are given as vectors; got {d.tolist()}")
    return d


def _angles(angles: object, ndim: int) -> tuple[str, npt.NDArray]:
    """('radians', 1D float64) or ('vectors', (n, ndim) int64)."""
    if angles is None:
        if ndim == 2:
            return "radians", np.asarray(DEFAULT_ANGLES_2D, dtype=np.float64)
        return "vectors", DIRECTIONS_3D.copy()
    try:
        a = np.asarray(angles)
    except Exception:
        raise TypeError(f"angles must be a 1D sequence of radians or an (n, {ndim}) array of direction vectors") from None
    if a.dtype.kind not in "uif":
        raise TypeError(f"angles must hold numbers; got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"angles must not be empty; got shape {a.shape}")
    if a.ndim == 1:
        if ndim != 2:
            raise ValueError(
                "angles in radians apply to 2D images; for 3D give None (the 13 directions) "
                "or an (n, 3) array of integer direction vectors (dz, dy, dx)"
            )
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"angles must be finite; got {a.tolist()}")
        return "radians", a
    if a.ndim == 2 and a.shape[1] == ndim:
        if a.dtype.kind == "f" and (not np.isfinite(a).all() or (a != np.round(a)).any()):
            raise ValueError("angles given as direction vectors must be integers")
        v = a.astype(np.int64)
        if (np.abs(v).max(axis=1) == 0).any():
            raise ValueError("angles: a direction vector is (0, ..., 0)")
        if np.abs(v).max() > 2**20:
            raise ValueError("angles: direction vector components must be <= 2**20 in magnitude")
        return "vectors", v
    raise ValueError(
        f"angles must be a 1D sequence of radians (2D images) or an (n, {ndim}) array of "
        f"direction vectors; got shape {a.shape}"
    )


def plan_glcm(
    image: object,
    distances: object,
    angles: object,
    levels: object,
    mask: object,
    symmetric: object,
    normed: object,
) -> GlcmPlan:
    img = _image(image)
    lv = _levels(levels, img.dtype)
    kind, ang = _angles(angles, img.ndim)
    dist = _distances(distances, integer=kind == "vectors")
    sym = _flag(symmetric, "symmetric")
    nrm = _flag(normed, "normed")
    m = None
    if mask is not None:
        marr = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
        if marr.dtype != np.bool_:
            raise TypeError(f"mask must be a bool array; got dtype {marr.dtype}")
        if marr.shape != img.shape:
            raise ValueError(f"mask must have the image's shape {img.shape}; got {marr.shape}")
        if not marr.any():
            raise ValueError("mask is empty (no voxel selected)")
        m = contiguous(marr)
    shape3 = (1,) * (3 - img.ndim) + img.shape
    offsets = []
    for d in dist:
        for a in range(len(ang)):
            off: list[int]
            if kind == "radians":
                off = [0, c_round(math.sin(ang[a]) * d), c_round(math.cos(ang[a]) * d)]
            else:
                off = [0] * (3 - img.ndim) + [int(x) * int(d) for x in ang[a]]
            # |offset| >= size means no pair at all: clip (same counts, bounded ints).
            offsets.append([max(-n, min(n, o)) for o, n in zip(off, shape3)])
    img3 = img.reshape(shape3)
    m3 = None if m is None else m.reshape(shape3)
    return GlcmPlan(img3, m3, lv, np.asarray(offsets, dtype=np.int64).reshape(-1, 3), len(dist), len(ang), sym, nrm)


def out_of_range_message(count: int, levels: int) -> str:
    return f"image has {count} values outside [0, levels) (levels={levels})"


@dataclass(frozen=True)
class FeaturePlan:
    P: npt.NDArray  # (levels, levels, n) C-contiguous, uint32 or float64
    n_distances: int
    n_angles: int
    names: tuple[str, ...]
    want_skimage: bool
    want_radiomics: bool


def plan_features(P: object, features: object) -> FeaturePlan:
    arr = P if isinstance(P, np.ndarray) else np.asarray(P)
    if arr.dtype.kind not in "uif":
        raise TypeError(f"P must be a numeric array (counts or fractions); got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"P must have shape (levels, levels, n_distances, n_angles); got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"P is empty (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("P contains NaN or infinity")
    if arr.dtype.kind != "u" and (arr < 0).any():
        raise ValueError("P has negative entries; expected co-occurrence counts or fractions")
    L, _, nd, na = arr.shape
    if arr.dtype == np.uint32 or (arr.dtype.kind in "ui" and int(arr.max()) < 2**32):
        flat = contiguous(arr, dtype=np.uint32)
    else:
        flat = contiguous(arr, dtype=np.float64)
    names = _feature_names(features)
    return FeaturePlan(
        flat.reshape(L, L, nd * na), nd, na, names,
        any(n in SKIMAGE_PROPS for n in names), any(n in RADIOMICS_FEATURES for n in names),
    )


def _feature_names(features: object) -> tuple[str, ...]:
    if features is None:
        return ALL_FEATURES
    if isinstance(features, str):
        items: list[object] = [features]
    else:
        try:
            items = list(features)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"features must be None, a name or a sequence of names; got {features!r}") from None
    out = []
    for f in items:
        if not isinstance(f, str):
            raise TypeError(f"features must be names (str); got {f!r}")
        if f not in ALL_FEATURES:
            raise ValueError(
                f"features: unknown name {f!r}; known: {', '.join(ALL_FEATURES)}"
            )
        if f not in out:
            out.append(f)
    if not out:
        raise ValueError("features must name at least one feature")
    return tuple(out)


def nanmean(values: npt.NDArray[np.float64]) -> float:
    """Mean of the non-NaN values (NaN if none), without numpy's warning."""
    v = values[~np.isnan(values)]
    return float(v.mean()) if v.size else float("nan")


def _eigvals(q: npt.NDArray[np.float64], threads: int) -> npt.NDArray:
    """numpy.linalg.eigvals of a stack of matrices, split over threads (LAPACK releases the GIL).

    Each matrix is decomposed by the same call as without threads, so the
    eigenvalues do not depend on the thread count.
    """
    n = q.shape[0]
    if threads <= 1 or n < 2:
        return np.linalg.eigvals(q)
    from concurrent.futures import ThreadPoolExecutor

    parts = min(threads, n)
    bounds = [n * i // parts for i in range(parts + 1)]
    with ThreadPoolExecutor(max_workers=parts) as pool:
        chunks = list(pool.map(lambda i: np.linalg.eigvals(q[bounds[i] : bounds[i + 1]]), range(parts)))
    if any(np.iscomplexobj(c) for c in chunks):
        chunks = [c.astype(np.complex128) for c in chunks]
    return np.concatenate(chunks)


# The fast MCC path: matrices with fewer present levels go to eigvals directly.
MCC_FAST_MIN_LEVELS = 32


def _corrected_eigenvalue(
    B: npt.NDArray[np.float64], C: npt.NDArray[np.float64], S: npt.NDArray[np.float64],
    lam: npt.NDArray[np.float64], vec: npt.NDArray[np.float64], j: int,
) -> float | None:
    """Eigenvalue of M = S - C B^T near S's eigenvalue lam[j], to second order, or None.

    ``lam`` (ascending) and ``vec`` are eigenpairs of S = B B^T that include
    ev = lam[j]'s neighbours above and below (all other eigenvalues lie beyond
    them). lambda(M) = ev - F_jj + sum_m F_jm F_mj / (ev - ev_m) with F = C B^T,
    the sum through one solve with the deflated resolvent. Certified only when
    the neglected terms of order >= 3, at most 11 ||F||^3 / gap^2 (||F|| <=
    ||F||_F, gap = ev's distance to the other eigenvalues of S, ||F|| <
    gap / 8), move sqrt(lambda) by < 1e-13.
    """
    ev = float(lam[j])
    others = np.delete(lam, j)
    gap = float(np.min(np.abs(others - ev))) if len(others) else math.inf
    if not (ev > 1e-6 and gap > 0):
        return None

    def certified(f: float) -> bool:
        # Kato's bound on the terms of order >= 3: gap (2f/gap)^3 / (1 - 2f/gap) <= 11 f^3 / gap^2.
        return f < gap / 8 and 11 * f**3 / gap**2 / (2 * math.sqrt(ev)) < 1e-13

    # Bounds on ||F||_2, cheapest first: ||C||_F ||B||_2 = ||C||_F (B's largest
    # singular value is 1); sqrt(||F||_1 ||F||_inf), F >= 0, its row and column
    # sums by two products with vectors; ||F||_F (one more matrix product).
    if not certified(float(np.linalg.norm(C))):
        row_sums = C @ (B.T @ np.ones(B.shape[0]))
        col_sums = B @ (C.T @ np.ones(C.shape[0]))
        if not certified(math.sqrt(float(row_sums.max()) * float(col_sums.max()))) and not certified(
            float(np.linalg.norm(C @ B.T))
        ):
            return None
    v = vec[:, j]
    fr = C @ (B.T @ v)  # F v
    fl = B @ (C.T @ v)  # F^T v
    fjj = float(v @ fr)
    if S.shape[0] == 1:
        return ev - fjj
    fr = fr - (v @ fr) * v
    fl = fl - (v @ fl) * v
    # (ev I - S + v v^T) y = fr: y = sum_{m != j} v_m (v_m . fr) / (ev - ev_m).
    A = -S
    A[np.diag_indices(S.shape[0])] += ev
    A += np.outer(v, v)
    y = np.linalg.solve(A, fr)
    return ev - fjj + float(fl @ y)


def _top_eigenpairs(S: npt.NDArray[np.float64], k: int) -> tuple[npt.NDArray, npt.NDArray]:
    """The k largest eigenpairs of a symmetric S (fewer if S is smaller), ascending."""
    n = S.shape[0]
    if n <= k:
        return np.linalg.eigh(S)
    import scipy.linalg as sla

    lam, vec = sla.eigh(S, subset_by_index=[n - k, n - 1], driver="evr")
    return lam, vec


def _mcc_lambda2_fast(p: npt.NDArray[np.float64]) -> float | None:
    """Second largest eigenvalue of MCC's Q for one normalised matrix, or None if not certified.

    Q is similar (by D = diag(px)) to M = S - F with S = B B^T symmetric,
    B = p / sqrt(px py) over the rows with px > 0 and columns with py > 0,
    and F = (B * R) B^T, R = eps / (px py + eps): the eps of Q's denominator
    is a tiny non-symmetric perturbation (rows with px = 0 only add zero
    eigenvalues). S's top eigenpairs come from a symmetric solver (LAPACK
    syevr, about 10x cheaper than eigvals of Q), corrected to second order
    (:func:`_corrected_eigenvalue`). S's top eigenvalue is 1, once per
    connected block of the matrix; with several blocks the answer is the
    second largest of the blocks' corrected top eigenvalues. None when a
    step cannot be certified (the caller then uses eigvals).
    """
    px = p.sum(axis=1)
    py = p.sum(axis=0)
    rows = np.flatnonzero(px > 0)
    cols = np.flatnonzero(py > 0)
    if len(rows) < 3:
        return None
    pr = p[np.ix_(rows, cols)]
    q = px[rows][:, None] * py[cols][None, :]
    B = pr / np.sqrt(q)
    C = B * (EPS / (q + EPS))
    S = B @ B.T
    lam, vec = _top_eigenpairs(S, 3)
    if lam[-1] - lam[-2] > 1e-8:
        return _corrected_eigenvalue(B, C, S, lam, vec, len(lam) - 2)
    # Eigenvalue 1 more than once: the matrix falls into blocks (connected
    # components of its row/column graph); each block has one eigenvalue ~1.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nr, nc = pr.shape
    r_idx, c_idx = np.nonzero(pr)
    graph = coo_matrix((np.ones(len(r_idx)), (r_idx, nr + c_idx)), shape=(nr + nc, nr + nc))
    n_comp, label = connected_components(graph, directed=False)
    tops = []
    for c in range(n_comp):
        rs = np.flatnonzero(label[:nr] == c)
        cs = np.flatnonzero(label[nr:] == c)
        if len(rs) == 0:
            continue
        Bc, Cc = B[np.ix_(rs, cs)], C[np.ix_(rs, cs)]
        Sc = Bc @ Bc.T
        lc, vc = _top_eigenpairs(Sc, 2)
        top = _corrected_eigenvalue(Bc, Cc, Sc, lc, vc, len(lc) - 1)
        if top is None:
            return None
        tops.append(top)
    if len(tops) < 2:
        return None
    return sorted(tops)[-2]


# ---- the Krylov MCC path ----------------------------------------------------------------
#
# Everything below is O(G^2) per Lanczos step except one float32 product B B^T per
# matrix (for an upper bound on trace(S^2)); no dense eigensolver, no dense solve.

# Lanczos steps at most (the deflated Krylov space has at most G - 1 dimensions).
MCC_KRYLOV_MAX_STEPS = 64
# Steps before the first convergence test, and the test's target for the residual
# estimate of the top Ritz pair (the certificate below uses the explicit residual).
_KRYLOV_MIN_STEPS = 8
_KRYLOV_TARGET = 1e-12
# Ritz pairs with a larger residual estimate stay out of the certificate's set.
_KRYLOV_PAIR_TOL = 1e-6
# Error budget of the certified value: |sqrt(lambda) - sqrt(lambda_exact)| < this.
MCC_SQRT_TOL = 1e-13
_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32


@functools.lru_cache(maxsize=8)
def _lanczos_start(G: int) -> npt.NDArray[np.float64]:
    """A fixed start vector (no structure of any GLCM: pseudo-random, seeded), read-only."""
    x = np.random.default_rng(0x6D6363).standard_normal(G)
    x.flags.writeable = False
    return x


def _certify_krylov(
    B: npt.NDArray[np.float64], C: npt.NDArray[np.float64], V: npt.NDArray[np.float64],
    SV: npt.NDArray[np.float64], S32: npt.NDArray[np.float32],
) -> float | None:
    """Certified lambda2 of MCC's M = S - F from an orthonormal basis V (m, G) and SV = V S.

    Rayleigh-Ritz on span(V): H = V S V^T, Ritz pairs (theta_j, y_j), explicit
    residuals R = Y S - Theta Y (S Y through the stored products, no new ones).
    The certificate, with Y the Ritz vectors whose residual is small (among
    them the top one, ~ sqrt(px), and lambda2's):

    1. Kahan (Parlett, The Symmetric Eigenvalue Problem, 11.5): S has distinct
       eigenvalues within rho = ||R||_F (x 2 for Y's rounding off orthonormal)
       of every theta_j in the set. Their squares take at least
       sum (theta_j - rho)_+^2 of trace(S^2) = ||S||_F^2, so every other
       eigenvalue is <= mu = sqrt(trace(S^2) - that sum) (S is PSD).
       ``S32`` = fl32(B B^T) bounds trace(S^2): B >= 0, so S32 = S (1 + d)
       entrywise with |d| <= (G + 3) u32. Where mu is too large (many
       eigenvalues of middle size), :func:`_inertia_bound` proves instead
       that S has at most two eigenvalues above a level between theta_3 and
       theta_2 (a float32 Cholesky factorisation with its error bound).
    2. So lambda2 is the one eigenvalue in [theta_2 - rho, theta_2 + rho] when
       that interval is clear of the others: theta_1 - rho above, and below
       max(theta_3 + rho, mu). Kato-Temple bounds |lambda2 - theta_2| by
       ||r_2||^2 / d (theta_2, r_2: the Rayleigh quotient and residual of the
       normalised y_2; d: theta_2's distance to those bounds), Davis-Kahan
       the angle to lambda2's eigenvector by s = ||r_2|| / d.
    3. The eps correction as :func:`_corrected_eigenvalue`: lambda(M) =
       lambda2 - v^T F v + T2 + O(||F||^3 / gap^2). With y_2 for v,
       |y^T F y - v^T F v| <= 2 f (s + s^2) (f >= ||F||_2, cheap bounds only);
       T2 (the second-order term, F's coupling to the other eigenvectors) is
       not computed but bounded by ||F_perp v|| ||F^T_perp v|| / gap (each
       factor from y_2 plus 4 f s); Kato's bound on the rest as there.

    The sum of these bounds must move sqrt(lambda) by < MCC_SQRT_TOL;
    otherwise None (the caller takes the dense path).
    """
    m = V.shape[0]
    H = V @ SV.T
    H = (H + H.T) * 0.5
    theta, W = np.linalg.eigh(H)  # ascending
    theta, W = theta[::-1], W[:, ::-1]
    Y = W.T @ V  # Ritz vectors as rows
    SY = W.T @ SV
    R = SY - theta[:, None] * Y
    res = np.sqrt(np.einsum("ij,ij->i", R, R))
    if m < 3 or res[0] > _KRYLOV_PAIR_TOL or res[1] > _KRYLOV_PAIR_TOL:
        return None
    sel = np.flatnonzero(res <= _KRYLOV_PAIR_TOL)  # includes 0 and 1
    Ys = Y[sel]
    ortho = float(np.abs(Ys @ Ys.T - np.eye(len(sel))).max())
    if not ortho < 1e-10:
        return None
    rho = 2.0 * float(np.sqrt(np.sum(res[sel] ** 2))) + 1e-15
    th = theta[sel]
    G = V.shape[1]
    s32 = float(np.einsum("ij,ij->", S32, S32, dtype=np.float64))
    trace_s2 = s32 * (1 + 3 * (G + 3) * _U32) + 1e-30
    rest = trace_s2 - float(np.sum(np.clip(th - rho, 0.0, None) ** 2))
    mu = math.sqrt(max(rest, 0.0))
    below = max(float(th[2]) + rho if len(th) > 2 else 0.0, mu)
    above = float(th[0]) - rho
    if not below < float(th[1]) - rho:
        sigma = float(theta[2]) + 0.25 * (float(th[1]) - float(theta[2]))
        bound = _inertia_bound(S32, math.sqrt(s32), theta[:2], Y[:2], sigma)
        if bound is None:
            return None
        below = bound
    if not (float(th[1]) - rho > below and float(th[1]) + rho < above):
        return None
    # Kato-Temple and Davis-Kahan with y's own Rayleigh quotient and residual.
    ny = float(np.sqrt(Y[1] @ Y[1]))
    y, sy = Y[1] / ny, SY[1] / ny
    t2 = float(y @ sy)
    r2 = float(np.linalg.norm(sy - t2 * y))
    d = min(above - t2, t2 - below)
    if not d > 0:
        return None
    dlam = min(r2, r2 * r2 / d) + 1e-15  # |lambda2 - theta_2| (+ Rayleigh quotient rounding)
    s = r2 / d
    gap = min(above - (t2 + dlam), (t2 - dlam) - below)  # lambda2's distance to S's other eigenvalues
    ev = t2 - dlam
    if not (ev > 1e-6 and gap > 0 and s < 1e-3):
        return None
    # f >= ||F||_2, F = C B^T: ||C||_F (B's largest singular value is 1), or
    # sqrt(||F||_1 ||F||_inf) from F's row and column sums (F >= 0).
    f = float(np.sqrt(np.einsum("ij,ij->", C, C)))
    if not (f < gap / 8 and 11 * f**3 / gap**2 / (2 * math.sqrt(ev)) < MCC_SQRT_TOL / 4):
        f = min(f, math.sqrt(float((C @ B.sum(axis=0)).max()) * float((B @ C.sum(axis=0)).max())))
    if not f < gap / 8:
        return None
    bty, cty = B.T @ y, C.T @ y
    fr = C @ bty  # F y
    fl = B @ cty  # F^T y
    fyy = float(y @ fr)
    nr = float(np.linalg.norm(fr - fyy * y)) + 4 * f * s
    nl = float(np.linalg.norm(fl - fyy * y)) + 4 * f * s
    err = (
        11 * f**3 / gap**2  # Kato: terms of order >= 3
        + dlam  # theta_2 for lambda2
        + 2 * f * (s + s * s)  # y for v in the first-order term
        + nr * nl / gap  # the second-order term, not computed
    )
    lam = t2 - fyy
    if not (lam - err > 1e-6 and err / (2 * math.sqrt(lam - err)) < MCC_SQRT_TOL):
        return None
    return lam


def _lanczos(
    B: npt.NDArray[np.float64], BT: npt.NDArray[np.float64], V: npt.NDArray[np.float64],
    SV: npt.NDArray[np.float64], alpha: npt.NDArray[np.float64], beta: npt.NDArray[np.float64],
    steps: npt.NDArray[np.int64], K: int,
) -> None:
    """Lanczos steps on the stack, in place: V[:, k] the vectors, SV[:, k] = S V[:, k], steps[i] the basis size."""
    for k in range(1, K + 1):
        z = np.matmul(B, np.matmul(BT, V[:, k, :, None]))[:, None, :, 0]  # (n, 1, G)
        SV[:, k] = z[:, 0]
        Vk = V[:, : k + 1]
        h = np.matmul(z, Vk.transpose(0, 2, 1))  # (n, 1, k+1)
        z -= np.matmul(h, Vk)
        alpha[:, k] = h[:, 0, k]
        z -= np.matmul(np.matmul(z, Vk.transpose(0, 2, 1)), Vk)  # Gram-Schmidt twice
        b = np.sqrt(np.einsum("nij,nij->n", z, z))
        beta[:, k] = b
        if (k >= _KRYLOV_MIN_STEPS and k % 2 == 0) or k == K:
            running = np.flatnonzero(steps == 0)
            T = np.zeros((len(running), k, k))
            idx = np.arange(k)
            T[:, idx, idx] = alpha[running, 1 : k + 1]
            T[:, idx[1:], idx[:-1]] = beta[running, 1:k]
            T[:, idx[:-1], idx[1:]] = beta[running, 1:k]
            _, Wt = np.linalg.eigh(T)
            est = np.abs(beta[running, k] * Wt[:, -1, -1])
            done = running[(est < _KRYLOV_TARGET) | (b[running] < 1e-12) | (k == K)]
            steps[done] = k + 1
            if (steps > 0).all():
                break
        V[:, k + 1] = z[:, 0] / np.where(b > 0, b, 1.0)[:, None]


def _inertia_bound(
    S32: npt.NDArray[np.float32], norm_s32: float, theta: npt.NDArray[np.float64],
    Y: npt.NDArray[np.float64], sigma: float,
) -> float | None:
    """An upper bound on every eigenvalue of S but the two largest, or None.

    A = sigma I - S + sum_j theta_j y_j y_j^T (theta_j > 0, rows y_j of Y: a
    rank-2 positive update, so lambda_3(S) <= lambda_max(S - update)). If
    float32 Cholesky of fl32(A) succeeds, fl32(A) + E = R^T R is positive
    semi-definite with ||E||_2 <= gamma_{G+1} ||R||_F^2 (Demmel); fl32(A)
    differs from A by <= 2 (G + 3) u32 ||S32||_F (S's float32 product) plus
    u32 ||fl32(A)||_F (rounding to float32). So lambda_3(S) <= sigma + both.
    """
    G = S32.shape[0]
    A = S32.astype(np.float64)
    np.negative(A, out=A)
    A[np.diag_indices(G)] += sigma
    for t, y in zip(theta, Y):
        if not t > 0:
            return None
        A += t * np.outer(y, y)
    A32 = A.astype(np.float32)
    try:
        R = np.linalg.cholesky(A32)
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(R).all():
        return None
    g = (G + 1) * _U32 / (1 - (G + 1) * _U32)
    err = g * float(np.einsum("ij,ij->", R, R, dtype=np.float64))
    err += 2 * (G + 3) * _U32 * norm_s32 + 2 * _U32 * float(np.sqrt(np.einsum("ij,ij->", A32, A32, dtype=np.float64)))
    return sigma + err + 1e-12  # + float64 rounding in forming A


def _mcc_lambda2_krylov(p: npt.NDArray, totals: npt.NDArray[np.float64] | None = None) -> list[float | None]:
    """Certified lambda2 of MCC's Q for each matrix of a stack (n, G, G), or None each.

    ``p``: normalised matrices, or (with ``totals``, each matrix's sum) counts.

    The method: with B = p / sqrt(px py) (zero where px py = 0) and S = B B^T,
    Q is a tiny perturbation (PyRadiomics' eps) of a matrix similar to S;
    S's top eigenvector is u = sqrt(px) (eigenvalue 1). Lanczos with full
    reorthogonalisation (classical Gram-Schmidt twice) on S deflated by u,
    from a fixed pseudo-random start, with S x = B (B^T x) (two products
    with vectors per step, the stack's matrices in one call each), runs until
    the top Ritz pair's residual estimate is below 1e-13 (at most
    MCC_KRYLOV_MAX_STEPS steps). Nothing of Lanczos' own accuracy is trusted:
    :func:`_certify_krylov` checks the basis and the Ritz pairs from scratch
    and with an upper bound on trace(S^2) (float32 product B B^T, entrywise
    relative error <= (G + 3) u32 because B >= 0) proves the value or returns None.

    Each matrix stops at its own step count and is certified alone (serially),
    so its result depends neither on the other matrices of the stack nor on
    the thread count.
    """
    n, G, _ = p.shape
    px = p.sum(axis=2, dtype=np.float64)
    py = p.sum(axis=1, dtype=np.float64)
    sx, sy = np.sqrt(px), np.sqrt(py)
    with np.errstate(divide="ignore"):
        rx, ry = np.where(px > 0, 1.0 / sx, 0.0), np.where(py > 0, 1.0 / sy, 0.0)
    B = p * rx[:, :, None]  # float64 (rx is)
    B *= ry[:, None, :]  # p / sqrt(px py) (the same for counts), 0 in absent rows and columns
    if totals is not None:
        px, py = px / totals[:, None], py / totals[:, None]
    BT = B.transpose(0, 2, 1)
    u = sx / np.sqrt(np.einsum("ng,ng->n", sx, sx))[:, None]
    K = min(MCC_KRYLOV_MAX_STEPS, G - 1)
    V = np.zeros((n, K + 2, G))  # rows: u, then the Lanczos vectors
    SV = np.zeros((n, K + 2, G))
    V[:, 0] = u
    SV[:, 0] = np.matmul(B, np.matmul(BT, u[:, :, None]))[:, :, 0]
    x = np.where(px > 0, _lanczos_start(G)[None, :], 0.0)
    for _ in range(2):
        x -= np.einsum("ng,ng->n", x, u)[:, None] * u
    xn = np.linalg.norm(x, axis=1)
    if not (xn > 1e-8).all():
        return [None] * n
    V[:, 1] = x / xn[:, None]
    alpha = np.zeros((n, K + 1))
    beta = np.zeros((n, K + 1))
    steps = np.zeros(n, dtype=np.int64)  # basis size (rows of V) at convergence; 0 = running
    with np.errstate(all="ignore"):  # a stopped matrix may run into a breakdown (its rows are not used)
        _lanczos(B, BT, V, SV, alpha, beta, steps, K)

    def certify(i: int) -> float | None:
        m = int(steps[i])
        B32 = B[i].astype(np.float32)
        S32 = B32 @ B32.T  # for the bounds on the eigenvalues Lanczos does not see
        C = np.multiply.outer(px[i], py[i])
        C += EPS
        np.divide(EPS, C, out=C)
        C *= B[i]  # B eps / (px py + eps)
        return _certify_krylov(B[i], C, V[i, :m], SV[i, :m], S32)

    # Serial for any thread count: a certificate takes about 0.15 ms of small
    # NumPy and BLAS calls that mostly hold the GIL, and a thread pool made the
    # 2-thread call slower (all 34 features of a 256-level 4-direction GLCM,
    # same run: 6.1-6.3 ms pooled against 5.5 ms serial; 5.5-5.6 ms at 1 thread).
    return [certify(i) for i in range(n)]


def _mcc_fast(p: npt.NDArray, threads: int, totals: npt.NDArray[np.float64] | None = None) -> float | None:
    """The fast path for a stack (n, G, G): the NaN-skipping mean of sqrt(lambda2), or None.

    Each matrix first by the Krylov path (:func:`_mcc_lambda2_krylov`, the
    whole stack at once), those it cannot certify by the dense symmetric path
    (:func:`_mcc_lambda2_fast`, over ``threads`` threads); None if any
    matrix is certified by neither. Every matrix is computed the same way for
    any thread count. ``p`` and ``totals`` as in :func:`mcc`.
    """
    n = p.shape[0]
    if p.shape[1] < MCC_FAST_MIN_LEVELS:
        return None
    lams: list[float | None] = [None] * n
    if int((p.sum(axis=2) > 0).sum(axis=1).min()) >= 3:
        lams = _mcc_lambda2_krylov(p, totals)
    todo = [k for k in range(n) if lams[k] is None]
    if todo and totals is not None:
        p = _normalised(p, totals)
    if threads <= 1 or len(todo) < 2:
        for k in todo:
            lams[k] = _mcc_lambda2_fast(p[k])
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(threads, len(todo))) as pool:
            for k, lam in zip(todo, pool.map(lambda k: _mcc_lambda2_fast(p[k]), todo)):
                lams[k] = lam
    if any(x is None for x in lams):
        return None
    return float(np.mean(np.sqrt(np.array(lams, dtype=np.float64))))


def _normalised(p: npt.NDArray, totals: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.divide(p, totals[:, None, None], dtype=np.float64)


def mcc(
    p: npt.NDArray, threads: int = 1, *, fast: bool = True, totals: npt.NDArray[np.float64] | None = None
) -> float:
    """PyRadiomics MCC from normalised matrices ``p`` (n_directions, G, G) over the present levels.

    sqrt of the second largest eigenvalue of Q(i, j) = sum_k p(i,k) p(j,k) / (px(i) py(k) + eps)
    (numpy.linalg.eigvals, sorted as PyRadiomics sorts them), averaged over directions;
    1 when fewer than two gray levels are present. With ``fast`` (default) the
    certified paths (:func:`_mcc_fast`) are tried first. With ``totals`` (each
    matrix's sum), ``p`` holds counts (any numeric dtype), normalised only
    where a dense path needs it.
    """
    n, G, _ = p.shape
    if n == 0:
        return float("nan")
    if G < 2:
        return 1.0
    if fast:
        value = _mcc_fast(p, threads, totals)
        if value is not None:
            return value
    if totals is not None:
        p = _normalised(p, totals)
    px = p.sum(axis=2)
    py = p.sum(axis=1)
    w = p / (px[:, :, None] * py[:, None, :] + EPS)
    q = np.matmul(w, p.transpose(0, 2, 1))
    ev = _eigvals(q, threads)
    ev.sort(axis=-1)
    with np.errstate(invalid="ignore"):
        m = np.sqrt(ev[:, -2])  # real negative -> NaN (skipped), complex -> complex root
    ok = ~np.isnan(m)
    # PyRadiomics: nanmean over directions, then the real part.
    return float(np.real(m[ok].mean())) if ok.any() else float("nan")


def assemble(
    names: tuple[str, ...],
    n_distances: int,
    n_angles: int,
    skimage_values: npt.NDArray[np.float64],  # (n, len(SKIMAGE_PROPS))
    radiomics_values: npt.NDArray[np.float64],  # (n, len(RADIOMICS_CORE)), NaN rows for empty directions
    totals: npt.NDArray[np.float64],  # (n,)
    mcc_value: float | None,
) -> dict[str, object]:
    out: dict[str, object] = {}
    nonempty = totals > 0
    for name in names:
        if name in SKIMAGE_PROPS:
            col = skimage_values[:, SKIMAGE_PROPS.index(name)]
            out[name] = np.array(col, dtype=np.float64).reshape(n_distances, n_angles)
        elif name == "MCC":
            out[name] = float("nan") if mcc_value is None else float(mcc_value)
        else:
            col = radiomics_values[nonempty, RADIOMICS_CORE.index(name)]
            out[name] = nanmean(col)
    return out

