"""medfuse.glcm_features: graycoprops properties vs scikit-image, PyRadiomics features vs
PyRadiomics itself (when installed) and the twin; invariants; threads; refusals."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref
from medfuse.kernels._texture_plan import RADIOMICS_FEATURES, SKIMAGE_PROPS

skfeature = pytest.importorskip("skimage.feature")
IMPLS = [medfuse.glcm_features, ref.glcm_features]
# scikit-image before 0.25 has only the six classic properties.
SKI_AVAILABLE = [p for p in SKIMAGE_PROPS if p in ("contrast", "dissimilarity", "homogeneity", "ASM", "energy", "correlation")]
try:
    skfeature.graycoprops(np.ones((2, 2, 1, 1)), "entropy")
    SKI_AVAILABLE = list(SKIMAGE_PROPS)
except ValueError:  # pragma: no cover - older scikit-image
    pass


def close(got, want, rel=1e-10, scale=None):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if scale is None:
        scale = np.abs(want)
    scale = np.asarray(scale, np.float64)
    finite = scale[np.isfinite(scale)]
    atol = rel * float(finite.max(initial=0.0)) + 1e-300
    return np.allclose(got, want, rtol=rel, atol=atol, equal_nan=True)


@st.composite
def glcms(draw):
    levels = draw(st.integers(1, 40))
    shape = (draw(st.integers(1, 30)), draw(st.integers(1, 30)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "few", "smooth", "constant"]))
    if kind == "uniform":
        img = rng.integers(0, levels, shape)
    elif kind == "few":
        img = rng.choice(rng.integers(0, levels, 2), shape)
    elif kind == "smooth":
        img = np.cumsum(rng.integers(0, 2, shape), axis=1) % levels
    else:
        img = np.full(shape, levels - 1)
    distances = draw(st.lists(st.sampled_from([1, 2, 3, 9]), min_size=1, max_size=2))
    angles = draw(st.lists(st.sampled_from([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4, 2.0]), min_size=1, max_size=4))
    return skfeature.graycomatrix(
        img.astype(np.uint8), distances, angles, levels,
        symmetric=draw(st.booleans()), normed=draw(st.booleans()),
    )


@given(P=glcms())
def test_skimage_props_match_graycoprops(P):
    for impl in IMPLS:
        got = impl(P, features=SKI_AVAILABLE)
        for prop in SKI_AVAILABLE:
            want = skfeature.graycoprops(P, prop)
            assert got[prop].shape == want.shape and got[prop].dtype == np.float64
            # Relative 1e-10; near-zero values (cancellation) relative to the property's scale.
            scale = {"correlation": 1.0}.get(prop)
            assert close(got[prop], want, 1e-10, scale), (impl, prop, got[prop], want)


def _near_zero_imc2():
    P = np.zeros((4, 4, 1, 1))
    P[1, 1], P[1, 3], P[3, 1], P[3, 3] = 62, 59, 61, 58
    return P


@given(P=glcms())
@example(P=_near_zero_imc2())
def test_radiomics_features_match_twin(P):
    got = medfuse.glcm_features(P)
    want = ref.glcm_features(P)
    assert set(got) == set(SKIMAGE_PROPS) | set(RADIOMICS_FEATURES)
    for name in RADIOMICS_FEATURES:
        assert isinstance(got[name], float)
        scale = {"ClusterShade": abs(want["ClusterProminence"]) ** 0.75, "Correlation": 1.0, "Imc1": 1.0}.get(name)
        tol = 1e-7 if name == "MCC" else 1e-10
        if name == "Imc2":
            # Imc2 = sqrt(1 - exp(-2 (HXY2 - HXY))): near 0 the entropy difference cancels (HXY2 ~ HXY to 1e-8 on
            # e.g. P = [[62, 59], [61, 58]] at levels 1 and 3), and the square root turns the entropies' last-bit
            # error into a 1e-9 relative one. Imc2 squared carries it unamplified: compare that, on the [0, 1] scale.
            assert close(got[name] ** 2, want[name] ** 2, tol, 1.0), (name, got[name], want[name])
            continue
        assert close(got[name], want[name], tol, scale), (name, got[name], want[name])


def test_invariants_that_twins_could_share(rng):
    img = rng.integers(1, 25, (40, 37)).astype(np.uint8)
    P = medfuse.glcm(img, [1, 2], None, 25, symmetric=True)
    f = medfuse.glcm_features(P)
    # Same matrices as counts, scaled counts and fractions.
    f3 = medfuse.glcm_features(P.astype(np.uint64) * 3)
    fn = medfuse.glcm_features(medfuse.glcm(img, [1, 2], None, 25, symmetric=True, normed=True))
    for other in (f3, fn):
        for k in f:
            assert close(other[k], f[k], 1e-12, scale=1.0 if k in ("ClusterShade", "Correlation", "correlation") else None), k
    # PyRadiomics features that are averages of graycoprops properties.
    assert close(f["Contrast"], f["contrast"].mean(), 1e-12)
    assert close(f["DifferenceAverage"], f["dissimilarity"].mean(), 1e-12)
    assert close(f["Idm"], f["homogeneity"].mean(), 1e-12)
    assert close(f["JointEnergy"], f["ASM"].mean(), 1e-12)
    assert close(f["JointAverage"], f["mean"].mean(), 1e-12)
    assert close(f["SumSquares"], f["variance"].mean(), 1e-12)
    # Symmetric matrices: sum average is twice the joint average; bounded measures.
    assert close(f["SumAverage"], 2 * f["JointAverage"], 1e-12)
    assert 0 <= f["MCC"] <= 1 + 1e-12 and -1 - 1e-12 <= f["Imc1"] <= 0 and 0 <= f["Imc2"] <= 1
    # Permuting the angles permutes the per-matrix properties.
    perm = [2, 0, 3, 1]
    fp = medfuse.glcm_features(P[:, :, :, perm], features=["contrast", "correlation"])
    assert np.array_equal(fp["contrast"], f["contrast"][:, perm])
    # A diagonal matrix (perfectly correlated texture).
    D = np.zeros((6, 6, 1, 1), np.uint32)
    D[np.arange(1, 6), np.arange(1, 6)] = 10
    fd = medfuse.glcm_features(D)
    assert fd["contrast"][0, 0] == 0 and fd["Contrast"] == 0
    assert close(fd["correlation"][0, 0], 1.0) and close(fd["Correlation"], 1.0)
    assert close(fd["JointEntropy"], np.log2(5)) and close(fd["Imc1"], -1.0)


def test_empty_and_flat_matrices():
    Z = np.zeros((4, 4, 1, 2), np.uint32)
    for impl in IMPLS:
        f = impl(Z)
        for prop in SKI_AVAILABLE:
            assert np.array_equal(f[prop], skfeature.graycoprops(Z, prop))
        assert all(np.isnan(f[n]) for n in RADIOMICS_FEATURES)
    F = np.zeros((4, 4, 1, 2), np.uint32)
    F[2, 2] = 7
    for impl in IMPLS:
        f = impl(F)
        assert f["MCC"] == 1.0 and f["Correlation"] == 1.0 and f["Imc1"] == 0.0 and f["Imc2"] == 0.0
    # One empty direction is left out of the averages, as PyRadiomics deletes empty angles.
    G = np.zeros((5, 5, 1, 2), np.uint32)
    G[1:4, 1:4, 0, 0] = [[4, 1, 0], [1, 6, 2], [0, 2, 3]]
    g = medfuse.glcm_features(G)
    g0 = medfuse.glcm_features(G[:, :, :, :1])
    for n in RADIOMICS_FEATURES:
        assert close(g[n], g0[n], 1e-12), n


@pytest.fixture(scope="module")
def radiomics():
    rad = pytest.importorskip("radiomics.glcm")
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return rad


@pytest.mark.parametrize("case", range(6))
def test_pyradiomics_features(radiomics, case):
    sitk = pytest.importorskip("SimpleITK")
    from medfuse.data import phantoms as _phantoms

    rng = np.random.default_rng(case)
    vol, _ = _phantoms.ct_volume((8 if case != 5 else 1, 40, 44), seed=case)
    zz, yy, xx = np.indices(vol.shape)
    if case % 2 == 0:
        c = [s / 2 + rng.uniform(-2, 2) for s in vol.shape]
        mask = ((zz - c[0]) ** 2 / 12 + (yy - c[1]) ** 2 / 150 + (xx - c[2]) ** 2 / 120) < 1
    else:
        mask = rng.random(vol.shape) < 0.7
    mask[tuple(s // 2 for s in vol.shape)] = True
    g = radiomics.RadiomicsGLCM(
        sitk.GetImageFromArray(vol.astype(np.float64)), sitk.GetImageFromArray(mask.astype(np.uint8)),
        binWidth=[25, 40, 60][case % 3],
    )
    g.enableAllFeatures()
    want = {k: float(v) for k, v in g.execute().items()}
    q = np.asarray(g.imageArray)
    roi = np.asarray(g.maskArray, bool)
    P = medfuse.glcm(q.astype(np.int32), [1], None, int(q[roi].max()) + 1, mask=roi, symmetric=True)
    assert set(want) == set(RADIOMICS_FEATURES)
    for impl in IMPLS:
        got = impl(P, features=list(RADIOMICS_FEATURES))
        for name, w in want.items():
            scale = {"ClusterShade": abs(want["ClusterProminence"]) ** 0.75}.get(name)
            assert close(got[name], w, 1e-8 if name == "MCC" else 1e-10, scale), (impl, name, got[name], w)


def test_feature_selection():
    P = medfuse.glcm(np.arange(30, dtype=np.uint8).reshape(5, 6) % 4, [1], None, 4)
    assert list(medfuse.glcm_features(P, features="ASM")) == ["ASM"]
    assert list(medfuse.glcm_features(P, features=["Idn", "energy", "Idn"])) == ["Idn", "energy"]


def test_threads_identical():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 200, (3, 200, 190)).astype(np.uint8)
    P = medfuse.glcm(img, [1], None, 200, symmetric=True)
    res = {}
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        res[n] = medfuse.glcm_features(P, features=[f for f in SKIMAGE_PROPS + RADIOMICS_FEATURES if f != "MCC"])
    for n in (2, 7):
        for k in res[1]:
            assert np.array_equal(np.asarray(res[1][k]), np.asarray(res[n][k]), equal_nan=True), k


# ---- refusals ---------------------------------------------------------------------


@pytest.fixture(params=IMPLS, ids=["medfuse", "reference"])
def impl(request):
    return request.param


P0 = np.ones((3, 3, 1, 1), np.uint32)


@pytest.mark.parametrize("bad", [np.ones((3, 3)), np.ones((3, 4, 1, 1)), np.ones((3, 3, 1)), np.ones((0, 0, 1, 1))])
def test_refuses_bad_shape(impl, bad):
    with pytest.raises(ValueError, match="P"):
        impl(bad)


@pytest.mark.parametrize("bad", [P0.astype(bool), P0.astype(np.complex128), np.full((3, 3, 1, 1), "a")])
def test_refuses_bad_dtype(impl, bad):
    with pytest.raises(TypeError, match="P"):
        impl(bad)


@pytest.mark.parametrize("value", [-1.0, np.nan, np.inf])
def test_refuses_bad_values(impl, value):
    bad = P0.astype(np.float64)
    bad[0, 1, 0, 0] = value
    with pytest.raises(ValueError, match="P"):
        impl(bad)


def test_refuses_unknown_feature(impl):
    with pytest.raises(ValueError, match="features"):
        impl(P0, features=["Contrast", "Dissimilarity"])
    with pytest.raises(ValueError, match="features"):
        impl(P0, features=[])


def test_refuses_non_string_feature(impl):
    with pytest.raises(TypeError, match="features"):
        impl(P0, features=[3])
    with pytest.raises(TypeError, match="features"):
        impl(P0, features=3)
