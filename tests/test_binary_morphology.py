"""medfuse.binary_erode/dilate/open/close and fill_holes: identical to
scipy.ndimage's binary_erosion/dilation/opening/closing/fill_holes and to the
NumPy twins, for any structure, iterations and border value; threads; refusals.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import medfuse
import medfuse.reference as ref
import strategies as S
from scipy_safe import fill_holes_reference, steps, until_stable

RANK = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}
CONNS = {2: (4, 8), 3: (6, 18, 26)}
OPS = {
    "erode": (medfuse.binary_erode, ref.binary_erode, ndimage.binary_erosion),
    "dilate": (medfuse.binary_dilate, ref.binary_dilate, ndimage.binary_dilation),
    "open": (medfuse.binary_open, ref.binary_open, ndimage.binary_opening),
    "close": (medfuse.binary_close, ref.binary_close, ndimage.binary_closing),
}


# scipy.ndimage's repeat-until-stable path (iterations < 1, NI_BinaryErosion2; also used by binary_fill_holes with
# border 1) corrupts the heap for some inputs in scipy 1.17.1 — found when the suite aborted with glibc's "free():
# invalid next size" / "double free or corruption" inside a *later* medfuse call (first_order, clahe, and in the
# issue-25 reports convolve and test_cli's extraction). Replayed without medfuse at all: scipy.ndimage.binary_dilation
# of a (7, 4, 4) image with a (1, 5, 1) structure, iterations=0, border_value=1 aborts the interpreter in 3 of 12
# processes (heap-layout dependent). So the references below never take that path: repeat-until-stable is computed
# by repeating scipy's single step (iterations=1) until nothing changes — its definition — and fill_holes by
# labelling the background (scipy.ndimage.label).
def scipy_reference(op, x, sp, iterations, border):
    x = np.asarray(x) != 0
    if iterations >= 1:  # n single steps (scipy's iterations > 1 path corrupts the heap too: tests/scipy_safe.py)
        er = lambda a: steps(ndimage.binary_erosion, a, iterations, structure=sp, border_value=border)  # noqa: E731
        di = lambda a: steps(ndimage.binary_dilation, a, iterations, structure=sp, border_value=border)  # noqa: E731
        return {"erode": er, "dilate": di, "open": lambda a: di(er(a)), "close": lambda a: er(di(a))}[op](x)
    er = lambda a: until_stable(ndimage.binary_erosion, a, structure=sp, border_value=border)  # noqa: E731
    di = lambda a: until_stable(ndimage.binary_dilation, a, structure=sp, border_value=border)  # noqa: E731
    return {"erode": er, "dilate": di, "open": lambda a: di(er(a)), "close": lambda a: er(di(a))}[op](x)


def assert_same(got, want):
    assert got.dtype == np.bool_ and got.shape == want.shape
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        raise AssertionError(f"{len(bad)} of {got.size} voxels differ; first at {bad[:5].tolist()}")


@st.composite
def cases(draw):
    nd = draw(st.sampled_from([2, 3]))
    side = 20 if nd == 2 else 9
    shape = tuple(draw(st.integers(1, side)) for _ in range(nd))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    p = draw(st.sampled_from([0.0, 0.3, 0.6, 0.85, 1.0]))
    x = rng.random(shape) < p
    dtype = draw(st.sampled_from([np.bool_, np.uint8, np.int32]))
    x = draw(S.layouts_of(x.astype(dtype)))
    kind = draw(st.sampled_from(["default", "conn", "random"]))
    if kind == "default":
        structure, conn, sp = None, None, ndimage.generate_binary_structure(nd, 1)
    elif kind == "conn":
        conn = draw(st.sampled_from(CONNS[nd]))
        structure, sp = None, ndimage.generate_binary_structure(nd, RANK[conn])
    else:
        sshape = tuple(draw(st.sampled_from([1, 3, 5])) for _ in range(nd))
        sp = rng.random(sshape) < 0.5
        if not sp.any():
            sp[tuple(n // 2 for n in sshape)] = True
        structure, conn = sp, None
    iterations = draw(st.sampled_from([1, 1, 2, 3, 0, -1]))
    border = draw(st.sampled_from([0, 1]))
    return x, structure, conn, sp, iterations, border


@settings(max_examples=150)
@given(cases(), st.sampled_from(sorted(OPS)))
def test_matches_scipy_and_twin(case, op):
    x, structure, conn, sp, iterations, border = case
    fn, twin, _ = OPS[op]
    if iterations < 1 and not sp[tuple(n // 2 for n in sp.shape)]:
        # Repeat-until-stable without the centre can oscillate for ever (scipy then never returns): refused.
        kw = dict(connectivity=conn, iterations=iterations, border_value=border)
        for f in (fn, twin):
            with pytest.raises(ValueError, match="iterations.*centre"):
                f(x, structure, **kw)
        return
    want = scipy_reference(op, x, sp, iterations, border)
    kw = dict(connectivity=conn, iterations=iterations, border_value=border)
    assert_same(fn(x, structure, **kw), want)
    assert_same(twin(x, structure, **kw), want)


@settings(max_examples=100)
@given(cases())
def test_fill_holes_matches_scipy_and_twin(case):
    x, _, _, _, _, _ = case
    nd = x.ndim
    for conn in (None,) + CONNS[nd]:
        sp = ndimage.generate_binary_structure(nd, RANK.get(conn, 1))
        want = fill_holes_reference(x, sp)
        assert_same(medfuse.fill_holes(x, connectivity=conn), want)
        assert_same(ref.fill_holes(x, connectivity=conn), want)


def test_larger_volumes_and_big_structures():
    rng = np.random.default_rng(5)
    x = ndimage.gaussian_filter(rng.random((30, 70, 90)), 2) > 0.5
    ball = np.sum((np.indices((7, 7, 7)) - 3) ** 2, axis=0) <= 9
    for border in (0, 1):
        assert_same(medfuse.binary_erode(x, ball, border_value=border), ndimage.binary_erosion(x, ball, border_value=border))
        assert_same(medfuse.binary_dilate(x, ball, iterations=2, border_value=border),
                    steps(ndimage.binary_dilation, x, 2, structure=ball, border_value=border))
    # a structure wider than the image: offsets past the border only see border_value
    wide = np.zeros((1, 41), bool)
    wide[0, [0, 20, 40]] = True
    small = rng.random((6, 9)) < 0.5
    for border in (0, 1):
        for fn, sci in ((medfuse.binary_erode, ndimage.binary_erosion), (medfuse.binary_dilate, ndimage.binary_dilation)):
            assert_same(fn(small, wide, border_value=border), sci(small, wide, border_value=border))


def test_duality_and_idempotence():
    """Invariants a shared bug would break: erosion is the complement of the
    dilation of the complement (reflected structure, negated border);
    opening and closing are idempotent."""
    rng = np.random.default_rng(6)
    x = rng.random((20, 30, 25)) < 0.6
    s = rng.random((3, 3, 5)) < 0.5
    s[1, 1, 2] = True
    for border in (0, 1):
        e = medfuse.binary_erode(x, s, border_value=border)
        d = medfuse.binary_dilate(~x, s[::-1, ::-1, ::-1], border_value=1 - border)
        assert_same(e, ~d)
    o = medfuse.binary_open(x, connectivity=18, border_value=1)
    assert_same(medfuse.binary_open(o, connectivity=18, border_value=1), o)
    h = medfuse.fill_holes(x)
    assert_same(medfuse.fill_holes(h), h)
    assert (h >= x).all()


@pytest.mark.parametrize("op", sorted(OPS))
def test_thread_count_invariance(op):
    x = np.random.default_rng(7).random((40, 96, 100)) < 0.55  # voxels x 27 offsets >= 2**23: threaded
    fn, _, _ = OPS[op]
    want = scipy_reference(op, x, ndimage.generate_binary_structure(3, 3), 2, 0)
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        assert_same(fn(x, connectivity=26, iterations=2), want)


def test_python_threads_concurrently():
    xs = [np.random.default_rng(s).random((16, 50, 60)) < 0.5 for s in range(6)]
    serial = [medfuse.binary_close(x, connectivity=18) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda x: medfuse.binary_close(x, connectivity=18), xs))
    for a, b in zip(serial, par):
        assert_same(a, b)


def test_input_untouched():
    x = np.random.default_rng(8).random((10, 12)) < 0.5
    x.flags.writeable = False
    before = x.copy()
    medfuse.binary_dilate(x, iterations=0)
    medfuse.fill_holes(x)
    assert np.array_equal(x, before)


# ---- refusals ----------------------------------------------------------------------

ALL = [medfuse.binary_erode, medfuse.binary_dilate, medfuse.binary_open, medfuse.binary_close,
       ref.binary_erode, ref.binary_dilate, ref.binary_open, ref.binary_close]


@pytest.mark.parametrize("fn", ALL)
def test_refusals(fn):
    img = np.zeros((4, 5), bool)
    with pytest.raises(TypeError, match="image"):
        fn(img.astype(np.float32))
    with pytest.raises(ValueError, match="image"):
        fn(np.zeros((4,), bool))
    with pytest.raises(ValueError, match="image"):
        fn(np.zeros((0, 4), bool))
    with pytest.raises(ValueError, match="structure"):
        fn(img, np.ones((3, 3, 3), bool))
    with pytest.raises(ValueError, match="structure"):
        fn(img, np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="structure"):
        fn(img, np.zeros((3, 3), bool))
    with pytest.raises(TypeError, match="structure"):
        fn(img, np.ones((3, 3), np.float64))
    with pytest.raises(ValueError, match="not both"):
        fn(img, np.ones((3, 3), bool), connectivity=8)
    with pytest.raises(ValueError, match="connectivity"):
        fn(img, connectivity=6)
    with pytest.raises(TypeError, match="iterations"):
        fn(img, iterations=1.5)
    with pytest.raises(ValueError, match="border_value"):
        fn(img, border_value=2)
    with pytest.raises(TypeError, match="border_value"):
        fn(img, border_value=0.5)


@pytest.mark.parametrize("fn", [medfuse.fill_holes, ref.fill_holes])
def test_fill_holes_refusals(fn):
    with pytest.raises(TypeError, match="image"):
        fn(np.zeros((4, 4), np.float64))
    with pytest.raises(ValueError, match="image"):
        fn(np.zeros((2, 2, 2, 2), bool))
    with pytest.raises(ValueError, match="connectivity"):
        fn(np.zeros((4, 4, 4), bool), connectivity=8)


def test_core_rechecks():
    from medfuse import _core

    img = np.zeros((3, 3), np.uint8)
    off = np.zeros((1, 3), np.int64)
    with pytest.raises(ValueError, match="offsets"):
        _core.binary_morph_u8(img, np.zeros((0, 3), np.int64), False, 0, 1, 1)
    with pytest.raises(ValueError, match="dz"):
        _core.binary_morph_u8(img, np.ones((1, 3), np.int64), False, 0, 1, 1)
    with pytest.raises(ValueError, match="border"):
        _core.binary_morph_u8(img, off, False, 2, 1, 1)
    with pytest.raises(ValueError, match="threads"):
        _core.binary_morph_u8(img, off, False, 0, 1, 0)
    with pytest.raises(ValueError, match="rank"):
        _core.fill_holes_u8(img, 3, 1)
    with pytest.raises(ValueError, match="rank"):
        _core.fill_holes_u8(img, 0, 1)
    with pytest.raises(ValueError, match="threads"):
        _core.fill_holes_u8(img, 1, 0)
    with pytest.raises(ValueError, match="image"):
        _core.fill_holes_u8(np.zeros((2, 2, 2, 2), np.uint8), 1, 1)
    with pytest.raises(TypeError):
        _core.fill_holes_u8(np.zeros((3, 3), np.float32), 1, 1)


@pytest.mark.parametrize("op", sorted(OPS))
def test_repeat_until_stable_without_centre_is_refused_not_a_hang(op):
    """A lone pixel dilated by [1, 0, 1] alternates between two patterns for ever; scipy.ndimage loops for
    ever on it and medfuse did too (found when hypothesis drew such a case). Refused, naming the parameter;
    a positive count and a structure with its centre still work."""
    x = np.zeros((1, 7), bool)
    x[0, 3] = True
    s = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]], bool)
    c = s.copy()
    c[1, 1] = True
    fn, twin, _ = OPS[op]
    for f in (fn, twin):
        for it in (0, -1):
            with pytest.raises(ValueError, match="iterations.*centre"):
                f(x, s, iterations=it)
        assert_same(f(x, s, iterations=3), scipy_reference(op, x, s, 3, 0))
        assert_same(f(x, c, iterations=0), scipy_reference(op, x, c, 0, 0))


@pytest.mark.parametrize("shape", [(1, 40, 50), (1, 1, 7), (300, 500), (40, 120, 130), (2, 3, 600), (9, 1, 1)])
def test_fill_holes_large_and_degenerate(shape):
    """Depth-1 volumes (all background on the border: nothing filled), single
    voxels, and volumes split into several label blocks, at 1-4 threads."""
    rng = np.random.default_rng(len(shape) * 1000 + shape[-1])
    x = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5 if min(shape) > 2 else rng.random(shape) < 0.6
    before = medfuse.get_num_threads()
    try:
        for conn in (None,) + CONNS[x.ndim]:
            want = fill_holes_reference(x, ndimage.generate_binary_structure(x.ndim, RANK.get(conn, 1)))
            for n in (1, 2, 3, 4):
                medfuse.set_num_threads(n)
                assert_same(medfuse.fill_holes(x, connectivity=conn), want)
    finally:
        medfuse.set_num_threads(before)
    if x.ndim == 3 and shape[0] == 1:
        assert_same(medfuse.fill_holes(x), x)  # every background voxel touches z = 0


@pytest.mark.parametrize(
    "box",
    [(3, 3), (1, 3), (5, 1), (5, 5), (3, 7), (3, 3, 3), (1, 3, 3), (3, 1, 1), (1, 1, 5), (5, 3, 1), (1, 1), (1, 1, 1)],
)
@pytest.mark.parametrize("shape_kind", ["small", "thin", "narrow", "large"])
def test_box_structures_separable_path(box, shape_kind):
    """Centred boxes take the separable path (one iteration): against scipy for
    both border values, images thinner than the box, rows barely wider than the
    box over several 64-row bands (the pass along x runs a band as one line and
    fixes each row's ends), and 1-4 threads on an image above the threading
    threshold."""
    nd = len(box)
    shapes = {
        "small": {2: (9, 13), 3: (5, 7, 9)},
        "thin": {2: (2, 1), 3: (1, 2, 3)},
        "narrow": {2: (131, 8), 3: (3, 129, 7)},
        "large": {2: (1100, 900), 3: (40, 160, 150)},
    }
    shape = shapes[shape_kind][nd]
    rng = np.random.default_rng(sum(box) * 100 + len(shape_kind))
    x = rng.random(shape) < 0.7
    structure = np.ones(box, dtype=bool)
    before = medfuse.get_num_threads()
    try:
        y = rng.random(shape) < 0.02  # sparse: dilation has something to grow
        for border in (0, 1):
            want_e = ndimage.binary_erosion(x, structure, border_value=border)
            want_d = ndimage.binary_dilation(y, structure, border_value=border)
            for n in (1, 2, 3, 4) if shape_kind == "large" else (1,):
                medfuse.set_num_threads(n)
                assert_same(medfuse.binary_erode(x, structure, border_value=border), want_e)
                assert_same(medfuse.binary_dilate(y, structure, border_value=border), want_d)
    finally:
        medfuse.set_num_threads(before)


@pytest.mark.parametrize("box", [(3, 3, 3), (5, 3, 1), (5, 5, 5), (1, 3, 5), (3, 1, 1), (7, 3, 3)])
@pytest.mark.parametrize("shape", [(1, 9, 11), (2, 70, 33), (4, 130, 17), (5, 40, 70), (11, 66, 9)])
def test_3d_boxes_sweep_z_per_band(box, shape):
    """Full boxes take the separable path: in 3D each band of rows sweeps z
    through a ring of x-y results. Volumes thinner than the box, several
    bands, both border values (the annihilator case too), 1-3 threads, against
    scipy."""
    rng = np.random.default_rng(sum(box) * 100 + shape[0])
    x = ndimage.gaussian_filter(rng.random(shape), 1.0) > 0.5
    sp = np.ones(box, bool)
    before = medfuse.get_num_threads()
    try:
        for border in (0, 1):
            want_e = ndimage.binary_erosion(x, sp, border_value=border)
            want_d = ndimage.binary_dilation(x, sp, border_value=border)
            for n in (1, 2, 3):
                medfuse.set_num_threads(n)
                assert_same(medfuse.binary_erode(x, sp, border_value=border), want_e)
                assert_same(medfuse.binary_dilate(x, sp, border_value=border), want_d)
    finally:
        medfuse.set_num_threads(before)
