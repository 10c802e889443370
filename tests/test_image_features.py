"""medfuse.features.ImageFeatureExtractor: values equal the kernels called directly."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

import medfuse as mf
from medfuse.data import Volume
from medfuse.data import phantoms as _phantoms
from medfuse.features import ImageFeatureExtractor
from medfuse.features.image import FIRST_ORDER_FEATURES, GLCM_FEATURES


def _xray(seed: int = 0, shape=(64, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = 1500 + 800 * np.exp(-((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 3) ** 2) / 150.0)
    img = img + 300 * (xx > shape[1] // 2) + rng.normal(0, 40, shape)
    return np.clip(img, 0, 4095).astype(np.uint16)


def _ct(seed: int = 0, shape=(12, 40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    vol = -800 + 850 * (((zz - 6) ** 2 / 9 + (yy - 20) ** 2 / 40 + (xx - 24) ** 2 / 50) < 1)
    return (vol + rng.normal(0, 30, shape)).astype(np.int16)


# ---------------------------------------------------------------- values = kernels


def _expected(img, mask, ex: ImageFeatureExtractor, spacing=None) -> dict[str, float]:
    """Every feature recomputed by calling the kernels directly (the documented recipe)."""
    out: dict[str, float] = {}
    vv = float(np.prod(spacing)) if spacing is not None else 1.0
    fo = mf.first_order(img, mask, bin_width=ex.bin_width, voxel_volume=vv)
    out.update({f"fo_{k}": fo[k] for k in FIRST_ORDER_FEATURES})
    sel = img[mask] if mask is not None else img
    if ex.window == "auto":
        lo, hi = float(sel.min()), float(sel.max())
        work = mf.window(img, lo + (hi - lo) / 2, hi - lo, out_dtype=np.uint8)
    else:
        work = mf.window(img, *ex.window, out_dtype=np.uint8)
    if ex.denoise == "median":
        work = mf.median(work, ex.median_size)
    if ex.clahe:
        work = mf.clahe(work, ex.clahe_clip, ex.clahe_grid)
    n = int(mask.sum()) if mask is not None else img.size
    counts, _ = mf.histogram(work, ex.hist_bins, (0.0, 255.0), mask=mask)
    out.update({f"hist_{i:02d}": c / n for i, c in enumerate(counts)})
    edges = mf.canny(work, *ex.canny_thresholds, spacing=spacing) > 0
    esel = edges if mask is None else edges & mask
    out["edge_density"] = esel.sum() / n
    g = mf.sobel(work)
    th = np.mod(np.arctan2(g[-2][esel].astype(float), g[-1][esel].astype(float)), np.pi)
    oc, _ = np.histogram(th, ex.n_orientations, (0.0, np.pi))
    out.update({f"edge_orient_{k}": c / max(esel.sum(), 1) for k, c in enumerate(oc)})
    q = mf.quantize(work, levels=ex.glcm_levels, mask=mask)
    P = mf.glcm(q, [1], None, ex.glcm_levels + 1, mask=mask, symmetric=True)
    gf = mf.glcm_features(P)
    out.update({f"glcm_{k}": gf[k] for k in GLCM_FEATURES})
    src = work.astype(np.float32)
    region = mask if mask is not None else np.ones(img.shape, bool)
    stack, names = mf.filter_bank(src, kind="log", sigmas=list(ex.log_sigmas))
    out.update({f"{nm}_energy": float(np.mean(r[region].astype(float) ** 2)) for nm, r in zip(names, stack)})
    stack, names = mf.filter_bank(src, kind="laws", laws_vectors=list(ex.laws_vectors), laws_window=ex.laws_window)
    out.update({f"laws_{nm}_mean": float(np.mean(r[region].astype(float))) for nm, r in zip(names, stack)})
    if img.ndim == 2:
        stack, names = mf.filter_bank(src, kind="gabor", frequencies=list(ex.gabor_frequencies),
                                      orientations=ex.gabor_orientations)
        out.update({f"{nm}_energy": float(np.mean(r[region].astype(float) ** 2)) for nm, r in zip(names, stack)})
    return out


def _compare(row, names, expected):
    assert set(names) == set(expected), set(names) ^ set(expected)
    for name, value in zip(names, row):
        e = expected[name]
        if isinstance(e, float) and math.isnan(e):
            assert math.isnan(value), name
        else:
            assert value == pytest.approx(e, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("use_mask", [False, True])
def test_xray_values_equal_kernels(use_mask):
    img = _xray(1)
    mask = None
    if use_mask:
        mask = np.zeros(img.shape, bool)
        mask[10:50, 5:70] = True
    ex = ImageFeatureExtractor(clahe=True, denoise="median")
    X = [(img, mask)] if use_mask else [img]
    row = ex.fit_transform(X)[0]
    _compare(row, ex.get_feature_names_out(), _expected(img, mask, ex))


@pytest.mark.parametrize("use_mask", [False, True])
def test_ct_values_equal_kernels(use_mask):
    vol = _ct(2)
    spacing = (2.5, 0.8, 0.8)
    mask = None
    if use_mask:
        mask = vol > -300
    ex = ImageFeatureExtractor(window=(-600, 1500))
    row = ex.fit([Volume(vol, spacing)]).transform([Volume(vol, spacing)], masks=[mask])[0]
    _compare(row, ex.get_feature_names_out(), _expected(vol, mask, ex, spacing))


def test_names_shape_and_groups():
    x2 = ImageFeatureExtractor().fit([_xray()])
    x3 = ImageFeatureExtractor().fit([_ct()])
    n2, n3 = x2.get_feature_names_out(), x3.get_feature_names_out()
    assert len(set(n2)) == len(n2) and len(set(n3)) == len(n3)
    assert any(n.startswith("gabor_") for n in n2) and not any(n.startswith("gabor_") for n in n3)
    assert sum(n.startswith("laws_") for n in n2) == 4 and sum(n.startswith("laws_") for n in n3) == 8
    out = x2.transform([_xray(0), _xray(1), _xray(2)])
    assert out.shape == (3, len(n2)) and out.dtype == np.float64 and np.isfinite(out).all()
    only = ImageFeatureExtractor(groups=("edges", "histogram")).fit([_xray()])
    names = list(only.get_feature_names_out())
    assert names[0] == "hist_00" and "edge_density" in names and len(names) == 16 + 1 + 8
    # a subset of groups gives exactly the same values as the full set's columns
    full = dict(zip(n2, x2.transform([_xray(3)])[0]))
    sub = only.transform([_xray(3)])[0]
    assert [full[n] for n in names] == list(sub)


def test_histogram_and_orientation_are_fractions():
    ex = ImageFeatureExtractor(groups=("histogram", "edges")).fit([_xray()])
    row = dict(zip(ex.get_feature_names_out(), ex.transform([_xray(5)])[0]))
    assert sum(v for k, v in row.items() if k.startswith("hist_")) == pytest.approx(1.0)
    assert sum(v for k, v in row.items() if k.startswith("edge_orient_")) == pytest.approx(1.0)
    assert 0 < row["edge_density"] < 1


def test_edge_orientation_of_vertical_stripes():
    # vertical stripes: gradients along x only → every edge pixel in bin 0 (angle 0 or pi → 0)
    img = np.zeros((40, 40), np.uint8)
    img[:, 10:20] = 200
    ex = ImageFeatureExtractor(groups=("edges",), window=None).fit([img])
    row = dict(zip(ex.get_feature_names_out(), ex.transform([img])[0]))
    assert row["edge_orient_0"] == 1.0 and row["edge_density"] == pytest.approx(80 / 1600)


def test_pandas_output_and_none_rows():
    ex = ImageFeatureExtractor().set_output(transform="pandas")
    df = ex.fit_transform([_xray(0), None, _xray(1)])
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(ex.get_feature_names_out())
    assert df.iloc[1].isna().all() and df.iloc[[0, 2]].notna().all().all()


def test_stack_array_and_series_input():
    imgs = np.stack([_xray(0), _xray(1)])
    ex = ImageFeatureExtractor(groups=("first_order",)).fit(imgs)
    a = ex.transform(imgs)
    b = ex.transform(pd.Series([imgs[0], imgs[1]]))
    c = ex.transform([imgs[0][::-1, ::-1].copy()[::-1, ::-1], imgs[1]])  # same images, other layout
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_mask_restricts_region():
    img = _xray(4)
    mask = np.zeros(img.shape, bool)
    mask[:, :30] = True
    ex = ImageFeatureExtractor(groups=("first_order",)).fit([img])
    a = ex.transform([img], masks=[mask])[0]
    b = ex.transform([img[:, :30].copy()])[0]
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(a, ex.transform([img])[0])
    # an int 0/1 mask is accepted and equal
    np.testing.assert_array_equal(a, ex.transform([(img, mask.astype(np.uint8))])[0])


def test_fit_is_stateless_and_pickles():
    ex = ImageFeatureExtractor(groups=("first_order", "glcm"))
    a = ex.fit([_xray(0)]).transform([_xray(7)])
    b = ex.fit([_xray(1), _xray(2)]).transform([_xray(7)])
    np.testing.assert_array_equal(a, b)
    ex2 = pickle.loads(pickle.dumps(ex))
    np.testing.assert_array_equal(ex2.transform([_xray(7)]), a)


def test_phantom_ct_and_xray():
    ph = _phantoms.nodule_ct_phantom((24, 64, 64), seed=3, diameter_mm=12.0)
    xr = _phantoms.xray_from_ct(ph.volume, ph.spacing, bits=12, seed=3)
    ct = ImageFeatureExtractor(window=(-600, 1500)).fit_transform([Volume(ph.volume, ph.spacing)])
    xx = ImageFeatureExtractor(clahe=True).fit_transform([xr])
    assert np.isfinite(ct).all() and np.isfinite(xx).all()


def test_float_image_without_window():
    img = np.random.default_rng(0).random((32, 32))
    ex = ImageFeatureExtractor(window=None, groups=("histogram", "glcm", "filters"), bin_width=0.1)
    out = ex.fit_transform([img])
    assert np.isfinite(out).all()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "X, exc, match",
    [
        ("image.png", TypeError, "X"),
        ([], ValueError, "0 images"),
        ([None, None], ValueError, "every item is None"),
        (np.zeros((4, 5)), ValueError, "shape"),
        ([np.zeros(5)], ValueError, r"X\[0\].*2D"),
        ([np.zeros((2, 3, 4, 5))], ValueError, r"X\[0\]"),
        ([np.zeros((4, 4), bool)], TypeError, "numeric"),
        ([np.array([["a", "b"]])], TypeError, "numeric"),
        ([np.full((4, 4), np.nan)], ValueError, "NaN"),
        ([np.zeros((4, 4)), np.zeros((2, 4, 4))], ValueError, "mixes"),
        ([(np.zeros((4, 4)), None, None)], ValueError, "tuple"),
        ([(np.zeros((4, 4)), np.zeros((3, 3), bool))], ValueError, "masks"),
        ([(np.zeros((4, 4)), np.zeros((4, 4), bool))], ValueError, "selects no voxel"),
        ([(np.zeros((4, 4)), np.full((4, 4), 2))], TypeError, "boolean"),
        (5, TypeError, "sequence of images"),
    ],
)
def test_bad_input(X, exc, match):
    with pytest.raises(exc, match=match):
        ImageFeatureExtractor().fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"window": (0, -1)}, "window"),
        ({"window": "lung"}, "window"),
        ({"denoise": "bilateral"}, "denoise"),
        ({"groups": "edges"}, "groups"),
        ({"groups": ("edges", "shape")}, "groups"),
        ({"hist_bins": 0}, "hist_bins"),
        ({"glcm_levels": 1.5}, "glcm_levels"),
        ({"canny_thresholds": 5}, "canny_thresholds"),
        ({"laws_vectors": ("L5", "Q5")}, "laws_vectors"),
    ],
)
def test_bad_params(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ImageFeatureExtractor(**params).fit([_xray()])


def test_clahe_on_3d_refused():
    with pytest.raises(ValueError, match="clahe"):
        ImageFeatureExtractor(clahe=True).fit([_ct()])


def test_transform_other_ndim_and_mask_conflict():
    ex = ImageFeatureExtractor().fit([_xray()])
    with pytest.raises(ValueError, match="fitted on 2D"):
        ex.transform([_ct()])
    m = np.ones((64, 80), bool)
    with pytest.raises(ValueError, match="pass one"):
        ex.transform([(_xray(), m)], masks=[m])
    with pytest.raises(ValueError, match="masks has 2"):
        ex.transform([_xray()], masks=[m, m])


def test_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ImageFeatureExtractor().transform([_xray()])


# ---------------------------------------------------------------- sklearn checks

# scikit-learn's data checks feed (n_samples, n_features) tables; this transformer takes a
# sequence of images (tag three_d_array, two_d_array False), for which sklearn skips its data
# checks. The API checks below do not depend on the input type and are run explicitly.
API_CHECKS = [
    "check_no_attributes_set_in_init", "check_parameters_default_constructible", "check_get_params_invariance",
    "check_set_params", "check_estimator_repr", "check_estimator_cloneable", "check_estimator_tags_renamed",
    "check_valid_tag_types", "check_mixin_order", "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimators_unfitted",
]


@pytest.mark.parametrize("check_name", API_CHECKS)
def test_sklearn_api_checks(check_name):
    from sklearn.utils import estimator_checks as ec

    check = getattr(ec, check_name, None)
    if check is None:
        pytest.skip(f"{check_name} is not in this scikit-learn version")
    check(type(ImageFeatureExtractor()).__name__, ImageFeatureExtractor())


def test_sklearn_skips_data_checks_with_reason():
    from sklearn.exceptions import SkipTestWarning
    from sklearn.utils.estimator_checks import check_estimator

    with pytest.warns(SkipTestWarning, match="three_d_array=True"):
        check_estimator(ImageFeatureExtractor())


# -- cropping to the ROI's bounding box (a speed-up that must not change any number)


@pytest.mark.parametrize("kw", [dict(window=(-600.0, 1500.0)), dict(window="auto", denoise="median"),
                                dict(window=None, denoise="gaussian")])
def test_crop_to_roi_gives_the_same_features_3d(kw: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from medfuse.data import phantoms as _phantoms
    from medfuse.features.image import ImageFeatureExtractor as IFE

    ph = _phantoms.ct_phantom((32, 96, 96), seed=1)
    vol = ph.volume
    box = ph.nodule_box()
    mask = np.zeros(vol.shape, bool)
    mask[box] = ph.nodule_mask(box)
    e = IFE(log_sigmas=(1.0, 2.0), **kw).fit([vol])
    assert e._crop_box(mask) is not None  # the crop really happens
    got = e.transform([vol], masks=[mask])
    monkeypatch.setattr(IFE, "_crop_to_roi", False)
    want = e.transform([vol], masks=[mask])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_crop_to_roi_gives_the_same_features_2d(monkeypatch: pytest.MonkeyPatch) -> None:
    from medfuse.data import phantoms as _phantoms
    from medfuse.features.image import ImageFeatureExtractor as IFE

    ph = _phantoms.ct_phantom((16, 128, 128), seed=2)
    xray = _phantoms.xray_from_ct(ph.volume, ph.spacing, seed=2)
    mask = np.zeros(xray.shape, bool)
    h, w = xray.shape
    mask[h // 3: h // 2, w // 4: w // 2] = True
    e = IFE().fit([xray])
    assert e._crop_box(mask) is not None
    got = e.transform([xray], masks=[mask])
    monkeypatch.setattr(IFE, "_crop_to_roi", False)
    np.testing.assert_allclose(got, e.transform([xray], masks=[mask]), rtol=1e-9, atol=1e-12)
    # CLAHE works on tiles of the whole image: never cropped
    assert IFE(clahe=True).fit([xray])._crop_box(mask) is None
