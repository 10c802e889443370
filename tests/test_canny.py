"""medfuse.canny: against cv2.Canny, against its NumPy twin, and on geometry.

* 2D uint8 equals cv2.Canny pixel for pixel (every aperture, L1/L2).
* The kernel equals medfuse.reference.canny bit for bit for every dtype,
  2D and 3D, with and without sigma/spacing, in any memory layout.
* Cross-dtype consistency (uint8 vs scaled uint16 vs float), int16 in HU.
* 3D: edges of spheres and tubes lie on the true surface and cover it; a
  stack of identical slices gives the 2D result; spacing and sigma in mm.
* Output contract: uint8 in {0, 255}, input's shape, input untouched.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

import images
import medfuse
import medfuse.reference as ref
import strategies as S


def ref_canny(*args, **kw):
    """The twin, without NumPy's overflow warnings (float64 extremes overflow to inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return ref.canny(*args, **kw)


def _canny_cv2(cv2, x, low, high, aperture, l2):
    x = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))  # cv2 ignores byte order
    return cv2.Canny(x, float(low), float(high), apertureSize=aperture, L2gradient=l2)


def _describe_mismatch(got, want):
    bad = np.argwhere(got != want)
    return f"{len(bad)} of {got.size} pixels differ; first at {bad[:5].tolist()}: got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]}"


def assert_same_edges(got, want):
    assert got.shape == want.shape
    assert got.dtype == want.dtype == np.uint8
    if not np.array_equal(got, want):
        raise AssertionError(_describe_mismatch(got, want))


# ---------------------------------------------------------------------------
# 2D uint8 == cv2.Canny


@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize("aperture", [3, 5, 7])
@pytest.mark.parametrize("family", list(images.FAMILIES))
def test_uint8_matches_cv2_families(cv2, family, aperture, l2):
    for shape, seed in [((61, 47), 0), ((64, 64), 1)]:
        x = images.make(family, shape, np.uint8, seed)
        med, top = S.magnitude_quantiles(x, aperture)
        for low, high in [(0.1 * top, 0.3 * top), (0.3 * top, 0.3 * top), (0.0, 0.5 * top), (0.0, 0.0), (med, top)]:
            got = medfuse.canny(x, low, high, aperture_size=aperture, l2_gradient=l2)
            assert_same_edges(got, _canny_cv2(cv2, x, low, high, aperture, l2))


@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize("aperture", [3, 5, 7])
def test_uint8_matches_cv2_tiny(cv2, tiny_image, aperture, l2):
    scale = {3: 1.0, 5: 12.0, 7: 160.0}[aperture]
    for low, high in [(0, 0), (10, 30), (50, 50), (0, 200), (300, 900)]:
        low, high = low * scale, high * scale
        got = medfuse.canny(tiny_image, low, high, aperture_size=aperture, l2_gradient=l2)
        assert_same_edges(got, _canny_cv2(cv2, tiny_image, low, high, aperture, l2))


@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize("aperture", [3, 5, 7])
@pytest.mark.parametrize("family,shape", [("ct", (256, 256)), ("natural", (301, 413)), ("noise", (129, 257))])
def test_uint8_matches_cv2_large(cv2, family, shape, aperture, l2):
    """Sizes at which every SIMD main loop and thread band is exercised."""
    x = images.make(family, shape, np.uint8, seed=7)
    _, top = S.magnitude_quantiles(x, aperture)
    for low, high in [(0.08 * top, 0.2 * top), (0.25 * top, 0.25 * top)]:
        got = medfuse.canny(x, low, high, aperture_size=aperture, l2_gradient=l2)
        assert_same_edges(got, _canny_cv2(cv2, x, low, high, aperture, l2))


@pytest.mark.parametrize("aperture", [3, 5, 7])
def test_uint8_matches_cv2_l2_threshold_clamp(cv2, aperture):
    """cv2 clamps L2 thresholds at 32767 before squaring; so must medfuse."""
    x = images.make("blocks", (40, 52), np.uint8, seed=3)
    for low, high in [(30000, 40000), (40000, 1e6), (32767, 32768), (1e9, 1e9)]:
        got = medfuse.canny(x, low, high, aperture_size=aperture, l2_gradient=True)
        assert_same_edges(got, _canny_cv2(cv2, x, low, high, aperture, True))


@given(data=st.data(), aperture=S.apertures, l2=st.booleans())
def test_uint8_matches_cv2_property(cv2, data, aperture, l2):
    x = data.draw(S.image_views(np.uint8, 2), label="image")
    if data.draw(st.booleans(), label="thresholds from magnitudes"):
        low, high = data.draw(S.thresholds_for(x, aperture), label="low, high")
    else:  # arbitrary floats, incl. above cv2's clamps
        t = sorted(data.draw(st.lists(st.floats(0.0, 4e5), min_size=2, max_size=2), label="raw thresholds"))
        low, high = t
    got = medfuse.canny(x, low, high, aperture_size=aperture, l2_gradient=l2)
    assert_same_edges(got, _canny_cv2(cv2, x, low, high, aperture, l2))


def test_uint8_matches_cv2_on_views(cv2):
    """The non-contiguous layouts named in the contract, deterministically."""
    base = images.make("natural", (90, 77), np.uint8, seed=11)
    views = {
        "step": base[::2, 1::3],
        "transpose": base.T,
        "reversed": base[::-1],
        "reversed_both": base[::-1, ::-1],
        "fortran": np.asfortranarray(base),
        "column": base[:, 5:6],
        "row": base[7:8, :],
    }
    for name, view in views.items():
        _, top = S.magnitude_quantiles(view, 3)
        got = medfuse.canny(view, 0.1 * top, 0.3 * top)
        want = _canny_cv2(cv2, view, 0.1 * top, 0.3 * top, 3, False)
        assert np.array_equal(got, want), name


# ---------------------------------------------------------------------------
# kernel == NumPy twin, every dtype, 2D and 3D


@given(
    data=st.data(),
    ndim=st.sampled_from([2, 3]),
    aperture=S.apertures,
    l2=st.booleans(),
)
def test_matches_reference_property(data, ndim, aperture, l2):
    x = data.draw(S.image_views(ndim=ndim), label="image")
    sigma = data.draw(S.sigmas_2d if ndim == 2 else S.sigmas_3d, label="sigma")
    spacing = data.draw(S.spacings(ndim), label="spacing")
    low, high = data.draw(S.thresholds_for(x, aperture), label="low, high")
    kw = dict(aperture_size=aperture, l2_gradient=l2, sigma=sigma, spacing=spacing)
    assert_same_edges(medfuse.canny(x, low, high, **kw), ref_canny(x, low, high, **kw))


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
@pytest.mark.parametrize("aperture,limit", [(3, 6786), (5, 565)])
@pytest.mark.parametrize("l2", [False, True])
def test_narrow_16bit_range_int16_path(dtype, aperture, limit, l2):
    """2D 16-bit data whose range keeps the gradients within +-27145 runs on int16 gradients (as uint8): at the
    range limit and one above it (the int32 path), at both ends of the dtype's range (uint16 sums wrap in 16 bits,
    exactly), with steps, noise and plateaus; bit for bit against the twin."""
    rng = np.random.default_rng(aperture + 10 * l2)
    info = np.iinfo(dtype)
    for rg in (limit, limit + 1, 37):
        for base in (int(info.min), int(info.max) - rg, 0 if dtype == np.int16 else 30000):
            x = np.full((37, 71), base, np.int64)
            x[:, 30:] += rg  # a full-range step
            x[10:20, 5:25] = base + rng.integers(0, rg + 1, (10, 20))  # noise
            x[25:, :] = base + rg // 2  # a plateau
            x = x.astype(dtype)
            assert int(x.max()) - int(x.min()) == rg
            top = 4.0 * rg if aperture == 3 else 48.0 * rg
            for low, high in [(0.05 * top, 0.2 * top), (0.3 * top, 0.6 * top)]:
                kw = dict(aperture_size=aperture, l2_gradient=l2)
                assert_same_edges(medfuse.canny(x, low, high, **kw), ref_canny(x, low, high, **kw))


@pytest.mark.parametrize("dtype,aperture,rg", [(np.int16, 3, 6786), (np.uint16, 3, 6786), (np.int16, 5, 565),
                                                (np.uint16, 5, 565), (np.uint8, 3, 255), (np.uint8, 5, 255)])
def test_16bit_magnitudes_at_every_threshold(dtype, aperture, rg):
    """The int16-gradient paths keep L1 magnitudes in 16 bits, biased by -32768: thresholds at 0, around the
    image's largest magnitude (above 32768 here, the bias's upper half), at 32767/32768 and 65535, and beyond;
    bit for bit against the twin (and cv2 for uint8)."""
    rng = np.random.default_rng(aperture)
    base = {np.int16: -1000, np.uint16: 60000, np.uint8: 0}[dtype]
    x = (base + rg * rng.integers(0, 2, (64, 67))).astype(dtype)
    gy, gx = ref.sobel(x, aperture_size=aperture, border="replicate")
    top = int((np.abs(gx.astype(np.int64)) + np.abs(gy.astype(np.int64))).max())
    if dtype != np.uint8:
        assert top > 32768
    pairs = [(0, 0), (0.5, 1), (top - 1, top - 1), (top - 0.5, top), (top, top + 1), (32767, 32768),
             (32768, 32769), (65534, 65535), (65535, 1e12), (0.25 * top, 0.75 * top)]
    for low, high in pairs:
        got = medfuse.canny(x, low, high, aperture_size=aperture)
        assert_same_edges(got, ref_canny(x, low, high, aperture_size=aperture))
        if dtype == np.uint8:
            assert_same_edges(got, _canny_cv2(pytest.importorskip("cv2"), x, low, high, aperture, False))
    assert medfuse.canny(x, top - 1, top - 1, aperture_size=aperture).any()  # the largest magnitude is an edge
    assert not medfuse.canny(x, top, top, aperture_size=aperture).any()


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", images.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("family", list(images.FAMILIES))
def test_matches_reference_families(family, dtype, ndim):
    shape = (45, 38) if ndim == 2 else (9, 21, 18)
    x = images.make(family, shape, dtype, seed=ndim)
    options = [
        dict(),
        dict(sigma=1.2),
        dict(spacing=(2.5, 0.7, 0.7)[-ndim:]),
        dict(sigma=(0.0, 1.5, 0.8)[-ndim:], spacing=(3.0, 1.0, 0.5)[-ndim:]),
    ]
    for aperture in (3, 5, 7):
        med, top = S.magnitude_quantiles(x, aperture)
        for l2 in (False, True):
            for kw in options:
                for low, high in [(0.1 * top, 0.3 * top), (med, med)]:
                    args = dict(aperture_size=aperture, l2_gradient=l2, **kw)
                    assert_same_edges(medfuse.canny(x, low, high, **args), ref_canny(x, low, high, **args))


def test_matches_reference_ct_volume(ct_volume):
    """A realistic CT volume in HU, with the options a user would pass."""
    sp = (2.5, 0.7, 0.7)
    for kw in [dict(), dict(spacing=sp), dict(sigma=1.0, spacing=sp), dict(l2_gradient=True, aperture_size=5)]:
        assert_same_edges(medfuse.canny(ct_volume, 300, 900, **kw), ref.canny(ct_volume, 300, 900, **kw))


# ---------------------------------------------------------------------------
# consistency across dtypes


@given(
    x=S.image_views(np.uint8, 2, families=images.TAME_FAMILIES + ("extremes",)),
    aperture=st.sampled_from([3, 5]),
    l2=st.booleans(),
    quarters=st.lists(st.integers(0, 4 * 30000), min_size=2, max_size=2),
)
def test_uint8_uint16_float_consistent(x, aperture, l2, quarters):
    """canny(x) == canny(257 x as uint16, 257 low, 257 high) == canny(float x)."""
    low, high = sorted(q / 4 for q in quarters)  # exact in binary: no rounding at ties
    kw = dict(aperture_size=aperture, l2_gradient=l2)
    want = medfuse.canny(x, low, high, **kw)
    x16 = x.astype(np.uint16) * np.uint16(257)
    assert_same_edges(medfuse.canny(x16, 257 * low, 257 * high, **kw), want)
    assert_same_edges(medfuse.canny(x.astype(np.float32), low, high, **kw), want)
    assert_same_edges(medfuse.canny(x.astype(np.float64), low, high, **kw), want)
    assert_same_edges(medfuse.canny(x.astype(np.int16), low, high, **kw), want)


@pytest.mark.parametrize("aperture", [3, 5])
@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize("family", ["natural", "ct", "blocks", "noise"])
def test_uint8_uint16_float_consistent_families(family, aperture, l2):
    x = images.make(family, (70, 66), np.uint8, seed=5)
    _, top = S.magnitude_quantiles(x, aperture)
    low, high = np.floor(4 * 0.1 * top) / 4, np.floor(4 * 0.3 * top) / 4
    kw = dict(aperture_size=aperture, l2_gradient=l2)
    want = medfuse.canny(x, low, high, **kw)
    assert want.any()
    assert_same_edges(medfuse.canny(x.astype(np.uint16) * np.uint16(257), 257 * low, 257 * high, **kw), want)
    assert_same_edges(medfuse.canny(x.astype(np.float32), low, high, **kw), want)


@pytest.mark.parametrize("aperture", [3, 5])
@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
def test_int16_hu_slice(ct_slice, aperture, l2):
    """int16 CT in HU: shift-invariant (HU + 1024 as uint16), equals float, finds the anatomy."""
    kw = dict(aperture_size=aperture, l2_gradient=l2)
    gain = {3: 4, 5: 48}[aperture]  # peak 2D Sobel response to a unit step
    low, high = 100.0 * gain, 300.0 * gain  # steps of ~100 / ~300 HU, far above the 15 HU noise
    got = medfuse.canny(ct_slice, low, high, **kw)
    assert_same_edges(got, ref.canny(ct_slice, low, high, **kw))
    shifted = (ct_slice.astype(np.int32) + 1024).astype(np.uint16)
    assert_same_edges(medfuse.canny(shifted, low, high, **kw), got)
    assert_same_edges(medfuse.canny(ct_slice.astype(np.float64), low, high, **kw), got)
    assert_same_edges(medfuse.canny(ct_slice.astype(np.float32), low, high, **kw), got)
    # Every edge lies within 2 pixels of a true structure boundary of the
    # noise-free phantom, and the lung outlines are found.
    clean = images.ct_hu(ct_slice.shape, np.random.default_rng(2), noise_hu=0.0)  # same seed as the fixture
    edges = got > 0
    near_boundary = ndimage.maximum_filter(clean, 5) - ndimage.minimum_filter(clean, 5) > 50
    assert edges.any()
    assert near_boundary[edges].all(), f"{(~near_boundary[edges]).sum()} edge pixels in flat regions"
    lungs = clean == -850.0
    outline = lungs & ~ndimage.binary_erosion(lungs)
    near_edge = ndimage.binary_dilation(edges, np.ones((3, 3), bool))
    assert near_edge[outline].mean() > 0.95


def test_int16_hu_volume(ct_volume):
    kw = dict(spacing=(2.5, 0.7, 0.7))
    got = medfuse.canny(ct_volume, 400, 1200, **kw)
    assert_same_edges(got, ref.canny(ct_volume, 400, 1200, **kw))
    shifted = (ct_volume.astype(np.int32) + 1024).astype(np.uint16)
    assert_same_edges(medfuse.canny(shifted, 400, 1200, **kw), got)
    assert_same_edges(medfuse.canny(ct_volume.astype(np.float32), 400, 1200, **kw), got)
    assert got.any()


# ---------------------------------------------------------------------------
# 3D geometry


def _check_surface(edges, dist, *, tol=1.5, margin=0):
    """Edges lie within ``tol`` voxels of the surface and cover it; NMS keeps them thin."""
    inner = tuple(slice(margin, n - margin) for n in edges.shape)
    e, d = edges[inner], dist[inner]
    assert e.any(), "no edges at all"
    off = np.abs(d[e])
    assert off.max() <= tol, f"{(off > tol).sum()} edge voxels farther than {tol} from the surface (max {off.max():.2f})"
    surface = np.abs(d) <= 0.5
    covered = ndimage.binary_dilation(e, np.ones((3,) * e.ndim, bool))[surface].mean()
    assert covered >= 0.95, f"only {covered:.1%} of the surface has an edge within one voxel"
    assert e.sum() <= 1.7 * surface.sum(), f"edges are thick: {e.sum()} voxels for a surface of {surface.sum()}"


_VOLUME_KINDS = {
    "int16_hu": (np.int16, 40.0, -850.0, 10.0),
    "float32": (np.float32, 1.0, 0.0, 0.01),
    "float64": (np.float64, 1.0, 0.0, 0.0),
    "uint16": (np.uint16, 3000.0, 1000.0, 30.0),
}


@pytest.mark.parametrize("sigma", [None, 1.0])
@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize("aperture", [3, 5, 7])
@pytest.mark.parametrize("kind", list(_VOLUME_KINDS))
def test_sphere_edges_on_surface(kind, aperture, l2, sigma):
    dtype, inside, outside, sd = _VOLUME_KINDS[kind]
    vol, dist = images.sphere((24, 24, 24), (11.3, 12.1, 11.7), 7.0, inside, outside, dtype, noise_sd=sd, seed=1)
    _, top = S.magnitude_quantiles(vol, aperture, l2=l2, sigma=sigma)
    edges = medfuse.canny(vol, 0.2 * top, 0.5 * top, aperture_size=aperture, l2_gradient=l2, sigma=sigma) > 0
    _check_surface(edges, dist)


@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize("aperture", [3, 5])
@pytest.mark.parametrize(
    "direction,margin",
    [((1.0, 0.0, 0.0), 0), ((0.0, 1.0, 1.0), 3), ((1.0, 0.6, 0.3), 3)],
    ids=["along_z", "diagonal_yx", "oblique"],
)
@pytest.mark.parametrize("kind", ["int16_hu", "float64"])
def test_tube_edges_on_surface(kind, direction, margin, aperture, l2):
    dtype, inside, outside, sd = _VOLUME_KINDS[kind]
    vol, dist = images.tube((22, 24, 24), (10.5, 11.6, 12.3), direction, 4.5, inside, outside, dtype, noise_sd=sd, seed=2)
    _, top = S.magnitude_quantiles(vol, aperture, l2=l2)
    edges = medfuse.canny(vol, 0.2 * top, 0.5 * top, aperture_size=aperture, l2_gradient=l2) > 0
    _check_surface(edges, dist, margin=margin)


def test_tube_along_z_is_circle_in_every_slice():
    """An axial tube: every slice shows the 2D edges of its cross-section."""
    vol, _ = images.tube((10, 30, 30), (0.0, 14.2, 15.1), (1.0, 0.0, 0.0), 8.0, 700.0, -850.0, np.int16)
    got = medfuse.canny(vol, 500, 1500)
    want = medfuse.canny(vol[0], 500, 1500)
    for z in range(vol.shape[0]):
        assert_same_edges(got[z], want)


@pytest.mark.parametrize("nz", [1, 4])
@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize(
    "dtype,aperture",
    [(d, a) for d in images.DTYPES for a in (3, 5, 7) if not (a == 7 and d == np.uint8)],
    ids=lambda v: np.dtype(v).name if not isinstance(v, int) else f"a{v}",
)
@pytest.mark.parametrize("family", ["natural", "ct", "blocks", "noise"])
def test_identical_slices_give_2d_result(family, dtype, aperture, l2, nz):
    img = images.make(family, (33, 29), dtype, seed=8)
    if np.dtype(dtype) == np.float32 or (np.dtype(dtype).kind == "f" and family != "noise"):
        # Integer-valued: every sum is exact. (2D float32 is differentiated in
        # float32 and 3D in float64, so non-integer float32 data can differ at
        # rounding-level near-ties; float64 noise is kept as is.)
        img = np.rint(img)
    vol = np.repeat(img[None], nz, axis=0)
    med, top = S.magnitude_quantiles(img, aperture)
    for low, high in [(0.1 * top, 0.3 * top), (med, med)]:
        kw = dict(aperture_size=aperture, l2_gradient=l2)
        want = medfuse.canny(img, low, high, **kw)
        got = medfuse.canny(vol, low, high, **kw)
        for z in range(nz):
            assert_same_edges(got[z], want)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("s", [0.3, 0.7, 1.0, 2.5])
def test_isotropic_spacing_equals_no_spacing(ndim, s):
    for dtype in images.DTYPES:
        x = images.make("natural", (40, 36) if ndim == 2 else (12, 20, 18), dtype, seed=9)
        _, top = S.magnitude_quantiles(x, 3)
        want = medfuse.canny(x, 0.1 * top, 0.3 * top)
        assert_same_edges(medfuse.canny(x, 0.1 * top, 0.3 * top, spacing=(s,) * ndim), want)
        want = medfuse.canny(x, 0.1 * top, 0.3 * top, sigma=1.0)
        assert_same_edges(medfuse.canny(x, 0.1 * top, 0.3 * top, spacing=(s,) * ndim, sigma=s), want)


def _two_planes(contrast=500.0, n=20):
    """Steps of equal contrast across z = n/2 and across x = n/2 (int16)."""
    z = np.arange(n)[:, None, None]
    x = np.arange(n)[None, None, :]
    vol = contrast * (z >= n // 2) + contrast * (x >= n // 2) + np.zeros((n, n, n))
    return vol.astype(np.int16)


def _plane_edges(edges, axis, n=20):
    """Edge voxels next to the step across ``axis`` (z=0 or x=2), away from the other plane."""
    other = 2 if axis == 0 else 0
    idx = np.indices(edges.shape)
    near = np.abs(idx[axis] - (n // 2 - 0.5)) <= 1
    far = np.abs(idx[other] - (n // 2 - 0.5)) > 3
    return int((edges & near & far).sum())


@pytest.mark.parametrize("l2", [False, True], ids=["L1", "L2"])
@pytest.mark.parametrize("aperture", [3, 5])
def test_anisotropic_spacing_scales_gradients(aperture, l2):
    """Gradients are per mm of the finest axis: a coarse axis' steps weigh less."""
    vol = _two_planes()
    c = 500.0 * {3: 4, 5: 48}[aperture]  # 2D-unit response to the step
    t = 0.75 * c  # between half and full response
    kw = dict(aperture_size=aperture, l2_gradient=l2)
    plain = medfuse.canny(vol, t, t, **kw) > 0
    assert _plane_edges(plain, 0) > 0 and _plane_edges(plain, 2) > 0
    coarse_z = medfuse.canny(vol, t, t, spacing=(2.0, 1.0, 1.0), **kw) > 0
    assert _plane_edges(coarse_z, 0) == 0 and _plane_edges(coarse_z, 2) > 0
    coarse_x = medfuse.canny(vol, t, t, spacing=(1.0, 1.0, 2.0), **kw) > 0
    assert _plane_edges(coarse_x, 0) > 0 and _plane_edges(coarse_x, 2) == 0
    # Halving the thresholds brings the z step back (weight min/dz = 1/2).
    t2 = 0.45 * c
    coarse_z = medfuse.canny(vol, t2, t2, spacing=(2.0, 1.0, 1.0), **kw) > 0
    assert _plane_edges(coarse_z, 0) > 0
    # Spacing scaled as a whole changes nothing.
    assert_same_edges(
        medfuse.canny(vol, t, t, spacing=(2.0, 1.0, 1.0), **kw), medfuse.canny(vol, t, t, spacing=(5.0, 2.5, 2.5), **kw)
    )


@pytest.mark.parametrize("dtype", [np.int16, np.float64], ids=["int16", "float64"])
def test_sigma_in_mm(dtype):
    vol = images.make("ct", (14, 30, 26), dtype, seed=10)
    lo, hi = 300.0, 900.0
    # sigma in mm with spacing == sigma / spacing in voxels (isotropic: no weights)
    assert_same_edges(medfuse.canny(vol, lo, hi, sigma=2.0, spacing=(2.0, 2.0, 2.0)), medfuse.canny(vol, lo, hi, sigma=1.0))
    assert_same_edges(
        medfuse.canny(vol, lo, hi, sigma=(2.0, 1.0, 1.0), spacing=(2.0, 1.0, 1.0)),
        medfuse.canny(vol, lo, hi, sigma=(4.0, 2.0, 2.0), spacing=(4.0, 2.0, 2.0)),
    )
    assert_same_edges(
        medfuse.canny(vol, lo, hi, sigma=2.0, spacing=(2.0, 1.0, 1.0)),
        medfuse.canny(vol, lo, hi, sigma=(3.0, 3.0, 3.0), spacing=(3.0, 1.5, 1.5)),
    )
    # sigma 0 means no smoothing
    assert_same_edges(medfuse.canny(vol, lo, hi, sigma=0.0), medfuse.canny(vol, lo, hi))
    assert_same_edges(medfuse.canny(vol, lo, hi, sigma=(0, 0, 0), spacing=(2, 1, 1)), medfuse.canny(vol, lo, hi, spacing=(2, 1, 1)))


@pytest.mark.parametrize(
    "shape,sigma,spacing",
    [
        ((96, 80), 1.5, None),
        ((96, 80), (0.0, 1.2), None),
        ((96, 80), 2.0, (2.0, 1.0)),
        ((20, 32, 28), 1.5, None),
        ((20, 32, 28), (0.0, 1.2, 0.8), None),
        ((20, 32, 28), 2.0, (2.0, 1.0, 1.0)),
        ((20, 32, 28), (2.5, 1.4, 0.7), (2.5, 0.7, 0.7)),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32], ids=["uint8", "int16", "float32"])
def test_sigma_is_scipy_gaussian_filter(shape, sigma, spacing, dtype):
    """Smoothing = scipy.ndimage.gaussian_filter(mode="mirror", truncate=4), sigma / spacing voxels.

    Independent of the twin. Summation order differs from SciPy, so a pixel
    whose comparison is a near-tie could flip; allow 0.2% of pixels.
    """
    x = images.make("natural", shape, dtype, seed=12)
    nd = len(shape)
    vox = np.broadcast_to(np.asarray(sigma, float), (nd,)) / (np.asarray(spacing) if spacing else 1.0)
    smoothed = ndimage.gaussian_filter(x.astype(np.float64), vox, mode="mirror", truncate=4.0)
    _, top = S.magnitude_quantiles(smoothed, 3)
    for l2 in (False, True):
        got = medfuse.canny(x, 0.1 * top, 0.3 * top, sigma=sigma, spacing=spacing, l2_gradient=l2)
        want = medfuse.canny(smoothed, 0.1 * top, 0.3 * top, spacing=spacing, l2_gradient=l2)
        assert want.any()
        assert (got != want).mean() <= 0.002, _describe_mismatch(got, want)


# ---------------------------------------------------------------------------
# output contract and hysteresis properties


@given(data=st.data(), aperture=S.apertures, l2=st.booleans())
def test_output_contract(data, aperture, l2):
    x = data.draw(S.image_views(), label="image")
    sigma = data.draw(st.sampled_from([None, 0.8]), label="sigma")
    low, high = data.draw(S.thresholds_for(x, aperture), label="low, high")
    before = x.copy()
    flags = (x.flags.writeable, x.strides, x.dtype)
    out = medfuse.canny(x, low, high, aperture_size=aperture, l2_gradient=l2, sigma=sigma)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.shape == x.shape
    assert np.isin(out, (0, 255)).all()
    assert np.array_equal(x, before), "input was modified"
    assert (x.flags.writeable, x.strides, x.dtype) == flags
    assert not np.shares_memory(out, x)


@given(data=st.data(), aperture=S.apertures, l2=st.booleans(), ndim=st.sampled_from([2, 3]))
def test_hysteresis_properties(data, aperture, l2, ndim):
    """Monotone in both thresholds; every edge component contains a strong edge."""
    x = data.draw(S.images_of(ndim=ndim, families=images.TAME_FAMILIES), label="image")
    _, top = S.magnitude_quantiles(x, aperture)
    fr = sorted(data.draw(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), label="fractions"))
    low2, low, high = (f * top for f in fr)
    kw = dict(aperture_size=aperture, l2_gradient=l2)
    e = medfuse.canny(x, low, high, **kw) > 0
    strong = medfuse.canny(x, high, high, **kw) > 0
    more = medfuse.canny(x, low2, high, **kw) > 0
    assert not (strong & ~e).any(), "an edge of canny(high, high) is missing from canny(low, high)"
    assert not (e & ~more).any(), "lowering low removed edges"
    labels, n = ndimage.label(e, structure=np.ones((3,) * ndim, bool))
    if n:
        has_strong = np.zeros(n + 1, bool)
        has_strong[labels[strong]] = True
        assert has_strong[1:].all(), "an edge component has no pixel above high"


@pytest.mark.parametrize("dtype", images.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (5, 6, 7)])
def test_constant_image_has_no_edges(dtype, shape):
    for value in images.extreme_values(dtype):
        x = np.full(shape, value, dtype=dtype)
        for aperture in (3, 5, 7):
            assert not medfuse.canny(x, 0, 0, aperture_size=aperture).any()


def test_read_only_and_big_endian_inputs(natural_image):
    want = medfuse.canny(natural_image, 20, 60)
    ro = natural_image.copy()
    ro.flags.writeable = False
    assert_same_edges(medfuse.canny(ro, 20, 60), want)
    for dtype in (np.uint16, np.int16, np.float32, np.float64):
        x = natural_image.astype(dtype)
        be = x.astype(x.dtype.newbyteorder(">"))
        assert_same_edges(medfuse.canny(be, 20, 60), medfuse.canny(x, 20, 60))


def test_accepts_numpy_scalar_parameters(natural_image):
    want = medfuse.canny(natural_image, 20, 60, aperture_size=5, l2_gradient=True)
    got = medfuse.canny(
        natural_image, np.float32(20), np.int64(60), aperture_size=np.int64(5), l2_gradient=np.bool_(True)
    )
    assert_same_edges(got, want)


def test_accepts_array_like(natural_image):
    small = natural_image[:12, :10].astype(np.float64)
    assert_same_edges(medfuse.canny(small.tolist(), 20, 60), medfuse.canny(small, 20, 60))


# ---------------------------------------------------------------------------
# edge cases of the parameters


@pytest.mark.parametrize(
    "shape,low,high,kw",
    [((6, 6), 1e200, 1e200, dict(l2_gradient=True)), ((4, 5, 6), 1e307, 1e307, dict(aperture_size=7))],
    ids=["2D_L2", "3D_gain"],
)
def test_huge_finite_thresholds(shape, low, high, kw):
    x = images.make("noise", shape, np.float64, seed=0)
    want = ref.canny(x, low, high, **kw)
    assert not want.any()
    assert_same_edges(medfuse.canny(x, low, high, **kw), want)


@pytest.mark.parametrize("sigma", [1e-200, 1e-160, (1e-200, 1.0)], ids=["1e-200", "1e-160", "per_axis"])
@pytest.mark.parametrize("fn", [medfuse.canny, ref.canny], ids=["kernel", "reference"])
def test_tiny_sigma(fn, sigma):
    """A positive sigma far below a voxel smooths nothing (radius 0), as scipy.ndimage."""
    x = images.make("natural", (20, 24), np.float64, seed=3)
    vox = np.broadcast_to(np.asarray(sigma, float), (2,))
    smoothed = ndimage.gaussian_filter(x, vox, mode="mirror", truncate=4.0)
    assert_same_edges(fn(x, 10, 40, sigma=sigma), medfuse.canny(smoothed, 10, 40))


# The float pre-scan (NaN/inf refusal, and the largest |x| that decides float32 vs float64 sums) runs
# independent accumulators, then a tail: AVX-512 4 vectors x 16 floats (64 a step) or x 8 doubles, AVX2
# 4 x 8 floats or 4 x 4 doubles, baseline SSE2 4 x 4 floats or 4 x 2 doubles (then single vectors). 7 x 29 =
# 203 values: 3 AVX-512 float32 steps + an 11-value tail, ..., 25 SSE2 float64 steps + 1 vector + 1 value; a
# bad value at every position lands in each lane of each accumulator and the tail on every path.
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(7, 29), (3, 7, 29)], ids=["2D", "3D"])
def test_nonfinite_found_in_every_scan_lane(dtype, shape):
    x = images.make("natural", shape, dtype, seed=5)
    flat = x.reshape(-1)
    for pos in range(flat.size):
        for bad in (np.nan, np.inf, -np.inf):
            y = flat.copy()
            y[pos] = bad
            with pytest.raises(ValueError, match="image"):
                medfuse.canny(y.reshape(shape), 10, 20)


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["plus", "minus"])
def test_huge_float32_found_in_every_scan_lane(sign):
    """A single |x| > 2^100 anywhere makes 2D float32 sums float64, as in the twin. Here float32 sums would
    overflow to inf (|x| = 2e38, gradients up to 4 |x|) and give other edges at every one of the 203 positions
    (checked against the twin's float32 arithmetic when this test was written), so a missed lane fails."""
    x = images.make("natural", (7, 29), np.float32, seed=6)
    for pos in range(x.size):
        y = x.copy().reshape(-1)
        y[pos] = np.float32(sign * 2e38)
        y = y.reshape(x.shape)
        assert_same_edges(medfuse.canny(y, 1e39, 2e39), ref_canny(y, 1e39, 2e39))


def test_reference_is_silent_on_extreme_floats():
    """Finite float64 data whose gradients overflow: no NumPy warnings, same result."""
    x = images.make("extremes", (12, 12), np.float64, seed=0)
    assert np.array_equal(ref.canny(x, 1.0, 2.0), medfuse.canny(x, 1.0, 2.0))


@pytest.mark.parametrize("fn", [medfuse.canny, ref.canny], ids=["kernel", "reference"])
def test_huge_sigma_refused(fn):
    with pytest.raises(ValueError, match="sigma"):
        fn(np.zeros((8, 8)), 1, 2, sigma=1e5)


# The wrapper remembers the plan of plain calls (int/float thresholds, no sigma or
# spacing): it must be the plan computed afresh, and bad arguments must still be refused.
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("low, high", [(0, 0), (40, 100), (40.5, 100), (1e300, 1e300), (7, 7.0)])
@pytest.mark.parametrize("aperture", [3, 5, 7])
@pytest.mark.parametrize("l2", [False, True])
def test_cached_plan_equals_fresh_plan(dtype, ndim, low, high, aperture, l2):
    from medfuse.kernels._edges_plan import plan_canny, plan_canny_cached

    img = np.zeros((3,) * ndim, dtype)
    for _ in range(2):  # the second call comes from the cache
        got = plan_canny_cached(img, low, high, aperture, l2, None, None)
        assert got == plan_canny(img, low, high, aperture, l2, None, None)


@pytest.mark.parametrize(
    "low, high, aperture, l2, err",
    [(-1, 10, 3, False, ValueError), (10, 5, 3, False, ValueError), (float("nan"), 5, 3, False, ValueError),
     (1, 5, 4, False, ValueError), (1, 5, 3, 1, TypeError), (1, float("inf"), 3, False, ValueError)],
)
def test_cached_plan_refusals(low, high, aperture, l2, err):
    img = np.zeros((8, 8), np.uint8)
    for _ in range(2):  # a refusal is never remembered as a plan
        with pytest.raises(err):
            medfuse.canny(img, low, high, aperture_size=aperture, l2_gradient=l2)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
@pytest.mark.parametrize("aperture", [3, 5])
def test_narrow_16bit_range_decided_per_band(dtype, aperture):
    """Each band of rows picks the int16 path from the range of the rows its gradients read: a small-range
    image with a step far beyond the limit near a band border (two bands meet at row 150 of 300 at 2+ threads)
    must give the twin's edges at any thread count, wherever the step row falls around the border."""
    rng = np.random.default_rng(aperture)
    info = np.iinfo(dtype)
    base = int(info.min) + 100 if dtype == np.int16 else 1000
    big = 20000 if aperture == 3 else 2000  # 4 * 20000 and 48 * 2000 overflow int16 gradients
    top = 4.0 * big if aperture == 3 else 48.0 * big
    for r0 in range(145, 156):
        x = base + rng.integers(0, 30, (300, 512))
        x[r0:, :] += big
        x = x.astype(dtype)
        want = ref_canny(x, 0.05 * top, 0.2 * top, aperture_size=aperture)
        for threads in (1, 2, 3, 4):  # the autouse fixture restores the thread count
            medfuse.set_num_threads(threads)
            assert_same_edges(medfuse.canny(x, 0.05 * top, 0.2 * top, aperture_size=aperture), want)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_hysteresis_seeds_stretch_by_stretch(cv2, threads):
    """Hysteresis seeds 16384 map cells at a time and grows each stretch out before the next: a weak chain that
    starts in the first stretch and meets its only strong pixel in the last one is still an edge, and dense noise
    (a third of the pixels edges) matches cv2 at any thread count."""
    # A serpentine of weak edge through a 260x300 image (about 5 stretches per band), strong only at its far end.
    x = np.zeros((260, 300), np.uint8)
    for k, r in enumerate(range(10, 250, 12)):
        x[r : r + 6, 10:290] = 100  # a bar: its borders are weak edges (L1 magnitude <= 600)
        c = 10 if k % 2 else 284
        x[r + 6 : r + 12, c : c + 6] = 100  # joined to the next bar at alternating ends
    x[244:250, 150:290] = 255  # the last bar brighter: strong edges only there
    noise = np.clip(np.random.default_rng(3).normal(128, 40, (301, 257)), 0, 255).astype(np.uint8)
    saved = medfuse.get_num_threads()
    try:
        medfuse.set_num_threads(threads)
        got = medfuse.canny(x, 200.0, 700.0)
        assert_same_edges(got, _canny_cv2(cv2, x, 200.0, 700.0, 3, False))
        assert got[10:16].any()  # the first bar, far from the strong end, is an edge
        assert not medfuse.canny(x, 700.0, 700.0)[:200].any()  # ... and has no strong pixel
        got = medfuse.canny(noise, 100.0, 200.0)
        assert got.mean() / 255 > 0.3
        assert_same_edges(got, _canny_cv2(cv2, noise, 100.0, 200.0, 3, False))
    finally:
        medfuse.set_num_threads(saved)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_hysteresis_seeds_need_a_weak_neighbour(cv2, threads):
    """2D hysteresis seeds only the strong pixels that have a weak candidate among their 8 neighbours (tested 64
    map cells at a time): on noise at widths around the 16- and 64-cell blocks, with thresholds from mostly-weak to
    mostly-strong edges, the result is still cv2's at any thread count, in one band and in several (a neighbour
    direction left out, or a block's lanes mixed up, changes it)."""
    rng = np.random.default_rng(11)
    saved = medfuse.get_num_threads()
    try:
        medfuse.set_num_threads(threads)
        for width in (1, 2, 15, 16, 17, 62, 63, 64, 65, 66, 127, 130, 191, 200):
            x = np.clip(rng.normal(128, 40, (97, width)), 0, 255).astype(np.uint8)
            for low, high in ((20.0, 400.0), (100.0, 200.0), (150.0, 600.0), (300.0, 320.0)):
                assert_same_edges(medfuse.canny(x, low, high), _canny_cv2(cv2, x, low, high, 3, False))
        for width in (290, 301):  # 2 or 3 bands (at least 64K pixels each)
            x = np.clip(rng.normal(128, 40, (700, width)), 0, 255).astype(np.uint8)
            for low, high in ((20.0, 400.0), (150.0, 600.0)):
                assert_same_edges(medfuse.canny(x, low, high), _canny_cv2(cv2, x, low, high, 3, False))
    finally:
        medfuse.set_num_threads(saved)
