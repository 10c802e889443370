"""medfuse.data.radiograph: the PA chest radiograph of a cohort phantom.

Checked against closed forms computed here (a nodule's line integral,
chords of a tube and an ellipsoid sampled along the beam), the CT phantom's
own rib voxels (painted on a fine grid and summed along the beam), and the
anatomy's expected layout (lungs dark, domes where the model puts them,
findings where the CT has them)."""

from __future__ import annotations

import numpy as np
import pytest

from medfuse.data import phantoms, radiograph
from medfuse.features import ImageFeatureExtractor

SHAPE = (48, 128, 128)
CODES_PER_MU = 4095 / 8.0  # 12 bits over a log-attenuation of 8
MU = 0.019 / 1000.0  # per mm per HU


def _row(z_rel_mm: float) -> float:
    """Detector row (fractional index) of a Z relative to the CT's centre."""
    return (radiograph.SLAB_TOP_MM + phantoms.FOV_Z_MM / 2 + z_rel_mm) / radiograph.PIXEL_MM - 0.5


def _col(x_rel_mm: float) -> float:
    return (x_rel_mm + phantoms.FOV_YX_MM / 2) / radiograph.PIXEL_MM - 0.5


@pytest.fixture(scope="module")
def normal():
    return phantoms.disease_ct_phantom(SHAPE, seed=5)


def test_size_geometry_determinism(normal):
    a = radiograph.pa_radiograph(normal.volume, seed=1)
    assert a.shape == radiograph.DETECTOR_SHAPE == (616, 512) and min(a.shape) >= 512
    assert a.dtype == np.uint16 and a.max() < 4096
    np.testing.assert_array_equal(a, radiograph.pa_radiograph(normal.volume, seed=1))
    b = radiograph.pa_radiograph(normal.volume, seed=2)
    diff = a.astype(float) - b
    assert 0 < np.abs(diff).mean() < 8  # quantum noise only
    # the detector is as wide as the CT's field of view: 512 columns of 0.7 mm
    assert radiograph.PIXEL_MM == pytest.approx(0.7) and radiograph.PIXEL_MM * a.shape[1] == pytest.approx(phantoms.FOV_YX_MM)


def test_slab_rows_locate_the_ct_slices(normal):
    """A change in one CT slice shows on the detector rows slab_rows puts that slice on."""
    top, bottom = radiograph.slab_rows(SHAPE)
    assert top == pytest.approx(70.0 / 0.7) and bottom - top == pytest.approx(160 / 0.7)
    assert radiograph.slab_rows((17, 64, 96)) == pytest.approx((top, bottom))  # 160 mm whatever the slice count
    lung = phantoms._static_anatomy(SHAPE).lung >= 0.5
    base = radiograph.pa_radiograph(normal.volume, seed=4).astype(float)
    for k in (5, 40):
        vol = normal.volume.copy()
        vol[k][lung[k]] += 300  # denser lung in slice k only
        profile = (radiograph.pa_radiograph(vol, seed=4) - base).mean(axis=1)
        rows = np.arange(len(profile))
        weight = np.clip(profile - 0.2 * profile.max(), 0.0, None)  # the triangle of linear interpolation, not the noise
        centre = float((rows * weight).sum() / weight.sum())
        expected = top + (k + 0.5) * (bottom - top) / SHAPE[0] - 0.5  # row index whose centre is the slice's centre
        assert abs(centre - expected) < 0.5, (k, centre, expected)


def test_anatomy_layout(normal):
    img = radiograph.pa_radiograph(normal.volume, seed=0).astype(float)
    r_mid = int(_row(0.0))
    right_lung = img[r_mid - 10 : r_mid + 10, int(_col(-80)) - 10 : int(_col(-80)) + 10].mean()
    left_lung = img[r_mid - 10 : r_mid + 10, int(_col(85)) - 10 : int(_col(85)) + 10].mean()
    spine = img[r_mid - 10 : r_mid + 10, int(_col(0)) - 5 : int(_col(0)) + 5].mean()
    abdomen = img[int(_row(200)), int(_col(-68))]
    outside = img[r_mid, :8].mean()
    assert outside < 5  # air beside the body
    assert right_lung < spine - 400 and left_lung < spine - 400
    assert abdomen > right_lung + 400
    # each dome's edge where the model puts it: the right dome's top (below the right lung's centre) at Z = 62 mm,
    # inside the CT (which ends at 80); the left one, lower, seen beside the heart and the gastric bubble (|X| = 95)
    assert phantoms.DOME_TOP_MM == {-1.0: 62.0, 1.0: 72.0}
    for x in (-68.0, -85.0, 95.0):
        expected = float(phantoms.dome_z(np.float64(phantoms.DOME_Y_MM), np.float64(x)))
        col = img[:, int(_col(x)) - 2 : int(_col(x)) + 3].mean(axis=1)
        step = np.diff(col[int(_row(30)) : int(_row(140))])
        edge_row = int(_row(30)) + int(np.argmax(step))
        assert abs(edge_row - _row(expected)) <= 3, (x, expected)
    assert float(phantoms.dome_z(np.float64(phantoms.DOME_Y_MM), np.float64(-68.0))) == 62.0
    # the apices: lung below Z = -90, none above Z = -105 (the apex is at -100)
    c = int(_col(-68))
    assert img[int(_row(-90)), c] < img[int(_row(-110)), c] - 200
    # ribs cross the lung fields: the lung column's profile has a rib period of 26 mm
    from scipy import ndimage

    prof = img[int(_row(-60)) : int(_row(60)), c - 3 : c + 4].mean(axis=1)
    prof = prof - ndimage.uniform_filter1d(prof, int(40 / radiograph.PIXEL_MM), mode="nearest")  # drop the trend
    spec = np.abs(np.fft.rfft(prof * np.hanning(len(prof))))
    freqs = np.fft.rfftfreq(len(prof), d=radiograph.PIXEL_MM)
    band = (freqs > 1 / 60) & (freqs < 1 / 8)
    peak = freqs[band][int(np.argmax(spec[band]))]
    assert abs(1 / peak - 26.0) < 4.0
    assert spec[band].max() > 3 * np.median(spec[band])


def test_nodule_line_integral_matches_the_closed_form():
    d_mm, hu = 20.0, 30.0
    kw = dict(seed=7, lobe="RUL", offset_mm=(0.0, 0.0, 0.0))
    with_n = phantoms.nodule_ct_phantom(SHAPE, diameter_mm=d_mm, nodule_hu=hu, **kw)
    without = phantoms.nodule_ct_phantom(SHAPE, diameter_mm=0.01, nodule_hu=hu, **kw)
    diff = radiograph.pa_radiograph(with_n.volume, seed=3).astype(float) - radiograph.pa_radiograph(without.volume, seed=3)
    zc, _yc, xc = with_n.nodule_center
    dz, _dy, dx = with_n.spacing
    r = _row(zc * dz - (SHAPE[0] - 1) * dz / 2)
    c = _col(xc * dx - (SHAPE[2] - 1) * dx / 2)
    peak = np.unravel_index(np.argmax(ndi_smooth(diff)), diff.shape)
    assert abs(peak[0] - r) < 4 and abs(peak[1] - c) < 4
    # centre chord: the diameter, through lung at about -850 HU (the CT's voxels smear it a little)
    expected = d_mm * (hu + 850.0) * MU * CODES_PER_MU
    ri, ci = round(r), round(c)
    got = diff[ri - 1 : ri + 2, ci - 1 : ci + 2].mean()
    assert 0.75 * expected < got < 1.1 * expected
    far = diff[int(_row(60)) :, :].copy()
    assert np.abs(far).mean() < 5  # nothing elsewhere (noise only)


def ndi_smooth(a):
    from scipy import ndimage

    return ndimage.uniform_filter(a, 5)


def test_effusion_shows_at_the_base_and_reaches_the_dome():
    base = dict(seed=11)
    dry = phantoms.disease_ct_phantom(SHAPE, **base)
    wet = phantoms.disease_ct_phantom(SHAPE, effusion=True, **base)
    assert wet.effusion_mask.any()
    diff = radiograph.pa_radiograph(wet.volume, seed=1).astype(float) - radiograph.pa_radiograph(dry.volume, seed=1)
    x = np.nonzero(wet.effusion_mask.any(axis=(0, 1)))[0]
    side = -1.0 if x.mean() < SHAPE[2] / 2 else 1.0
    c = int(_col(side * 80))
    inside_low = diff[int(_row(60)) : int(_row(78)), c - 5 : c + 5].mean()
    below_ct = diff[int(_row(81)) : int(_row(88)), c - 5 : c + 5].mean()  # under the CT's last slice, above the dome
    upper = diff[int(_row(-60)) : int(_row(-40)), c - 5 : c + 5].mean()
    assert inside_low > 30 and below_ct > 10 and abs(upper) < 6


def _sampled_chord(inside, z, x, y_lo=-200.0, y_hi=200.0, n=40001):
    ys = np.linspace(y_lo, y_hi, n)
    return float(inside(z, ys, x).mean() * (y_hi - y_lo))


def test_closed_form_chords_against_sampling():
    g = radiograph._Grid(np.array([[-20.0], [3.0], [31.0]]), np.array([[-40.0, 10.0, 22.0, 35.0]]))
    a, b, r = (-30.0, -40.0, 0.0), (25.0, 30.0, 30.0), 7.0
    chords = radiograph._tube_chord(g, a, b, r)
    pa, pb = np.array(a), np.array(b)

    def in_capsule(z, ys, x):
        p = np.stack([np.full_like(ys, z), ys, np.full_like(ys, x)], axis=1)
        t = np.clip((p - pa) @ (pb - pa) / ((pb - pa) @ (pb - pa)), 0, 1)
        return np.linalg.norm(p - (pa + t[:, None] * (pb - pa)), axis=1) <= r

    for i, z in enumerate(g.z[:, 0]):
        for j, x in enumerate(g.x[0]):
            want = _sampled_chord(in_capsule, z, x)
            # the closed form treats the tube as a cylinder between its projected ends (caps approximated)
            assert chords[i, j] == pytest.approx(want, abs=1.5), (z, x)
    y0, y1 = radiograph._ellipsoid_interval(g, (5.0, 8.0, 20.0), (40.0, 30.0, 25.0))
    for i, z in enumerate(g.z[:, 0]):
        for j, x in enumerate(g.x[0]):
            want = _sampled_chord(lambda z, ys, x: ((z - 5) / 40) ** 2 + ((ys - 8) / 30) ** 2 + ((x - 20) / 25) ** 2 <= 1, z, x)
            assert y1[i, j] - y0[i, j] == pytest.approx(want, abs=0.05)


def test_rib_projection_matches_the_ct_phantoms_ribs():
    """The radiograph's rib projection against the rib voxels the CT phantom paints (phantoms._paint_ribs, the
    painter of ct_phantom and of the cohort anatomy) on a fine grid, summed along the beam."""
    zs = np.linspace(-75.0, 75.0, 31)  # inside the CT's slab; 5 mm apart, incommensurate with the rib period
    xs = np.array([-140.0, -130.0, -100.0, -60.0, -20.0, 0.5, 45.0, 90.0, 120.0, 135.0])
    ribs = radiograph._rib_projection(radiograph._Grid(zs[:, None], xs[None, :]))
    step, n_sub = 0.1, 7  # mm along the beam; lateral samples across each 0.7 mm column
    ys = np.arange(-140.0, 140.0, step).astype(np.float32)
    sub = (np.arange(n_sub) + 0.5) / n_sub * radiograph.PIXEL_MM - radiograph.PIXEL_MM / 2
    xx = (xs[:, None] + sub[None, :]).ravel().astype(np.float32)
    vol = np.zeros((len(zs), len(ys), len(xx)), np.float32)
    # a 1 mm partial-volume edge, as the radiograph's model has across each rib's upper and lower borders
    phantoms._paint_ribs(vol, zs.astype(np.float32), ys[:, None], xx[None, :], 1.0)
    occupancy = vol.astype(np.float64) / phantoms.HU_RIB
    ct = occupancy.sum(axis=1).reshape(len(zs), len(xs), n_sub).mean(axis=2) * step
    assert ct.max() > 20.0 and (ct < 0.1).mean() > 0.1  # rays through ribs and rays between them
    # The two differ only in how the partial volume is spread: the CT ramps it over 1 mm of the rib's normalised
    # radius (0.9 mm radially, too), the radiograph over 1 mm in z with a sharp radial border, sampled every 0.5 mm
    # along the beam at two lateral positions. Both ramps are centred on the same ellipse, so the chords agree to
    # first order; what remains is < 1 mm where a ray runs along the shell (the outer columns) and far less elsewhere.
    np.testing.assert_allclose(ribs, ct, atol=1.0, rtol=0.02)
    assert np.abs(ribs - ct).mean() < 0.1


def test_refusals(normal):
    with pytest.raises(ValueError, match="cohort phantom"):
        radiograph.pa_radiograph(np.zeros(SHAPE, np.int16))
    with pytest.raises(ValueError, match="volume must be"):
        radiograph.pa_radiograph(np.zeros((48, 128), np.int16))
    with pytest.raises(ValueError, match="bits"):
        radiograph.pa_radiograph(normal.volume, bits=20)
    with pytest.raises(TypeError, match="HU numbers"):
        radiograph.pa_radiograph(normal.volume.astype(bool))
    for bad in ((48, 128), (0, 128, 128)):
        with pytest.raises(ValueError, match="shape must be"):
            radiograph.slab_rows(bad)


def test_feature_extractor_reduces_large_radiographs(normal):
    img = radiograph.pa_radiograph(normal.volume, seed=0)
    f = 5  # ceil(616 / 128)
    h, w = img.shape[0] // f, img.shape[1] // f
    small = np.rint(img[: h * f, : w * f].reshape(h, f, w, f).mean(axis=(1, 3))).astype(np.uint16)
    ext = ImageFeatureExtractor(window="auto", max_side=128).fit([img])
    ref = ImageFeatureExtractor(window="auto").fit([small])
    np.testing.assert_allclose(ext.transform([img]), ref.transform([small]), rtol=1e-9, atol=1e-12)
    mask = np.zeros(img.shape, bool)
    mask[200:300, 100:200] = True
    small_mask = mask[: h * f, : w * f].reshape(h, f, w, f).mean(axis=(1, 3)) >= 0.5
    np.testing.assert_allclose(ext.transform([img], masks=[mask]), ref.transform([small], masks=[small_mask]), rtol=1e-9)
    np.testing.assert_array_equal(ext.working_image(img), ref.working_image(small))
    same = ImageFeatureExtractor(window="auto", max_side=1024).fit([img])
    np.testing.assert_array_equal(same.transform([img]), ImageFeatureExtractor(window="auto").fit([img]).transform([img]))
    for bad in (4, True, 12.5, "big"):
        with pytest.raises(ValueError, match="max_side"):
            ImageFeatureExtractor(max_side=bad).fit([img])
