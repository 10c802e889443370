"""glcm_features on full-size matrices (256 levels): every feature equal to the NumPy twin to
1e-12, including MCC, whose fast path (symmetric eigenproblem + second-order correction for
PyRadiomics' eps) is checked against numpy.linalg.eigvals of Q and must actually be taken."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import medfuse
import medfuse.reference as ref
from medfuse.data import phantoms
from medfuse.kernels import _texture_plan as tp
from medfuse.kernels import texture as kt
from medfuse.kernels._texture_plan import RADIOMICS_FEATURES, SKIMAGE_PROPS

ANGLES = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]


@lru_cache(maxsize=1)
def _ct_slice() -> np.ndarray:
    vol, _ = phantoms.ct_volume((3, 192, 192), seed=3)
    return vol[1]


def _images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    sl = _ct_slice()
    return {
        "ct-mediastinal": phantoms.window_u8(sl, 40.0, 400.0),
        "ct-lung": phantoms.window_u8(sl, -600.0, 1500.0),
        "noise": rng.normal(128, 40, (160, 150)).clip(0, 255).astype(np.uint8),
    }


def _close(got, want, rel, scale=None) -> bool:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    s = np.abs(want) if scale is None else np.asarray(scale, np.float64)
    atol = rel * float(np.max(s[np.isfinite(s)], initial=0.0)) + 1e-300
    return bool(np.allclose(got, want, rtol=rel, atol=atol, equal_nan=True))


def _submatrices(P: np.ndarray) -> np.ndarray:
    plan = tp.plan_features(P, ["MCC"])
    fn = medfuse._core.glcm_features_u32 if plan.P.dtype == np.uint32 else medfuse._core.glcm_features_f64
    _, _, totals, present = fn(plan.P, False, False, False, 1)
    return kt._present_submatrices(plan.P, present, totals)


@pytest.mark.parametrize("name", ["ct-mediastinal", "ct-lung", "noise"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_all_features_match_twin_to_1e12(name, symmetric):
    img = _images()[name]
    P = medfuse.glcm(img, [1, 3], ANGLES, 256, symmetric=symmetric)
    want = ref.glcm_features(P)
    for P_in in (P, P.astype(np.float64) * 0.25):  # counts (ln-count table) and floats (log per cell)
        got = medfuse.glcm_features(P_in)
        assert set(got) == set(want)
        for feat in SKIMAGE_PROPS + RADIOMICS_FEATURES:
            scale = {"ClusterShade": abs(want["ClusterProminence"]) ** 0.75, "Correlation": 1.0,
                     "correlation": 1.0, "Imc1": 1.0}.get(feat)
            assert _close(got[feat], want[feat], 1e-12, scale), (name, feat, got[feat], want[feat])
    # The fast MCC path was taken (not the eigvals fallback) for these matrices.
    assert tp._mcc_fast(_submatrices(P), 1) is not None


def test_mcc_eps_correction_is_needed_and_exact():
    """Many pairs with rare tail levels: PyRadiomics' eps moves MCC by more than 1e-12."""
    rng = np.random.default_rng(0)
    img = rng.normal(128, 40, (512, 512)).clip(0, 255).astype(np.uint8)
    P = medfuse.glcm(img, [1], [0.0], 256, symmetric=True)
    sub = _submatrices(P)
    lam = tp._mcc_lambda2_fast(sub[0])
    assert lam is not None
    exact = tp.mcc(sub, 1, fast=False)
    assert abs(np.sqrt(lam) - exact) < 1e-12
    # Without the correction (the symmetric problem alone) the value is off by more.
    px, py = sub[0].sum(1), sub[0].sum(0)
    B = sub[0] / np.sqrt(np.outer(px, py))
    uncorrected = np.sqrt(np.sort(np.linalg.eigvalsh(B @ B.T))[-2])
    assert abs(uncorrected - exact) > 1e-11
    assert abs(medfuse.glcm_features(P, features="MCC")["MCC"] - exact) < 1e-12


def test_mcc_blocks():
    # Two bands of levels that never meet: eigenvalue 1 once per block.
    img = np.zeros((64, 64), np.uint8)
    img[:, :32] = np.arange(32)[None, :] % 40
    img[:, 32:] = 100 + (np.arange(32)[None, :] % 40)
    img = img + (np.arange(64)[:, None] % 3).astype(np.uint8)
    for symmetric in (True, False):
        P = medfuse.glcm(img, [1], ANGLES, 256, symmetric=symmetric)
        assert tp._mcc_fast(_submatrices(P), 1) is not None
        got = medfuse.glcm_features(P, features="MCC")["MCC"]
        assert _close(got, ref.glcm_features(P, features="MCC")["MCC"], 1e-12)


def test_mcc_uncertified_falls_back_to_eigvals():
    # Independent rows and columns: Q has rank 1, lambda2 ~ 0 (sqrt is ill-conditioned there).
    a = np.arange(1, 41, dtype=np.uint32)
    P = np.outer(a, a)[:, :, None, None]
    assert tp._mcc_fast(_submatrices(P), 1) is None
    got = medfuse.glcm_features(P, features="MCC")["MCC"]
    want = ref.glcm_features(P, features="MCC")["MCC"]
    assert (np.isnan(got) and np.isnan(want)) or abs(got - want) < 1e-7


def test_all_features_identical_for_any_thread_count():
    P = medfuse.glcm(_images()["ct-mediastinal"], [1, 2], ANGLES, 256, symmetric=True)
    res = {}
    before = medfuse.get_num_threads()
    try:
        for n in (1, 2, 3):
            medfuse.set_num_threads(n)
            res[n] = medfuse.glcm_features(P)
    finally:
        medfuse.set_num_threads(before)
    for n in (2, 3):
        for k in res[1]:
            assert np.array_equal(np.asarray(res[1][k]), np.asarray(res[n][k]), equal_nan=True), (n, k)
