"""medfuse.equalize_hist and medfuse.clahe against OpenCV and the NumPy twins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref
from strategies import layouts_of

SIZES = [(1, 1), (1, 9), (7, 1), (8, 8), (9, 3), (37, 53), (64, 64), (100, 64), (7, 200), (255, 257), (512, 512)]
SETTINGS = [(40.0, (8, 8)), (2.0, (4, 6)), (0.0, (3, 3)), (1.0, (1, 1)), (-1.0, (8, 8)), (1000.0, (2, 16)), (3.5, (13, 5))]


def _img(shape, dtype, seed, kind="noise"):
    g = np.random.default_rng(seed)
    top = 256 if dtype == np.uint8 else 4096
    if kind == "smooth":
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        f = (np.sin(yy / 7.0) + np.cos(xx / 11.0) + 2) / 4 * (top - 1)
        return (f + g.normal(0, 3, shape)).clip(0, top - 1).astype(dtype)
    return g.integers(0, top, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["u8", "u16"])
@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_clahe_matches_cv2(cv2, dtype, shape):
    for kind in ("noise", "smooth"):
        img = _img(shape, dtype, sum(shape), kind)
        for clip, grid in SETTINGS:
            want = cv2.createCLAHE(clip, grid).apply(img)
            got = medfuse.clahe(img, clip, grid)
            assert got.dtype == img.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} clip={clip} grid={grid}")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["u8", "u16"])
def test_clahe_twin_matches_cv2(cv2, dtype):
    for shape in [(1, 1), (9, 3), (37, 53), (64, 64)]:
        img = _img(shape, dtype, 3, "smooth")
        for clip, grid in SETTINGS[:4]:
            np.testing.assert_array_equal(ref.clahe(img, clip, grid), cv2.createCLAHE(clip, grid).apply(img))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["u8", "u16"])
def test_clahe_image_maximum_bounds_the_luts(cv2, dtype):
    # The kernel builds tile LUTs only up to the image's maximum value; the
    # clipped excess and its residual are still spread over every level as
    # cv2 does. Maxima from 0 up to the dtype's top, one bright pixel alone,
    # and clip limits that leave a residual both below and above the maximum.
    g = np.random.default_rng(11)
    top = int(np.iinfo(dtype).max)
    for vmax in sorted({0, 1, 2, 7, 255, 256, 4095, top}):
        if vmax > top:
            continue
        for shape in [(1, 1), (13, 17), (64, 64), (97, 130)]:
            img = g.integers(0, vmax + 1, shape).astype(dtype)
            lone = np.zeros(shape, dtype)
            lone[shape[0] // 2, shape[1] // 3] = vmax
            for im in (img, lone, np.full(shape, vmax, dtype)):
                for clip, grid in [(40.0, (8, 8)), (0.0, (3, 3)), (0.01, (2, 2)), (1.5, (5, 3)), (300.0, (1, 1))]:
                    want = cv2.createCLAHE(clip, grid).apply(im)
                    np.testing.assert_array_equal(medfuse.clahe(im, clip, grid), want,
                                                  err_msg=f"max={vmax} shape={shape} clip={clip} grid={grid}")


@given(st.data())
def test_clahe_hypothesis(data):
    dtype = data.draw(st.sampled_from([np.uint8, np.uint16]))
    shape = (data.draw(st.integers(1, 70)), data.draw(st.integers(1, 70)))
    img = _img(shape, dtype, data.draw(st.integers(0, 10**6)), data.draw(st.sampled_from(["noise", "smooth"])))
    view = data.draw(layouts_of(img))
    clip = data.draw(st.sampled_from([0.0, 0.5, 2.0, 40.0]))
    grid = (data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)))
    np.testing.assert_array_equal(medfuse.clahe(view, clip, grid), ref.clahe(view, clip, grid))


@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_equalize_hist_matches_cv2(cv2, shape):
    for kind in ("noise", "smooth"):
        img = _img(shape, np.uint8, 1, kind)
        np.testing.assert_array_equal(medfuse.equalize_hist(img), cv2.equalizeHist(img))
        np.testing.assert_array_equal(ref.equalize_hist(img), cv2.equalizeHist(img))


def test_equalize_hist_uint16_and_volumes():
    img = _img((40, 50), np.uint16, 2, "smooth")
    np.testing.assert_array_equal(medfuse.equalize_hist(img), ref.equalize_hist(img))
    vol = _img((40, 50), np.uint8, 2).reshape(4, 10, 50)
    np.testing.assert_array_equal(medfuse.equalize_hist(vol), ref.equalize_hist(vol))
    const = np.full((5, 6), 77, np.uint16)
    np.testing.assert_array_equal(medfuse.equalize_hist(const), const)
    out = medfuse.equalize_hist(img)
    assert out.max() == 65535 and out.min() == 0


def test_thread_invariance_and_concurrency():
    img = _img((1500, 1300), np.uint8, 5, "smooth")
    img16 = _img((700, 900), np.uint16, 5, "smooth")
    res = []
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        res.append((medfuse.clahe(img), medfuse.clahe(img16, 3.0, (5, 7)), medfuse.equalize_hist(img)))
    for r in res[1:]:
        for a, b in zip(r, res[0]):
            np.testing.assert_array_equal(a, b)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: medfuse.clahe(img), range(6)))
    for o in outs:
        np.testing.assert_array_equal(o, res[0][0])


@pytest.mark.parametrize(
    "image,kwargs,exc,match",
    [
        (np.zeros((4, 4, 4), np.uint8), {}, ValueError, "image"),
        (np.zeros((4, 4), np.int16), {}, TypeError, "image"),
        (np.zeros((0, 4), np.uint8), {}, ValueError, "image"),
        (np.zeros((4, 4), np.uint8), dict(tile_grid=(0, 8)), ValueError, "tile_grid"),
        (np.zeros((4, 4), np.uint8), dict(tile_grid=8), TypeError, "tile_grid"),
        (np.zeros((4, 4), np.uint8), dict(tile_grid=(2.5, 8)), TypeError, "tile_grid"),
        (np.zeros((4, 4), np.uint8), dict(clip_limit=np.nan), ValueError, "clip_limit"),
        (np.zeros((4, 4), np.uint8), dict(clip_limit="x"), TypeError, "clip_limit"),
        (np.zeros((4, 4), np.uint8), dict(clip_limit=1e300), ValueError, "clip_limit"),
    ],
)
def test_clahe_refusals(image, kwargs, exc, match):
    for fn in (medfuse.clahe, ref.clahe):
        with pytest.raises(exc, match=match):
            fn(image, **kwargs)


@pytest.mark.parametrize("image", [np.zeros((4, 4), np.float32), np.zeros((4,), np.uint8), np.zeros((0, 3), np.uint8)])
def test_equalize_refusals(image):
    for fn in (medfuse.equalize_hist, ref.equalize_hist):
        with pytest.raises((TypeError, ValueError), match="image"):
            fn(image)
