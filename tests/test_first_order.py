"""medfuse.quantize and medfuse.first_order against PyRadiomics (when installed) and the twins."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref

DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]
EXACT = ("Minimum", "Maximum", "Range", "10Percentile", "90Percentile", "Median", "InterquartileRange",
         "Entropy", "Uniformity", "Mean")


def _volume(dtype, shape, seed):
    g = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        x = g.standard_normal(shape) * 300 + 40
    elif dt.kind == "i":
        x = g.integers(-1024, 2000, shape)
    else:
        x = g.integers(0, 255 if dt == np.uint8 else 4000, shape)
    m = g.random(shape) < 0.5
    m.flat[0] = True
    return x.astype(dt), m


@st.composite
def cases(draw):
    dt = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=2, max_size=3)))
    x, m = _volume(dt, shape, draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        x = x // 7 * 7 if np.dtype(dt).kind in "iu" else np.round(x / 25) * 25  # values on bin edges
        x = x.astype(dt)
    return x, (m if draw(st.booleans()) else None)


@given(cases(), st.sampled_from([1.0, 7.0, 25.0, 0.5]))
def test_first_order_matches_twin(case, bw):
    x, m = case
    got = medfuse.first_order(x, m, bin_width=bw, voxel_volume=0.5)
    want = ref.first_order(x, m, bin_width=bw, voxel_volume=0.5)
    assert list(got) == list(want)
    for k in got:
        if k in EXACT:
            assert got[k] == want[k], k
        else:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-9, err_msg=k, equal_nan=True)
    assert got["TotalEnergy"] == got["Energy"] * 0.5
    assert got["Minimum"] <= got["10Percentile"] <= got["Median"] <= got["90Percentile"] <= got["Maximum"]


@given(cases(), st.sampled_from([("w", 25.0), ("w", 3.0), ("n", 1), ("n", 8), ("n", 64)]))
def test_quantize_matches_twin(case, binning):
    x, m = case
    kw = dict(bin_width=binning[1]) if binning[0] == "w" else dict(levels=binning[1])
    got = medfuse.quantize(x, mask=m, **kw)
    np.testing.assert_array_equal(got, ref.quantize(x, mask=m, **kw))
    assert got.dtype == np.int32
    roi = got[m] if m is not None else got.ravel()
    flat = np.ptp(x[m] if m is not None else x) == 0
    # levels start at 1 (a flat region with a bin count sits in numpy's middle bin, as PyRadiomics)
    assert roi.min() == 1 or (flat and binning[0] == "n")
    if m is not None:
        assert (got[~m] == 0).all()
    if binning[0] == "n":
        assert roi.max() == binning[1] or flat


def test_quantize_range_clips():
    x = np.arange(-50, 150, dtype=np.int16).reshape(10, 20)
    q = medfuse.quantize(x, levels=4, range=(0, 100))
    np.testing.assert_array_equal(q, ref.quantize(x, levels=4, range=(0, 100)))
    assert q[x < 0].max() == 1 and q[x > 100].min() == 4
    q = medfuse.quantize(x, bin_width=10.0, range=(0, 100))
    np.testing.assert_array_equal(q, ref.quantize(x, bin_width=10.0, range=(0, 100)))


def _radiomics():
    pytest.importorskip("radiomics")
    sitk = pytest.importorskip("SimpleITK")
    from radiomics import firstorder, imageoperations

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return sitk, firstorder, imageoperations


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(5, 30, 40), (1, 7, 9), (3, 3, 3)])
def test_first_order_matches_pyradiomics(dtype, shape):
    sitk, firstorder, _ = _radiomics()
    x, m = _volume(dtype, shape, seed=sum(shape))
    img = sitk.GetImageFromArray(x)
    img.SetSpacing((0.7, 0.8, 2.5))
    mk = sitk.GetImageFromArray(m.astype(np.uint8))
    mk.CopyInformation(img)
    fo = firstorder.RadiomicsFirstOrder(img, mk, binWidth=10.0, label=1)
    fo.enableAllFeatures()
    fo.enableFeatureByName("StandardDeviation")
    want = {k: float(v) for k, v in fo.execute().items()}
    got = medfuse.first_order(x, m, bin_width=10.0, voxel_volume=0.7 * 0.8 * 2.5)
    assert set(got) == set(want)
    for k in got:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-9, err_msg=k)
        if k in ("Minimum", "Maximum", "10Percentile", "90Percentile", "Median", "Entropy", "Uniformity"):
            assert got[k] == want[k], k


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_quantize_matches_pyradiomics(dtype):
    _, _, imageoperations = _radiomics()
    for seed, shape in enumerate([(4, 20, 30), (1, 1, 1), (2, 3, 5)]):
        x, m = _volume(dtype, shape, seed)
        for kw in (dict(binWidth=25.0), dict(binWidth=3.0), dict(binCount=16), dict(binCount=1)):
            want, _ = imageoperations.binImage(x, m, **kw)
            ours = dict(bin_width=kw["binWidth"]) if "binWidth" in kw else dict(levels=kw["binCount"])
            np.testing.assert_array_equal(medfuse.quantize(x, mask=m, **ours), want)
            np.testing.assert_array_equal(ref.quantize(x, mask=m, **ours), want)


def test_flat_region():
    x = np.full((4, 5), 100, dtype=np.int16)
    f = medfuse.first_order(x)
    assert f["Skewness"] == 0 and f["Kurtosis"] == 0 and f["Variance"] == 0 and f["Entropy"] < 1e-12
    np.testing.assert_array_equal(medfuse.quantize(x), np.ones_like(x, dtype=np.int32))


def test_first_order_thread_invariance():
    g = np.random.default_rng(1)
    x = g.integers(-1024, 3000, (8, 300, 300)).astype(np.int16)
    m = g.random(x.shape) < 0.3
    res = []
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        res.append((medfuse.first_order(x, m), medfuse.quantize(x, mask=m, levels=32)))
    for r in res[1:]:
        assert r[0] == res[0][0]
        np.testing.assert_array_equal(r[1], res[0][1])


@pytest.mark.parametrize(
    "fn,kwargs,exc,match",
    [
        ("quantize", dict(levels=4, bin_width=2.0), ValueError, "levels"),
        ("quantize", dict(levels=0), ValueError, "levels"),
        ("quantize", dict(levels=2.5), TypeError, "levels"),
        ("quantize", dict(bin_width=0.0), ValueError, "bin_width"),
        ("quantize", dict(bin_width=np.nan), ValueError, "bin_width"),
        ("quantize", dict(bin_width=1e-9), ValueError, "bin_width"),
        ("quantize", dict(range=(5, 5)), ValueError, "range"),
        ("quantize", dict(mask=np.zeros((3, 4), bool)), ValueError, "mask"),
        ("quantize", dict(mask=np.ones((3, 4), np.int8)), TypeError, "mask"),
        ("quantize", dict(mask=np.ones((4, 4), bool)), ValueError, "mask"),
        ("first_order", dict(mask=np.zeros((3, 4), bool)), ValueError, "mask"),
        ("first_order", dict(bin_width=-1.0), ValueError, "bin_width"),
        ("first_order", dict(voxel_volume=0.0), ValueError, "voxel_volume"),
        ("first_order", dict(mask=np.ones((2, 4), bool)), ValueError, "mask"),
    ],
)
def test_refusals(fn, kwargs, exc, match):
    x = np.arange(12, dtype=np.float64).reshape(3, 4) * 100
    for mod in (medfuse, ref):
        with pytest.raises(exc, match=match):
            getattr(mod, fn)(x, **kwargs)


@pytest.mark.parametrize("fn", ["quantize", "first_order"])
def test_refuses_nan_in_region(fn):
    x = np.array([[1.0, np.nan], [3.0, 4.0]])
    for mod in (medfuse, ref):
        with pytest.raises(ValueError, match="image"):
            getattr(mod, fn)(x)
    m = np.array([[True, False], [True, True]])
    got, want = medfuse.first_order(x, m), ref.first_order(x, m)
    for k in got:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, err_msg=k)
    np.testing.assert_array_equal(medfuse.quantize(x, mask=m), ref.quantize(x, mask=m))
