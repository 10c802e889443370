"""MCC's Krylov path (Lanczos on S = B B^T + a certificate) against numpy.linalg.eigvals of Q
(``mcc(..., fast=False)``, PyRadiomics' computation) and against the dense symmetric path
(``_mcc_lambda2_fast``): 1e-13 relative wherever it returns a value, and None (then the dense path,
then eigvals) wherever the certificate cannot hold: blocks, lambda2 == lambda3, lambda2 ~ 0, too few
Lanczos steps, a basis that is not orthonormal, a trace(S^2) bound too weak to exclude unseen
eigenvalues."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import medfuse
from medfuse.data import phantoms
from medfuse.kernels import _texture_plan as tp
from medfuse.kernels import texture as kt

ANGLES = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
REL = 1e-13


@lru_cache(maxsize=1)
def _ct_slice() -> np.ndarray:
    vol, _ = phantoms.ct_volume((3, 192, 192), seed=11)
    return vol[1]


def _normalised(P: np.ndarray) -> np.ndarray:
    """(n, G, G) normalised matrices over the present levels, as glcm_features hands them to MCC."""
    plan = tp.plan_features(P, ["MCC"])
    fn = medfuse._core.glcm_features_u32 if plan.P.dtype == np.uint32 else medfuse._core.glcm_features_f64
    _, _, totals, present = fn(plan.P, False, False, False, 1)
    return kt._present_submatrices(plan.P, present, totals)


def _eigvals_sqrt(p: np.ndarray) -> float:
    """sqrt(lambda2) of one matrix by numpy.linalg.eigvals of Q (the slow exact path)."""
    return tp.mcc(p[None], 1, fast=False)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _random_glcm(rng: np.random.Generator, levels: int, density: float, symmetric: bool) -> np.ndarray:
    P = (rng.random((levels, levels)) < density) * rng.integers(1, 500, (levels, levels))
    P[np.arange(levels), np.arange(levels)] += rng.integers(1, 50, levels)  # every level present
    # A band near the diagonal, as in images: keeps the matrix connected.
    i = np.arange(levels - 1)
    P[i, i + 1] += rng.integers(1, 100, levels - 1)
    if symmetric:
        P = P + P.T
    return P.astype(np.uint32)


def _cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(2024)
    sl = _ct_slice()
    out = []
    for name, img in {
        "ct-mediastinal": phantoms.window_u8(sl, 40.0, 400.0),
        "ct-lung": phantoms.window_u8(sl, -600.0, 1500.0),
        "ct-bone": phantoms.window_u8(sl, 400.0, 1800.0),
        "noise": rng.normal(128, 40, (200, 190)).clip(0, 255).astype(np.uint8),
        "smooth-noise": (np.cumsum(rng.normal(0, 3, (160, 170)), axis=1) % 256).astype(np.uint8),
    }.items():
        for symmetric in (True, False):
            for d in (1, 3):
                P = medfuse.glcm(img, [d], ANGLES, 256, symmetric=symmetric)
                out.append((f"{name}-d{d}-{'sym' if symmetric else 'asym'}", _normalised(P)))
    for k, (levels, density) in enumerate([(32, 0.3), (40, 1.0), (64, 0.05), (100, 0.02), (150, 0.1), (256, 0.01), (256, 0.5)]):
        for symmetric in (True, False):
            P = _random_glcm(rng, levels, density, symmetric)
            out.append((f"random-{levels}-{density}-{symmetric}-{k}", _normalised(P[:, :, None, None])))
    return out


CASES = _cases()


@pytest.mark.parametrize("name,p", CASES, ids=[c[0] for c in CASES])
def test_krylov_matches_eigvals_and_dense_path(name, p):
    lams = tp._mcc_lambda2_krylov(p)
    for k, lam in enumerate(lams):
        if lam is None:
            continue
        got = np.sqrt(lam)
        assert _rel(got, _eigvals_sqrt(p[k])) < REL, (name, k)
        dense = tp._mcc_lambda2_fast(p[k])
        if dense is not None:
            assert _rel(got, np.sqrt(dense)) < REL, (name, k)
    # Counts with totals give the same values (B does not depend on the scale).
    counts = p * 1e6
    for a, b in zip(lams, tp._mcc_lambda2_krylov(counts, np.full(len(p), 1e6))):
        assert (a is None) == (b is None)
        if a is not None:
            assert _rel(b, a) < REL


def test_krylov_certifies_image_glcms():
    """The Krylov path is actually taken: image GLCMs with many levels are certified, not handed on
    (the few exceptions: asymmetric matrices with a second block, eigenvalue 1 twice)."""
    taken = [lam is not None for name, p in CASES if name.startswith(("ct-", "noise")) for lam in tp._mcc_lambda2_krylov(p)]
    assert len(taken) >= 40 and np.mean(taken) > 0.85, taken
    assert all(lam is not None for name, p in CASES if name.endswith("-sym") and name.startswith("ct-")
               for lam in tp._mcc_lambda2_krylov(p))


def test_inertia_bound_is_used_and_exact(monkeypatch):
    """Many eigenvalues of middle size (asymmetric bone-window GLCM): the trace(S^2) bound cannot
    exclude an unseen eigenvalue, the Cholesky inertia bound does; the values stay exact."""
    calls: list[float | None] = []
    real = tp._inertia_bound

    def spy(*args):
        calls.append(real(*args))
        return calls[-1]

    monkeypatch.setattr(tp, "_inertia_bound", spy)
    p = dict(CASES)["ct-bone-d1-asym"]
    lams = tp._mcc_lambda2_krylov(p)
    assert calls and all(c is not None for c in calls)
    for k, lam in enumerate(lams):
        assert lam is not None
        assert _rel(np.sqrt(lam), _eigvals_sqrt(p[k])) < REL
    # A failed factorisation hands the matrix on.
    def no_cholesky(a):
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(np.linalg, "cholesky", no_cholesky)
    assert tp._mcc_lambda2_krylov(p) == [None] * len(p)


@pytest.fixture
def spy_dense(monkeypatch):
    calls: list[int] = []
    real = tp._mcc_lambda2_fast

    def spy(p):
        calls.append(p.shape[0])
        return real(p)

    monkeypatch.setattr(tp, "_mcc_lambda2_fast", spy)
    return calls


def test_benchmark_like_glcm_takes_no_dense_path(spy_dense):
    P = medfuse.glcm(phantoms.window_u8(_ct_slice(), 40.0, 400.0), [1], ANGLES, 256, symmetric=True)
    p = _normalised(P)
    got = medfuse.glcm_features(P, features="MCC")["MCC"]
    assert spy_dense == []
    assert _rel(got, tp.mcc(p, 1, fast=False)) < REL


def _blocks(sizes: list[int], coupling: float = 0.0, seed: int = 0) -> np.ndarray:
    """Block-diagonal symmetric counts (one connected component per block), optionally joined in a ring."""
    rng = np.random.default_rng(seed)
    G = sum(sizes)
    P = np.zeros((G, G))
    starts = np.cumsum([0] + sizes)
    base = rng.integers(1, 200, (max(sizes), max(sizes))).astype(np.float64)
    base = base + base.T
    for a, s in zip(starts[:-1], sizes):
        P[a : a + s, a : a + s] = base[:s, :s]
    if coupling:
        for j in range(len(sizes)):  # a ring of identical links: the blocks are symmetric under rotation
            a, b = starts[j], starts[(j + 1) % len(sizes)]
            P[a, b] += coupling
            P[b, a] += coupling
    return P


def test_blocks_fall_back_to_dense_path(spy_dense):
    # Two and three components: eigenvalue 1 per block; the Krylov path cannot separate them.
    for sizes in ([20, 30], [16, 16, 20], [40, 40]):
        P = _blocks(sizes)
        p = _normalised(P[:, :, None, None])
        assert tp._mcc_lambda2_krylov(p) == [None]
        spy_dense.clear()
        got = tp.mcc(p, 1)
        assert spy_dense == [sum(sizes)]
        assert _rel(got, tp.mcc(p, 1, fast=False)) < 1e-12


def test_degenerate_lambda2_falls_back(spy_dense):
    # Three identical blocks joined in a ring: the eigenvalue 1 splits into 1 and a pair
    # lambda2 == lambda3 (rotation symmetry), then slightly broken.
    for coupling in (5.0, 1.0):
        P = _blocks([16, 16, 16], coupling=coupling, seed=3)
        p = _normalised(P[:, :, None, None])
        lam = np.sort(np.linalg.eigvalsh((lambda B: B @ B.T)(p[0] / np.sqrt(np.outer(p[0].sum(1), p[0].sum(0))))))
        assert lam[-2] - lam[-3] < 1e-12 * lam[-2]
        assert tp._mcc_lambda2_krylov(p) == [None]
        got = tp.mcc(p, 1)
        assert spy_dense  # handed on
        want = tp.mcc(p, 1, fast=False)
        assert abs(got - want) < 1e-7 * abs(want)  # eigvals on both sides (the dense path cannot certify either)
        spy_dense.clear()


def test_near_degenerate_lambda2_is_exact_or_handed_on():
    # lambda2 and lambda3 a tiny distance apart: whatever path answers must agree with eigvals.
    P = _blocks([16, 16, 16], coupling=5.0, seed=3)
    P[0, 16] += 1e-4
    P[16, 0] += 1e-4
    p = _normalised(P[:, :, None, None])
    lam = tp._mcc_lambda2_krylov(p)[0]
    want = tp.mcc(p, 1, fast=False)
    if lam is not None:
        assert _rel(np.sqrt(lam), want) < REL
    assert _rel(tp.mcc(p, 1), want) < 1e-12


def test_lambda2_near_zero_falls_back(spy_dense):
    # Independent rows and columns: Q has rank 1, lambda2 ~ 0 (sqrt is ill-conditioned there).
    a = np.arange(1, 41, dtype=np.float64)
    p = _normalised(np.outer(a, a)[:, :, None, None])
    assert tp._mcc_lambda2_krylov(p) == [None]
    assert tp._mcc_fast(p, 1) is None
    assert spy_dense == [40]


def test_too_few_steps_falls_back(monkeypatch, spy_dense):
    p = CASES[0][1]
    want = [tp._mcc_lambda2_fast(q) for q in p]
    spy_dense.clear()
    monkeypatch.setattr(tp, "MCC_KRYLOV_MAX_STEPS", 4)
    assert tp._mcc_lambda2_krylov(p) == [None] * len(p)
    got = tp.mcc(p, 1)
    assert spy_dense == [p.shape[1]] * len(p)
    assert _rel(got, float(np.mean(np.sqrt(want)))) < 1e-15


def test_weak_trace_bound_falls_back(monkeypatch):
    """Without a tight trace(S^2) bound an unseen eigenvalue above lambda2 cannot be excluded."""
    p = CASES[0][1]
    assert all(lam is not None for lam in tp._mcc_lambda2_krylov(p))
    monkeypatch.setattr(tp, "_U32", 1e-3)  # inflates the bound by (1 + 3 (G + 3) 1e-3)
    assert tp._mcc_lambda2_krylov(p) == [None] * len(p)


def test_basis_not_orthonormal_is_refused(monkeypatch):
    p = CASES[0][1][:1]
    real = tp._lanczos

    def spoil(B, BT, V, SV, alpha, beta, steps, K):
        real(B, BT, V, SV, alpha, beta, steps, K)
        V[:, 3] += 1e-6 * V[:, 2]  # SV no longer matches V either

    monkeypatch.setattr(tp, "_lanczos", spoil)
    assert tp._mcc_lambda2_krylov(p) == [None]


def test_result_does_not_depend_on_the_stack():
    p = CASES[0][1]
    whole = tp._mcc_lambda2_krylov(p)
    for k in range(len(p)):
        alone = tp._mcc_lambda2_krylov(p[k : k + 1])[0]
        assert alone is not None and whole[k] is not None
        assert _rel(alone, whole[k]) < 1e-15
