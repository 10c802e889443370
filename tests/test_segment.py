"""medfuse.segment: lung masks, nodule candidates and nodule masks on the synthetic phantoms."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

import medfuse as mf
from medfuse import segment
from medfuse.data import phantoms as _phantoms
from medfuse.kernels.morphology import fill_holes, label

SHAPE = (48, 128, 128)


@cache
def _phantom(diameter_mm=12.0, nodule_hu=30.0, lobe="RUL", seed=5, spiculation=0.0, lobulation=0.0):
    return _phantoms.nodule_ct_phantom(
        SHAPE, seed=seed, diameter_mm=diameter_mm, nodule_hu=nodule_hu, lobe=lobe,
        spiculation=spiculation, lobulation=lobulation,
    )


@cache
def _lungs(**kw):
    ph = _phantom(**kw)
    return segment.lung_mask(ph.volume, spacing=ph.spacing)


def _true_nodule(**kw) -> np.ndarray:
    """Voxels painted with at least half a voxel of nodule (same case with +100 HU nodule)."""
    ph = _phantom(**kw)
    kw2 = dict(kw)
    kw2["nodule_hu"] = kw.get("nodule_hu", 30.0) + 100.0
    plus = _phantom(**kw2)
    return (plus.volume.astype(np.int32) - ph.volume) >= 50


def _dice(a, b) -> float:
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


# ---------------------------------------------------------------- lung_mask


def test_lung_mask_two_lungs_right_is_image_left() -> None:
    m = _lungs()
    assert m.dtype == np.uint8 and m.shape == SHAPE
    assert set(np.unique(m)) == {0, 1, 2}
    xs = np.arange(SHAPE[2])
    mean_x = [float((xs * (m == k).sum(axis=(0, 1))).sum() / (m == k).sum()) for k in (1, 2)]
    # x index 0 is the patient's right (radiological convention of the phantoms).
    assert mean_x[0] < SHAPE[2] / 2 < mean_x[1]
    # One connected component per lung.
    for k in (1, 2):
        assert label(m == k, connectivity=26)[1] == 1


def test_lung_mask_matches_the_phantom_lungs() -> None:
    ph = _phantom()
    truth = _phantoms._static_anatomy(SHAPE).lung >= 0.5
    m = _lungs() > 0
    assert _dice(m, truth) > 0.95
    truth_x = np.arange(SHAPE[2])[None, None, :] < SHAPE[2] // 2
    right = (_lungs() == 1)
    assert (right & truth).sum() / (truth & truth_x).sum() > 0.95
    assert ph.volume[m].mean() < -700


def test_lung_mask_has_no_outside_air_and_no_holes() -> None:
    ph = _phantom()
    m = _lungs()
    outside, _ = label(ph.volume < -400, connectivity=6)
    border_labels = np.unique(np.concatenate([outside[:, 0].ravel(), outside[:, -1].ravel(),
                                              outside[:, :, 0].ravel(), outside[:, :, -1].ravel()]))
    border_labels = border_labels[border_labels > 0]
    assert not (m > 0)[np.isin(outside, border_labels)].any()
    assert not m[:, 0].any() and not m[:, -1].any() and not m[:, :, 0].any() and not m[:, :, -1].any()
    # No holes in any slice, except the diaphragm's domes: in the lowest slices the liver and spleen are
    # discs enclosed by lung, and they are not lung (they continue into the abdomen).
    spacing = ph.spacing
    centre = _phantoms._centre_mm(SHAPE, spacing)
    zz, yy, xx = (np.arange(n)[:, None] * s - c for n, s, c in zip(SHAPE, spacing, centre))
    below_dome = zz[:, :, None] > _phantoms.dome_z(yy.reshape(1, -1, 1), xx.reshape(1, 1, -1)) - 1.0
    assert below_dome[-1].any() and not below_dome[: SHAPE[0] // 2].any()
    holes_seen = 0
    for k in (1, 2):
        lung = m == k
        for z in range(SHAPE[0]):
            holes = fill_holes(lung[z]) & ~lung[z]
            assert not (holes & ~below_dome[z]).any(), z
            holes_seen += int(holes.sum())
    assert holes_seen > 0  # the domes' tops are in the volume, and the mask leaves them out
    # Vessels and the nodule (brighter than -400 HU inside the lungs) are in the mask.
    # (Two voxels away from the phantom's lung border: ribs overlap the outer layer.)
    inside = mf.binary_erode(_phantoms._static_anatomy(SHAPE).lung >= 0.5, connectivity=26, iterations=2,
                             border_value=1)
    bright = inside & (ph.volume > -400)
    assert bright.sum() > 200
    assert (m[bright] > 0).mean() > 0.97
    assert (m[ph.nodule_mask()] > 0).all()


def test_lung_mask_splits_touching_lungs() -> None:
    z, y, x = np.mgrid[:20, :64, :80].astype(np.float32)
    vol = np.full(z.shape, -1000.0, dtype=np.float32)
    vol[:, 4:60, 4:76] = 40.0
    for cx in (26.0, 54.0):
        vol[((y - 32) / 20) ** 2 + ((x - cx) / 15) ** 2 < 1] = -850.0
    vol[:, 28:36, 36:44] = -850.0  # a bridge: the two lungs touch
    sp = (2.5, 2.0, 2.0)
    assert label(vol < -400, connectivity=6)[1] == 2  # outside air + one lung blob
    m = segment.lung_mask(vol, spacing=sp, close_mm=2.0)
    sizes = [(m == k).sum() for k in (1, 2)]
    assert min(sizes) > 0.8 * max(sizes)
    assert (m == 1)[:, :, :44].sum() == (m == 1).sum()  # cut inside the bridge (x 36..43)
    assert (m == 2)[:, :, 36:].sum() == (m == 2).sum()
    assert (m == 1)[:, :, :36].sum() > 0.85 * (m == 1).sum()
    assert (m == 2)[:, :, 44:].sum() > 0.85 * (m == 2).sum()


def test_lung_mask_dtypes_agree() -> None:
    ph = _phantom()
    want = _lungs()
    for dt in (np.float32, np.float64, np.int32):
        np.testing.assert_array_equal(segment.lung_mask(ph.volume.astype(dt), spacing=ph.spacing), want)


def test_thread_count_does_not_change_results() -> None:
    ph = _phantom(diameter_mm=8.0, nodule_hu=-600.0)
    out = []
    before = mf.get_num_threads()
    try:
        for t in (1, 2, 7):
            mf.set_num_threads(t)
            m = segment.lung_mask(ph.volume, spacing=ph.spacing)
            c = segment.nodule_candidates(ph.volume, m, spacing=ph.spacing)
            out.append((m, c))
    finally:
        mf.set_num_threads(before)
    for m, c in out[1:]:
        np.testing.assert_array_equal(m, out[0][0])
        assert c == out[0][1]


# ---------------------------------------------------------------- detection


CASES = [
    dict(diameter_mm=12.0, nodule_hu=30.0, lobe="RUL"),  # solid
    dict(diameter_mm=9.0, nodule_hu=-600.0, lobe="LLL", seed=11),  # ground glass
    dict(diameter_mm=16.0, nodule_hu=-300.0, lobe="RLL", seed=12, lobulation=0.6),  # part-solid
    dict(diameter_mm=7.0, nodule_hu=350.0, lobe="LUL", seed=13),  # calcified, small
    dict(diameter_mm=20.0, nodule_hu=20.0, lobe="RML", seed=14, spiculation=0.8, lobulation=1.0),  # spiculated
]


def _hit(c, ph) -> bool:
    true_mm = np.array(ph.nodule_center) * np.array(ph.spacing)
    return bool(np.linalg.norm(np.array(c.center_mm) - true_mm) <= ph.nodule_radius_mm)


@pytest.mark.parametrize("case", CASES, ids=["solid", "ground-glass", "part-solid", "calcified", "spiculated"])
def test_nodule_found_and_segmented(case) -> None:
    ph = _phantom(**case)
    lungs = _lungs(**case)
    cands = segment.nodule_candidates(ph.volume, lungs, spacing=ph.spacing)
    assert cands, "no candidate"
    assert _hit(cands[0], ph), (cands[0], ph.nodule_center)
    m = segment.nodule_mask(ph.volume, cands[0], spacing=ph.spacing, lung_mask=lungs)
    assert m.dtype == np.bool_ and m.shape == SHAPE
    assert label(m, connectivity=6)[1] == 1
    assert _dice(m, _true_nodule(**case)) > 0.75


def test_candidates_are_sorted_capped_and_inside_the_lungs() -> None:
    ph = _phantom()
    lungs = _lungs()
    cands = segment.nodule_candidates(ph.volume, lungs, spacing=ph.spacing, max_candidates=7, min_score=0.0)
    assert len(cands) == 7
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True)
    for c in cands:
        assert lungs[tuple(round(v) for v in c.center_voxel)] > 0
        assert 2.0 - 1e-9 <= c.radius_mm <= 15.0 + 1e-9
        np.testing.assert_allclose(c.center_mm, np.array(c.center_voxel) * np.array(ph.spacing))
    # Non-maximum suppression: no candidate within the radius of a better one.
    for i, a in enumerate(cands):
        for b in cands[:i]:
            assert np.linalg.norm(np.array(a.center_mm) - np.array(b.center_mm)) >= max(a.radius_mm, b.radius_mm)


def test_no_blob_no_candidate_and_uniform_lung() -> None:
    vol = np.full((16, 40, 40), 40, dtype=np.int16)
    vol[:, 8:32, 5:18] = -850
    vol[:, 8:32, 22:35] = -850
    lungs = segment.lung_mask(vol, spacing=(2.0, 2.0, 2.0))
    assert set(np.unique(lungs)) == {0, 1, 2}
    assert segment.nodule_candidates(vol, lungs, spacing=(2.0, 2.0, 2.0)) == []


def test_nodule_mask_accepts_a_mapping_or_a_pandas_row() -> None:
    pd = pytest.importorskip("pandas")
    ph = _phantom()
    lungs = _lungs()
    c = segment.nodule_candidates(ph.volume, lungs, spacing=ph.spacing, max_candidates=1)[0]
    want = segment.nodule_mask(ph.volume, c, spacing=ph.spacing)
    np.testing.assert_array_equal(segment.nodule_mask(ph.volume, c.as_dict(), spacing=ph.spacing), want)
    row = pd.DataFrame([c.as_dict()]).iloc[0]
    np.testing.assert_array_equal(segment.nodule_mask(ph.volume, row, spacing=ph.spacing), want)


def test_nodule_mask_stays_in_the_reach_sphere() -> None:
    ph = _phantom(diameter_mm=20.0, nodule_hu=20.0, lobe="RML", seed=14, spiculation=0.8, lobulation=1.0)
    c = segment.nodule_candidates(ph.volume, _lungs(diameter_mm=20.0, nodule_hu=20.0, lobe="RML", seed=14,
                                                    spiculation=0.8, lobulation=1.0), spacing=ph.spacing)[0]
    m = segment.nodule_mask(ph.volume, c, spacing=ph.spacing, reach=1.0)
    d = np.linalg.norm((np.argwhere(m) - np.array(c.center_voxel)) * np.array(ph.spacing), axis=1)
    assert d.max() <= c.radius_mm + max(ph.spacing) + 1e-6


def test_segment_is_a_lazy_submodule() -> None:
    assert mf.segment is segment
    assert "segment" in mf.__all__


# ---------------------------------------------------------------- refusals


def _small():
    vol = np.full((8, 24, 24), 40, dtype=np.int16)
    vol[:, 6:18, 3:11] = -850
    vol[:, 6:18, 13:21] = -850
    lungs = np.zeros(vol.shape, dtype=np.uint8)
    lungs[:, 6:18, 3:11] = 1
    lungs[:, 6:18, 13:21] = 2
    cand = segment.NoduleCandidate(4.0, 12.0, 6.0, 8.0, 24.0, 12.0, 3.0, 100.0, 0)
    return vol, lungs, cand


SP = (2.0, 2.0, 2.0)


def test_refuses_bool_ct() -> None:
    vol, _l, _c = _small()
    with pytest.raises(TypeError, match="ct_hu"):
        segment.lung_mask(vol > 0, spacing=SP)


def test_refuses_2d_ct() -> None:
    vol, _l, _c = _small()
    with pytest.raises(ValueError, match="ct_hu must be a 3D volume"):
        segment.lung_mask(vol[0], spacing=SP)


def test_refuses_nan_ct() -> None:
    vol, lungs, _c = _small()
    f = vol.astype(np.float32)
    f[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="ct_hu"):
        segment.nodule_candidates(f, lungs, spacing=SP)


def test_refuses_ct_without_lungs() -> None:
    with pytest.raises(ValueError, match="no air region|no lung"):
        segment.lung_mask(np.full((8, 16, 16), 40, dtype=np.int16), spacing=SP)


@pytest.mark.parametrize("bad", [(1.0, 1.0), (1.0, 1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -2.0, 1.0),
                                 (1.0, float("nan"), 1.0), (float("inf"), 1.0, 1.0), None, "1,1,1"])
def test_refuses_bad_spacing(bad) -> None:
    vol, lungs, cand = _small()
    with pytest.raises(ValueError, match="spacing"):
        segment.lung_mask(vol, spacing=bad)
    with pytest.raises(ValueError, match="spacing"):
        segment.nodule_candidates(vol, lungs, spacing=bad)
    with pytest.raises(ValueError, match="spacing"):
        segment.nodule_mask(vol, cand, spacing=bad)


def test_refuses_float_lung_mask() -> None:
    vol, lungs, _c = _small()
    with pytest.raises(TypeError, match="lung_mask"):
        segment.nodule_candidates(vol, lungs.astype(np.float32), spacing=SP)


def test_refuses_lung_mask_shape_mismatch() -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="lung_mask has shape"):
        segment.nodule_candidates(vol, lungs[:-1], spacing=SP)


def test_refuses_empty_lung_mask() -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="lung_mask is empty"):
        segment.nodule_candidates(vol, np.zeros_like(lungs), spacing=SP)


def test_refuses_negative_lung_mask() -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="lung_mask must be >= 0"):
        segment.nodule_candidates(vol, lungs.astype(np.int8) - 1, spacing=SP)


def test_refuses_lung_mask_in_nodule_mask_of_wrong_shape() -> None:
    vol, lungs, cand = _small()
    with pytest.raises(ValueError, match="lung_mask"):
        segment.nodule_mask(vol, cand, spacing=SP, lung_mask=lungs[:, :-1])


@pytest.mark.parametrize("bad", [(10, 4), (4, 4), (0, 10), (-4, 10), (4,), (4, 10, 20), (4, float("nan")), "4-30"])
def test_refuses_bad_diameters(bad) -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="diameters_mm"):
        segment.nodule_candidates(vol, lungs, spacing=SP, diameters_mm=bad)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_refuses_bad_max_candidates(bad) -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="max_candidates"):
        segment.nodule_candidates(vol, lungs, spacing=SP, max_candidates=bad)


def test_refuses_bad_n_scales() -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="n_scales"):
        segment.nodule_candidates(vol, lungs, spacing=SP, n_scales=0)


def test_refuses_nan_min_score() -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="min_score"):
        segment.nodule_candidates(vol, lungs, spacing=SP, min_score=float("nan"))


@pytest.mark.parametrize("bad", [(-500, -1000), (0, 0), "x", None])
def test_refuses_bad_clip_hu(bad) -> None:
    vol, lungs, _c = _small()
    with pytest.raises(ValueError, match="clip_hu"):
        segment.nodule_candidates(vol, lungs, spacing=SP, clip_hu=bad)


def test_refuses_bad_threshold_and_close() -> None:
    vol, _l, _c = _small()
    with pytest.raises(ValueError, match="threshold_hu"):
        segment.lung_mask(vol, spacing=SP, threshold_hu=float("nan"))


def test_refuses_huge_close_mm() -> None:
    # A 255 mm closing made the structuring element ~10^8 offsets: refused before any work.
    vol = _phantom().volume
    with pytest.raises(ValueError, match="close_mm"):
        segment.lung_mask(vol, spacing=SP, close_mm=255)


def test_refuses_non_positive_close_mm() -> None:
    vol, _l, _c = _small()
    with pytest.raises(ValueError, match="close_mm"):
        segment.lung_mask(vol, spacing=SP, close_mm=0)


@pytest.mark.parametrize("bad", [None, 3.0, (4.0, 12.0, 6.0), {"z": 1.0}])
def test_refuses_bad_candidate_type(bad) -> None:
    vol, _l, _c = _small()
    with pytest.raises(TypeError, match="candidate"):
        segment.nodule_mask(vol, bad, spacing=SP)


@pytest.mark.parametrize("bad", [
    {"z": 40.0, "y": 12.0, "x": 6.0, "radius_mm": 3.0},  # outside the volume
    {"z": 4.0, "y": 12.0, "x": 6.0, "radius_mm": 0.0},  # radius not positive
    {"z": float("nan"), "y": 12.0, "x": 6.0, "radius_mm": 3.0},
])
def test_refuses_bad_candidate_values(bad) -> None:
    vol, _l, _c = _small()
    with pytest.raises(ValueError, match="candidate"):
        segment.nodule_mask(vol, bad, spacing=SP)


def test_huge_reach_is_the_whole_volume() -> None:
    # reach * radius overflowing to inf must not crash (found by the hostile suite: OverflowError).
    ph = _phantom()
    c = segment.nodule_candidates(ph.volume, _lungs(), spacing=ph.spacing)[0]
    big = segment.nodule_mask(ph.volume, c, spacing=ph.spacing, reach=1e308)
    wide = segment.nodule_mask(ph.volume, c, spacing=ph.spacing, reach=1e6)
    np.testing.assert_array_equal(big, wide)


def test_refuses_bad_reach() -> None:
    vol, _l, cand = _small()
    with pytest.raises(ValueError, match="reach"):
        segment.nodule_mask(vol, cand, spacing=SP, reach=0.0)
