"""medfuse.glcm: against scikit-image's graycomatrix, the NumPy twin and a brute-force loop;
masks, 3D directions, layouts, threads, dispatch and every refusal."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref
from medfuse.kernels._texture_plan import DIRECTIONS_3D, c_round
from strategies import layouts_of

skfeature = pytest.importorskip("skimage.feature")

INT_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]
IMPLS = [medfuse.glcm, ref.glcm]

distance_values = st.sampled_from([0, 0.5, 1, 1, 1.5, 2, 2.5, 3, 5, 40])
angle_values = st.one_of(
    st.sampled_from([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi, -math.pi / 4, math.pi / 6, math.pi / 3]),
    st.floats(-7.0, 7.0),
)


@st.composite
def int_images(draw, ndim=2, max_side=40, max_levels=300):
    dtype = np.dtype(draw(st.sampled_from(INT_DTYPES)))
    top = min(max_levels, int(np.iinfo(dtype).max) + 1)
    levels = draw(st.integers(1, top))
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["uniform", "few", "constant", "smooth"]))
    if kind == "uniform":
        x = rng.integers(0, levels, shape)
    elif kind == "few":
        x = rng.choice(np.unique(rng.integers(0, levels, 3)), shape)
    elif kind == "constant":
        x = np.full(shape, levels - 1)
    else:
        x = np.cumsum(rng.integers(0, 2, shape), axis=-1) % levels
    return x.astype(dtype), levels


def brute_force(img, offsets, levels, mask):
    """Pair counts by explicit loops over voxels (3D, offsets (n, 3))."""
    D, H, W = img.shape
    P = np.zeros((levels, levels, len(offsets)), np.int64)
    for k, (dz, dy, dx) in enumerate(offsets):
        for z in range(D):
            for y in range(H):
                for x in range(W):
                    z2, y2, x2 = z + dz, y + dy, x + dx
                    if 0 <= z2 < D and 0 <= y2 < H and 0 <= x2 < W and mask[z, y, x] and mask[z2, y2, x2]:
                        P[img[z, y, x], img[z2, y2, x2], k] += 1
    return P


@given(data=st.data())
def test_matches_skimage_2d(data):
    img, levels = data.draw(int_images())
    distances = data.draw(st.lists(distance_values, min_size=1, max_size=3))
    angles = data.draw(st.lists(angle_values, min_size=1, max_size=4))
    symmetric = data.draw(st.booleans())
    normed = data.draw(st.booleans())
    want = skfeature.graycomatrix(img, distances, angles, levels, symmetric=symmetric, normed=normed)
    view = data.draw(layouts_of(img)) if data.draw(st.booleans()) else img
    if view.shape != img.shape or not np.array_equal(view, img):  # layouts may subsample or transpose
        want = skfeature.graycomatrix(
            np.ascontiguousarray(view).astype(img.dtype), distances, angles, levels, symmetric=symmetric, normed=normed
        )
    for impl in IMPLS:
        got = impl(view, distances, angles, levels, symmetric=symmetric, normed=normed)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want), impl


def test_skimage_docstring_example():
    image = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2], [2, 2, 3, 3]], dtype=np.uint8)
    got = medfuse.glcm(image, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=4)
    assert np.array_equal(got[:, :, 0, 2], [[3, 0, 2, 0], [0, 2, 2, 0], [0, 0, 1, 2], [0, 0, 0, 0]])
    assert np.array_equal(got[:, :, 0, 0], [[2, 2, 1, 0], [0, 2, 0, 0], [0, 0, 3, 1], [0, 0, 0, 1]])


def test_rounding_is_skimage_rounding():
    """Offsets round halves away from zero after the float product (sin(pi/6) < 0.5 still rounds to 1)."""
    assert c_round(0.5) == 1 and c_round(-0.5) == -1 and c_round(0.49999999999999994) == 1
    assert c_round(0.49) == 0 and c_round(2.5) == 3 and c_round(-1.5) == -2
    img = np.arange(144, dtype=np.uint16).reshape(12, 12)
    angles = [math.pi / 6, math.pi / 3, math.pi, 5 * math.pi / 4]
    got = medfuse.glcm(img, [0.5, 1, 2.5], angles, 144)
    want = skfeature.graycomatrix(img, [0.5, 1, 2.5], angles, 144)
    assert np.array_equal(got, want)


@given(data=st.data())
def test_3d_and_masks_match_twin_and_brute_force(data):
    img, levels = data.draw(int_images(ndim=3, max_side=7, max_levels=12))
    distances = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
    if data.draw(st.booleans()):
        angles = None
        offsets_dirs = DIRECTIONS_3D
    else:
        vecs = data.draw(
            st.lists(st.tuples(*[st.integers(-2, 2)] * 3).filter(any), min_size=1, max_size=4)
        )
        angles = np.array(vecs)
        offsets_dirs = angles
    mask = None
    if data.draw(st.booleans()):
        rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
        mask = rng.random(img.shape) < data.draw(st.floats(0.1, 1.0))
        if not mask.any():
            mask.flat[0] = True
    symmetric = data.draw(st.booleans())
    got = medfuse.glcm(img, distances, angles, levels, mask=mask, symmetric=symmetric)
    twin = ref.glcm(img, distances, angles, levels, mask=mask, symmetric=symmetric)
    assert got.dtype == np.uint32 and got.shape == (levels, levels, len(distances), len(offsets_dirs))
    assert np.array_equal(got, twin)
    offsets = [[d * c for c in v] for d in distances for v in np.asarray(offsets_dirs)]
    m = np.ones(img.shape, bool) if mask is None else mask
    want = brute_force(img.astype(np.int64), offsets, levels, m)
    if symmetric:
        want = want + want.transpose(1, 0, 2)
    assert np.array_equal(got.reshape(levels, levels, -1), want)


@given(data=st.data())
def test_2d_mask_and_vectors_match_brute_force(data):
    img, levels = data.draw(int_images(ndim=2, max_side=12, max_levels=10))
    vecs = data.draw(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)).filter(any), min_size=1, max_size=3))
    mask = np.random.default_rng(data.draw(st.integers(0, 99))).random(img.shape) < 0.6
    mask.flat[0] = True
    view = data.draw(layouts_of(img))
    mview = np.ascontiguousarray(mask[: view.shape[0], : view.shape[1]]) if view.shape == img.shape else None
    if mview is None or not mview.any():
        mview = np.ones(view.shape, bool)
    got = medfuse.glcm(view, [1, 2], vecs, levels, mask=mview)
    assert np.array_equal(got, ref.glcm(view, [1, 2], vecs, levels, mask=mview))
    offsets = [[0, d * v[0], d * v[1]] for d in (1, 2) for v in vecs]
    want = brute_force(np.ascontiguousarray(view).astype(np.int64)[None], offsets, levels, mview[None])
    assert np.array_equal(got.reshape(levels, levels, -1), want)


def test_depth_one_volume_equals_2d_default_angles(rng):
    img = rng.integers(0, 30, (45, 52)).astype(np.uint16)
    p3 = medfuse.glcm(img[None], [1, 2], None, 30)
    p2 = medfuse.glcm(img, [1, 2], None, 30)
    assert p3.shape == (30, 30, 2, 13)
    # Distance 1: the first four directions are the 2D default angles.
    assert np.array_equal(p3[:, :, 0, :4], p2[:, :, 0])
    # Distance 2: vectors scale exactly (2, 2), radians round (pi/4 -> (1, 1)).
    assert np.array_equal(p3[:, :, 1, [0, 2]], p2[:, :, 1, [0, 2]])
    assert np.array_equal(medfuse.glcm(img, [2], [[1, 1], [1, -1]], 30)[:, :, 0], p3[:, :, 1, [1, 3]])
    assert np.array_equal(medfuse.glcm(img, [1], [[1, 1]], 30)[:, :, 0, 0], p2[:, :, 1, 1])
    assert not p3[:, :, :, 4:].any()  # out-of-plane directions have no pairs
    assert np.array_equal(p2, skfeature.graycomatrix(img, [1, 2], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], 30))


def test_mask_all_true_equals_no_mask_and_outside_values_ignored(rng):
    img = rng.integers(0, 20, (9, 30, 31)).astype(np.int16)
    full = np.ones(img.shape, bool)
    assert np.array_equal(medfuse.glcm(img, [1], None, 20, mask=full), medfuse.glcm(img, [1], None, 20))
    mask = rng.random(img.shape) < 0.5
    bad = img.copy()
    bad[~mask] = -7  # out of range, but outside the mask
    got = medfuse.glcm(bad, [1], None, 20, mask=mask)
    assert np.array_equal(got, medfuse.glcm(img, [1], None, 20, mask=mask))
    assert np.array_equal(got, ref.glcm(bad, [1], None, 20, mask=mask))


def test_counts_sum_to_valid_pairs(rng):
    """Each matrix sums to the number of pairs with both voxels in the mask."""
    img = rng.integers(0, 7, (6, 20, 25)).astype(np.uint8)
    mask = rng.random(img.shape) < 0.7
    P = medfuse.glcm(img, [1, 2], None, 7, mask=mask)
    for d_idx, d in enumerate((1, 2)):
        for a_idx, v in enumerate(DIRECTIONS_3D):
            dz, dy, dx = (int(c) * d for c in v)
            D, H, W = img.shape
            a = mask[max(0, -dz) : D - max(0, dz), max(0, -dy) : H - max(0, dy), max(0, -dx) : W - max(0, dx)]
            b = mask[max(0, dz) : D - max(0, -dz), max(0, dy) : H - max(0, -dy), max(0, dx) : W - max(0, -dx)]
            assert P[:, :, d_idx, a_idx].sum() == np.count_nonzero(a & b)


def test_normed_and_symmetric(rng):
    img = rng.integers(0, 16, (33, 40)).astype(np.int32)
    P = medfuse.glcm(img, [1, 3], None, 16, symmetric=True, normed=True)
    assert P.dtype == np.float64
    assert np.allclose(P.sum(axis=(0, 1)), 1.0)
    assert np.array_equal(P, P.transpose(1, 0, 2, 3))
    one = np.zeros((5, 5), np.uint8)
    Pz = medfuse.glcm(one, [10], [0.0], 3, normed=True)  # no pair at all: stays zero
    assert Pz.dtype == np.float64 and not Pz.any()


def test_levels_none_for_uint8_is_256(rng):
    img = rng.integers(0, 256, (20, 20)).astype(np.uint8)
    assert medfuse.glcm(img, [1], [0], None).shape == (256, 256, 1, 1)
    assert np.array_equal(medfuse.glcm(img, [1], [0], None), skfeature.graycomatrix(img, [1], [0]))


def test_extreme_dtype_values_checked(rng):
    for dtype in (np.uint64, np.int64, np.uint32, np.int8):
        info = np.iinfo(dtype)
        img = np.zeros((4, 4), dtype)
        img[1, 1] = info.max
        for impl in IMPLS:
            with pytest.raises(ValueError, match="levels"):
                impl(img, [1], [0], 5)
        if info.min < 0:
            img[1, 1] = info.min
            for impl in IMPLS:
                with pytest.raises(ValueError, match="levels"):
                    impl(img, [1], [0], 5)


# ---- threads, concurrency, dispatch -------------------------------------------


def _big_case():
    rng = np.random.default_rng(5)
    img = (rng.integers(0, 40, (20, 260, 250)) // 3).astype(np.uint8)  # > 1M pairs per offset: split
    mask = rng.random(img.shape) < 0.8
    return img, mask


def test_identical_for_any_thread_count():
    img, mask = _big_case()
    results = {}
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        results[n] = (
            medfuse.glcm(img, [1, 2], None, 14, mask=mask, symmetric=True),
            medfuse.glcm(img[5], [1], None, 256, normed=True),
            medfuse.glcm_features(medfuse.glcm(img, [1], None, 14)),
        )
    assert results[1][0].any()
    for n in (2, 7):
        assert np.array_equal(results[1][0], results[n][0])
        assert np.array_equal(results[1][1], results[n][1])
        for k, v in results[1][2].items():
            assert np.array_equal(np.asarray(v), np.asarray(results[n][2][k]), equal_nan=True), k


def test_concurrent_python_threads():
    img, mask = _big_case()
    want = medfuse.glcm(img, [1], None, 14, mask=mask)
    out = [None] * 4

    def work(i):
        out[i] = medfuse.glcm(img, [1], None, 14, mask=mask)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(np.array_equal(o, want) for o in out)


_DISPATCH = r"""
import json, numpy as np, medfuse, medfuse.reference as ref
rng = np.random.default_rng(3)
img = rng.integers(0, 9, (5, 33, 47)).astype(np.int16)
mask = rng.random(img.shape) < 0.6
P = medfuse.glcm(img, [1, 2], None, 9, mask=mask, symmetric=True)
ok = bool(np.array_equal(P, ref.glcm(img, [1, 2], None, 9, mask=mask, symmetric=True)))
f = medfuse.glcm_features(P)
print(json.dumps({"simd": medfuse.build_info()["simd_active"], "ok": ok,
                  "f": {k: np.asarray(v).tolist() for k, v in f.items()}}))
"""


def test_same_result_on_every_simd_path():
    runnable = [p for p in medfuse.build_info()["simd_compiled"] if p in medfuse.build_info()["simd_supported"]]
    outs = []
    for path in runnable:
        env = dict(os.environ, MEDFUSE_SIMD=path)
        proc = subprocess.run([sys.executable, "-c", _DISPATCH], check=False, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert all(o["ok"] for o in outs)
    assert all(o["f"] == outs[0]["f"] for o in outs)


# ---- refusals (kernel and twin alike) -----------------------------------------


@pytest.fixture(params=IMPLS, ids=["medfuse", "reference"])
def impl(request):
    return request.param


IMG = np.arange(16, dtype=np.uint8).reshape(4, 4)


@pytest.mark.parametrize("bad", [IMG.astype(np.float32), IMG.astype(bool), IMG.astype(np.complex64)])
def test_refuses_non_integer_image(impl, bad):
    with pytest.raises(TypeError, match="image"):
        impl(bad, [1], [0], 16)


@pytest.mark.parametrize("bad", [np.zeros(5, np.uint8), np.zeros((2, 2, 2, 2), np.uint8), np.zeros((0, 3), np.uint8)])
def test_refuses_bad_image_shape(impl, bad):
    with pytest.raises(ValueError, match="image"):
        impl(bad, [1], [0], 16)


def test_refuses_levels_too_small(impl):
    with pytest.raises(ValueError, match=r"values outside \[0, levels\)"):
        impl(IMG, [1], [0], 15)
    with pytest.raises(ValueError, match="levels"):
        impl(IMG.astype(np.int16) - 1, [1], [0], 16)


@pytest.mark.parametrize("levels,exc", [(0, ValueError), (-3, ValueError), (70000, ValueError), (2.0, TypeError), (True, TypeError), ("8", TypeError)])
def test_refuses_bad_levels(impl, levels, exc):
    with pytest.raises(exc, match="levels"):
        impl(IMG, [1], [0], levels)


def test_levels_required_beyond_8_bit(impl):
    with pytest.raises(ValueError, match="levels"):
        impl(IMG.astype(np.uint16), [1], [0], None)


@pytest.mark.parametrize("distances", [[], [-1], [np.nan], [np.inf], [[1, 2]], 1.0])
def test_refuses_bad_distances(impl, distances):
    with pytest.raises(ValueError, match="distances"):
        impl(IMG, distances, [0], 16)


@pytest.mark.parametrize("distances", [["a"], [1 + 2j], [True]])
def test_refuses_non_numeric_distances(impl, distances):
    with pytest.raises(TypeError, match="distances"):
        impl(IMG, distances, [0], 16)


def test_refuses_fractional_distances_with_vectors(impl):
    with pytest.raises(ValueError, match="distances"):
        impl(IMG[None], [1.5], None, 16)


@pytest.mark.parametrize("angles", [[], [np.nan], [np.inf], [[0, 0]], [[1, 2, 3]], np.zeros((2, 2, 2)), [[0.5, 1]]])
def test_refuses_bad_angles_2d(impl, angles):
    with pytest.raises(ValueError, match="angles"):
        impl(IMG, [1], angles, 16)


@pytest.mark.parametrize("angles", [[0.0, 1.0], [[1, 0]], [[0, 0, 0]]])
def test_refuses_bad_angles_3d(impl, angles):
    with pytest.raises(ValueError, match="angles"):
        impl(IMG[None], [1], angles, 16)


def test_refuses_non_numeric_angles(impl):
    with pytest.raises(TypeError, match="angles"):
        impl(IMG, [1], ["x"], 16)


def test_refuses_mask_wrong_dtype(impl):
    with pytest.raises(TypeError, match="mask"):
        impl(IMG, [1], [0], 16, mask=np.ones((4, 4), np.uint8))


def test_refuses_mask_wrong_shape(impl):
    with pytest.raises(ValueError, match="mask"):
        impl(IMG, [1], [0], 16, mask=np.ones((4, 5), bool))


def test_refuses_empty_mask(impl):
    with pytest.raises(ValueError, match="mask is empty"):
        impl(IMG, [1], [0], 16, mask=np.zeros((4, 4), bool))


@pytest.mark.parametrize("name", ["symmetric", "normed"])
def test_refuses_non_bool_flags(impl, name):
    with pytest.raises(TypeError, match=name):
        impl(IMG, [1], [0], 16, **{name: 1})


def test_binding_defends_itself():
    from medfuse import _core

    off = np.array([[0, 0, 1]], np.int64)
    with pytest.raises(TypeError):
        _core.glcm_u8(IMG[None].astype(np.uint16), None, 16, off, False, False, 1)
    with pytest.raises(ValueError, match="offsets"):
        _core.glcm_u8(IMG[None], None, 16, np.array([[0, 0, 9]], np.int64), False, False, 1)
    with pytest.raises(TypeError, match="mask"):
        _core.glcm_u8(IMG[None], np.ones((1, 4, 4), np.uint8), 16, off, False, False, 1)
    with pytest.raises(ValueError, match="mask"):
        _core.glcm_u8(IMG[None], np.ones((1, 4, 3), bool), 16, off, False, False, 1)
    with pytest.raises(ValueError, match="threads"):
        _core.glcm_u8(IMG[None], None, 16, off, False, False, 0)
