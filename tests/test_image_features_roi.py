"""ImageFeatureExtractor(roi=...): lung and nodule ROIs computed by medfuse.segment."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

pytest.importorskip("sklearn")

from medfuse import segment
from medfuse.data import Volume
from medfuse.data import phantoms as _phantoms
from medfuse.features import ImageFeatureExtractor

FO = ("first_order",)


@lru_cache(maxsize=1)
def _phantom() -> _phantoms.CTPhantom:
    return _phantoms.nodule_ct_phantom(seed=3, diameter_mm=14.0, nodule_hu=30.0, lobe="LUL")


def _volume() -> Volume:
    ph = _phantom()
    return Volume(ph.volume, ph.spacing)


def _row(roi, items, masks=None) -> np.ndarray:
    ex = ImageFeatureExtractor(groups=FO, roi=roi).set_output(transform="pandas")
    return ex.fit(items).transform(items, masks=masks)


def test_roi_lung_equals_the_lung_mask_passed_explicitly() -> None:
    ph = _phantom()
    lungs = segment.lung_mask(ph.volume, spacing=ph.spacing) > 0
    got = _row("lung", [_volume()])
    want = _row(None, [_volume()], masks=[lungs])
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    assert got["fo_Mean"].iloc[0] < -700  # lung parenchyma, not the whole chest


def test_roi_nodule_equals_the_top_candidates_nodule_mask() -> None:
    ph = _phantom()
    lungs = segment.lung_mask(ph.volume, spacing=ph.spacing)
    top = segment.nodule_candidates(ph.volume, lungs, spacing=ph.spacing)[0]
    nodule = segment.nodule_mask(ph.volume, top, spacing=ph.spacing, lung_mask=lungs)
    got = _row("nodule", [_volume()])
    want = _row(None, [_volume()], masks=[nodule])
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    assert got["fo_Mean"].iloc[0] > -300  # the solid (+30 HU) nodule, not the lung
    truth = ph.nodule_mask()
    assert (nodule & truth).sum() > 0.7 * truth.sum()


def _no_nodule_ct() -> np.ndarray:
    """A noiseless box chest with two smooth lungs: no blob, so no candidate."""
    z, y, x = np.mgrid[:24, :48, :64].astype(np.float32)
    vol = np.full(z.shape, -1000.0, dtype=np.float32)
    vol[:, 4:44, 4:60] = 40.0
    for cx in (18.0, 46.0):
        vol[((y - 24) / 16) ** 2 + ((x - cx) / 10) ** 2 < 1] = -850.0
    return vol.astype(np.int16)


def test_roi_nodule_falls_back_to_the_lung_mask_without_candidates() -> None:
    vol = _no_nodule_ct()
    sp = (2.5, 2.0, 2.0)
    lungs = segment.lung_mask(vol, spacing=sp)
    assert segment.nodule_candidates(vol, lungs, spacing=sp) == []
    got = _row("nodule", [Volume(vol, sp)])
    want = _row(None, [Volume(vol, sp)], masks=[lungs > 0])
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


@pytest.mark.parametrize("roi", [None, "mask"])
def test_roi_none_and_mask_keep_the_whole_image(roi) -> None:
    got = _row(roi, [_volume()])
    whole = np.ones(_phantom().volume.shape, dtype=bool)
    want = _row(None, [_volume()], masks=[whole])
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_roi_lung_needs_a_spacing_and_leaves_plain_arrays_whole() -> None:
    vol = _phantom().volume
    np.testing.assert_array_equal(_row("lung", [vol]).to_numpy(), _row(None, [vol]).to_numpy())


def test_given_masks_win_over_roi() -> None:
    box = np.zeros(_phantom().volume.shape, dtype=bool)
    box[10:20, 40:60, 40:60] = True
    got = _row("nodule", [_volume()], masks=[box])
    want = _row(None, [_volume()], masks=[box])
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_roi_mixed_batch_with_missing_item() -> None:
    got = _row("lung", [_volume(), None])
    assert np.isnan(got.to_numpy()[1]).all()
    assert got["fo_Mean"].iloc[0] < -700


def test_bad_roi_is_refused() -> None:
    with pytest.raises(ValueError, match="roi"):
        ImageFeatureExtractor(roi="lungs").fit([_volume()])


def test_roi_lung_without_lungs_names_the_item() -> None:
    solid = Volume(np.full((8, 16, 16), 40, dtype=np.int16), (2.0, 2.0, 2.0))
    ex = ImageFeatureExtractor(groups=FO, roi="lung").fit([solid])
    with pytest.raises(ValueError, match=r"X\[0\]"):
        ex.transform([solid])
