"""GLCM texture: medfuse against its NumPy twin, scikit-image, mahotas and PyRadiomics.

Groups:
  glcm-u8-512          512x512 uint8 CT slice (mediastinal window), 256 levels,
                       distance 1, 4 angles: glcm + the six graycoprops properties
                       vs skimage graycomatrix + graycoprops (and the twin).
  haralick-u8-512      same image: symmetric glcm + every feature but MCC vs
                       mahotas.features.haralick (13 Haralick features, 4 directions).
  glcm3d-ct-32x512x512 32x512x512 CT block discretised PyRadiomics-style (bin width
                       25 HU from the minimum, levels from 1), whole block as ROI:
                       symmetric glcm over the 13 directions + all 24 PyRadiomics
                       features (MCC included) vs radiomics.glcm.RadiomicsGLCM.
  glcm-features-all-u8-512  the CT slice's symmetric 256-level glcm (4 directions):
                       all 34 features (MCC included) vs the twin.

Inputs are built outside the timed calls; agreement is asserted once, outside
the timing. With --benchmark-disable every case runs once.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import medfuse
import medfuse.reference as ref
from medfuse.data import phantoms as _phantoms

SKI_PROPS = ["contrast", "dissimilarity", "homogeneity", "ASM", "energy", "correlation"]
ANGLES = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
NO_MCC = [f for f in medfuse.kernels._texture_plan.ALL_FEATURES if f != "MCC"]


@lru_cache(maxsize=1)
def _ct_block() -> np.ndarray:
    vol, _ = _phantoms.ct_volume((32, 512, 512), seed=0)
    return vol


@lru_cache(maxsize=1)
def _slice_u8() -> np.ndarray:
    return _phantoms.window_u8(_ct_block()[16], 40.0, 400.0)


@lru_cache(maxsize=1)
def _quantized() -> tuple[np.ndarray, int]:
    hu = _ct_block().astype(np.int32)
    lo = int(hu.min()) - int(hu.min()) % 25  # PyRadiomics' lowest bin edge
    q = ((hu - lo) // 25 + 1).astype(np.uint8)
    return q, int(q.max()) + 1


def _info(benchmark, implementation, family, threads, inp, checked):
    benchmark.extra_info.update(
        implementation=implementation, family=family, threads=threads, input=inp, checked_against=checked
    )


# ---- glcm + graycoprops, 2D ------------------------------------------------------

G2 = "glcm-u8-512"
IN2 = "512x512 uint8 CT slice, 256 levels, distance 1, 4 angles, 6 graycoprops properties"


def _ski_2d(img):
    from skimage.feature import graycomatrix, graycoprops

    P = graycomatrix(img, [1], ANGLES, 256)
    return P, {p: graycoprops(P, p) for p in SKI_PROPS}


def _medfuse_2d(img):
    P = medfuse.glcm(img, [1], ANGLES, 256)
    return P, medfuse.glcm_features(P, features=SKI_PROPS)


def _ref_2d(img):
    P = ref.glcm(img, [1], ANGLES, 256)
    return P, ref.glcm_features(P, features=SKI_PROPS)


def _assert_same_2d(a, b):
    assert np.array_equal(a[0], b[0])
    for p in SKI_PROPS:
        assert np.allclose(a[1][p], b[1][p], rtol=1e-10, atol=1e-13), p


@pytest.mark.benchmark(group=G2)
@pytest.mark.parametrize("impl", ["medfuse-1", "medfuse-2", "reference", "skimage"])
def test_glcm_u8_512(benchmark: BenchmarkFixture, impl: str) -> None:
    img = _slice_u8()
    if impl == "skimage":
        pytest.importorskip("skimage")
        result = benchmark(_ski_2d, img)
        _info(benchmark, "skimage graycomatrix + graycoprops", "skimage", None, IN2, "medfuse")
        _assert_same_2d(result, _medfuse_2d(img))
        return
    pytest.importorskip("skimage")
    want = _ski_2d(img)
    if impl == "reference":
        result = benchmark(_ref_2d, img)
        _info(benchmark, "medfuse.reference (NumPy twin)", "reference", None, IN2, "skimage")
    else:
        threads = int(impl.split("-")[1])
        medfuse.set_num_threads(threads)
        result = benchmark(_medfuse_2d, img)
        _info(benchmark, f"medfuse ({threads} thread{'s' if threads > 1 else ''})", "medfuse", threads, IN2, "skimage")
    _assert_same_2d(result, want)


# ---- vs mahotas' Haralick features ------------------------------------------------

GH = "haralick-u8-512"
INH = "512x512 uint8 CT slice, 256 levels, symmetric, 4 directions, Haralick/PyRadiomics features"


def _medfuse_haralick(img):
    P = medfuse.glcm(img, [1], ANGLES, 256, symmetric=True)
    return medfuse.glcm_features(P, features=NO_MCC)


@pytest.mark.benchmark(group=GH)
@pytest.mark.parametrize("impl", ["medfuse-1", "medfuse-2", "mahotas"])
def test_haralick_u8_512(benchmark: BenchmarkFixture, impl: str) -> None:
    img = _slice_u8()
    if impl == "mahotas":
        mahotas_features = pytest.importorskip("mahotas.features")
        h = benchmark(mahotas_features.haralick, img)
        ours = _medfuse_haralick(img)
        # mahotas row per direction; column 0 is the angular second moment, 1 the contrast.
        asm_ok = np.allclose(np.sort(h[:, 0]), np.sort(ours["ASM"].ravel()), rtol=1e-10)
        con_ok = np.allclose(np.sort(h[:, 1]), np.sort(ours["contrast"].ravel()), rtol=1e-10)
        assert asm_ok and con_ok
        _info(benchmark, "mahotas.features.haralick", "mahotas", None, INH, "medfuse (ASM, contrast per direction)")
        return
    threads = int(impl.split("-")[1])
    medfuse.set_num_threads(threads)
    benchmark(_medfuse_haralick, img)
    _info(benchmark, f"medfuse ({threads} thread{'s' if threads > 1 else ''})", "medfuse", threads, INH, None)


# ---- 3D: 13 directions + all PyRadiomics features -----------------------------------

G3 = "glcm3d-ct-32x512x512"
IN3 = "32x512x512 CT block, bin width 25 HU (81 levels), whole block as ROI, 13 directions, 24 GLCM features"


def _medfuse_3d(q, levels, roi):
    P = medfuse.glcm(q, [1], None, levels, mask=roi, symmetric=True)
    return medfuse.glcm_features(P, features=list(medfuse.kernels._texture_plan.RADIOMICS_FEATURES))


def _pyradiomics_3d(q_img, m_img):
    from radiomics import glcm as rglcm

    g = rglcm.RadiomicsGLCM(q_img, m_img, binWidth=1)  # input already discretised: identity binning
    g.enableAllFeatures()
    return {k: float(v) for k, v in g.execute().items()}


@pytest.mark.benchmark(group=G3)
@pytest.mark.parametrize("impl", ["medfuse-1", "medfuse-2", "pyradiomics"])
def test_glcm3d_ct(benchmark: BenchmarkFixture, impl: str) -> None:
    q, levels = _quantized()
    roi = np.ones(q.shape, dtype=bool)
    if impl == "pyradiomics":
        pytest.importorskip("radiomics")
        sitk = pytest.importorskip("SimpleITK")
        logging.getLogger("radiomics").setLevel(logging.ERROR)
        q_img = sitk.GetImageFromArray(q.astype(np.int32))
        m_img = sitk.GetImageFromArray(roi.astype(np.uint8))
        want = benchmark.pedantic(_pyradiomics_3d, args=(q_img, m_img), rounds=1, iterations=1)
        ours = _medfuse_3d(q, levels, roi)
        for k, v in want.items():
            tol = 1e-8 if k == "MCC" else 1e-10
            assert abs(ours[k] - v) <= tol * max(abs(v), 1e-3), (k, ours[k], v)
        _info(benchmark, "PyRadiomics RadiomicsGLCM (execute)", "pyradiomics", None, IN3, "medfuse")
        return
    threads = int(impl.split("-")[1])
    medfuse.set_num_threads(threads)
    benchmark.pedantic(_medfuse_3d, args=(q, levels, roi), rounds=9, iterations=1, warmup_rounds=1)
    _info(benchmark, f"medfuse ({threads} thread{'s' if threads > 1 else ''})", "medfuse", threads, IN3, "pyradiomics")


# ---- all 34 features (MCC included), 2D ---------------------------------------------

GA = "glcm-features-all-u8-512"
INA = "glcm of the 512x512 uint8 CT slice, 256 levels, symmetric, 4 directions: all 34 features"


@pytest.mark.benchmark(group=GA)
@pytest.mark.parametrize("impl", ["medfuse-1", "medfuse-2", "reference"])
def test_glcm_features_all_u8_512(benchmark: BenchmarkFixture, impl: str) -> None:
    P = medfuse.glcm(_slice_u8(), [1], ANGLES, 256, symmetric=True)
    want = ref.glcm_features(P)
    if impl == "reference":
        benchmark(ref.glcm_features, P)
        _info(benchmark, "medfuse.reference (NumPy twin)", "reference", None, INA, None)
        return
    threads = int(impl.split("-")[1])
    medfuse.set_num_threads(threads)
    got = benchmark(medfuse.glcm_features, P)
    for name, w in want.items():
        assert np.allclose(got[name], w, rtol=1e-12, atol=1e-12 * float(np.max(np.abs(w)))), name
    _info(benchmark, f"medfuse ({threads} thread{'s' if threads > 1 else ''})", "medfuse", threads, INA, "twin")
