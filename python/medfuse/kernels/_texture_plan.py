"""Argument checks and planning shared by ``medfuse.glcm`` / ``medfuse.glcm_features``
and their NumPy twins (same refusals, same messages, same offsets).
"""

from __future__ import annotations

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


def _mcc_fast(p: npt.NDArray[np.float64], threads: int) -> float | None:
    """The fast path for a stack (n, G, G): the NaN-skipping mean of sqrt(lambda2), or None."""
    n = p.shape[0]
    if p.shape[1] < MCC_FAST_MIN_LEVELS:
        return None
    if threads <= 1 or n < 2:
        lams = [_mcc_lambda2_fast(p[k]) for k in range(n)]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(threads, n)) as pool:
            lams = list(pool.map(lambda k: _mcc_lambda2_fast(p[k]), range(n)))
    if any(x is None for x in lams):
        return None
    return float(np.mean(np.sqrt(np.array(lams, dtype=np.float64))))


def mcc(p: npt.NDArray[np.float64], threads: int = 1, *, fast: bool = True) -> float:
    """PyRadiomics MCC from normalised matrices ``p`` (n_directions, G, G) over the present levels.

    sqrt of the second largest eigenvalue of Q(i, j) = sum_k p(i,k) p(j,k) / (px(i) py(k) + eps)
    (numpy.linalg.eigvals, sorted as PyRadiomics sorts them), averaged over directions;
    1 when fewer than two gray levels are present. With ``fast`` (default) the
    certified symmetric path (:func:`_mcc_lambda2_fast`) is tried first.
    """
    n, G, _ = p.shape
    if n == 0:
        return float("nan")
    if G < 2:
        return 1.0
    if fast:
        value = _mcc_fast(p, threads)
        if value is not None:
            return value
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

