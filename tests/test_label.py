"""medfuse.label and medfuse.regionprops_basic: against scipy.ndimage, against
their NumPy twins (BFS flood fill, per-label masks), invariants, threads, refusals.
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
from scipy_safe import until_stable

CONNS = {2: (4, 8), 3: (6, 18, 26)}
RANK = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}


def scipy_label(x, conn):
    nd = x.ndim
    rank = 1 if conn is None else RANK[conn]
    return ndimage.label(np.asarray(x) != 0, structure=ndimage.generate_binary_structure(nd, rank))


def assert_same_labels(got, want):
    g, n = got
    w, m = want
    assert g.dtype == np.int32 and g.shape == w.shape
    assert isinstance(n, int) and n == m
    if not np.array_equal(g, w):
        bad = np.argwhere(g != w)
        raise AssertionError(f"{len(bad)} of {g.size} voxels differ; first at {bad[:5].tolist()}")


@st.composite
def masks(draw, max_side=24):
    nd = draw(st.sampled_from([2, 3]))
    side = max_side if nd == 2 else 10
    shape = tuple(draw(st.integers(1, side)) for _ in range(nd))
    p = draw(st.sampled_from([0.0, 0.2, 0.45, 0.6, 0.9, 1.0]))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from([np.bool_, np.uint8, np.int16, np.uint16, np.int32, np.int64]))
    x = rng.random(shape) < p
    if dtype is not np.bool_:
        vals = rng.integers(1, 100, size=shape).astype(dtype)
        if np.dtype(dtype).kind == "i":
            vals[rng.random(shape) < 0.5] *= -1
        x = np.where(x, vals, 0).astype(dtype)
    x = draw(S.layouts_of(x))
    conn = draw(st.sampled_from((None,) + CONNS[nd]))
    return x, conn


@settings(max_examples=200)
@given(masks())
def test_matches_scipy_and_twin(case):
    x, conn = case
    want = scipy_label(x, conn)
    assert_same_labels(medfuse.label(x, connectivity=conn), want)
    assert_same_labels(ref.label(x, connectivity=conn), want)


@settings(max_examples=60)
@given(st.integers(0, 2**31), st.sampled_from([(1, 300), (300, 1), (200, 257), (3, 64, 130), (40, 1, 70), (1, 1, 999)]),
       st.sampled_from([0.3, 0.5, 0.55, 0.7]))
def test_matches_scipy_larger(seed, shape, p):
    x = np.random.default_rng(seed).random(shape) < p
    for conn in (None,) + CONNS[len(shape)]:
        assert_same_labels(medfuse.label(x, connectivity=conn), scipy_label(x, conn))


def test_numbering_is_raster_order_of_first_voxel():
    x = np.random.default_rng(1).random((30, 40, 50)) < 0.4
    lab, n = medfuse.label(x, connectivity=26)
    flat = lab.ravel()
    _, first = np.unique(flat, return_index=True)
    firsts = first[1:]  # skip background
    assert len(firsts) == n and np.all(np.diff(firsts) > 0)


def test_components_are_connected_and_maximal():
    """An invariant independent of every reference: dilating a component by the
    structure stays inside (component | background), and never touches another label."""
    x = np.random.default_rng(2).random((12, 20, 24)) < 0.35
    for conn in CONNS[3]:
        lab, n = medfuse.label(x, connectivity=conn)
        st_ = ndimage.generate_binary_structure(3, RANK[conn])
        assert ((lab > 0) == x).all()
        for k in range(1, min(n, 40) + 1):
            comp = lab == k
            grown = ndimage.binary_dilation(comp, st_) & x
            assert (lab[grown] == k).all()
            # connected: a single dilation-based flood from its first voxel fills it
            seed = np.zeros_like(comp)
            seed[np.unravel_index(np.argmax(comp), comp.shape)] = True
            # (repeated single steps: scipy's iterations=0 path can corrupt the heap, tests/scipy_safe.py)
            filled = until_stable(ndimage.binary_dilation, seed, structure=st_, mask=comp)
            assert (filled == comp).all()


def test_shapes_and_extremes():
    for shape in [(1, 1), (1, 1, 1), (1, 7), (5, 1, 1)]:
        for fill in (0, 1):
            x = np.full(shape, fill, np.uint8)
            assert_same_labels(medfuse.label(x), scipy_label(x, None))
    # a checkerboard: every voxel its own component at the minimal connectivity
    cb = np.indices((9, 11, 13)).sum(axis=0) % 2 == 0
    _, n = medfuse.label(cb)
    assert n == int(cb.sum())
    assert medfuse.label(cb, connectivity=18)[1] == 1
    # extreme integer values are foreground; -0 does not exist for ints
    x = np.array([[np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max]], dtype=np.int64)
    assert medfuse.label(x)[1] == 2


def test_input_untouched_and_read_only():
    x = np.random.default_rng(3).random((20, 30)) < 0.5
    x.flags.writeable = False
    before = x.copy()
    assert_same_labels(medfuse.label(x, connectivity=8), scipy_label(x, 8))
    assert np.array_equal(x, before)


@pytest.mark.parametrize("conn", [6, 26])
def test_thread_count_invariance(conn):
    x = np.random.default_rng(4).random((64, 192, 192)) < 0.55  # >= 2**21 voxels (threaded), many row blocks
    want = scipy_label(x, conn)
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        assert_same_labels(medfuse.label(x, connectivity=conn), want)


def test_python_threads_concurrently():
    xs = [np.random.default_rng(s).random((20, 60, 64)) < 0.5 for s in range(6)]
    serial = [medfuse.label(x, connectivity=18) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda x: medfuse.label(x, connectivity=18), xs))
    for a, b in zip(serial, par):
        assert_same_labels(a, b)


# ---- refusals (kernel and twin alike) -----------------------------------------

FUNCS = [medfuse.label, ref.label]


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, object])
def test_refuses_float_dtype(fn, dtype):
    with pytest.raises(TypeError, match="binary"):
        fn(np.zeros((4, 4), dtype=dtype))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("shape", [(5,), (2, 2, 2, 2), ()])
def test_refuses_ndim(fn, shape):
    with pytest.raises(ValueError, match="binary"):
        fn(np.zeros(shape, dtype=bool))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("shape", [(0, 3), (3, 0, 2)])
def test_refuses_empty(fn, shape):
    with pytest.raises(ValueError, match="binary"):
        fn(np.zeros(shape, dtype=bool))


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("ndim,conn", [(2, 6), (2, 26), (2, 0), (3, 4), (3, 8), (3, 27), (2, -4)])
def test_refuses_connectivity_for_ndim(fn, ndim, conn):
    with pytest.raises(ValueError, match="connectivity"):
        fn(np.zeros((3,) * ndim, dtype=bool), connectivity=conn)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("conn", [4.0, "8", True])
def test_refuses_connectivity_type(fn, conn):
    with pytest.raises(TypeError, match="connectivity"):
        fn(np.zeros((3, 3), dtype=bool), connectivity=conn)


def test_core_rechecks():
    from medfuse import _core

    with pytest.raises(ValueError, match="rank"):
        _core.label_u8(np.zeros((3, 3), np.uint8), 3, 1)
    with pytest.raises(ValueError, match="threads"):
        _core.label_u8(np.zeros((3, 3), np.uint8), 1, 0)
    with pytest.raises(TypeError):
        _core.label_u8(np.zeros((3, 3), np.int16), 1, 1)  # noconvert


# ---- regionprops_basic -----------------------------------------------------------


def scipy_props(lab, intensity, spacing):
    present = np.unique(lab[lab > 0])
    objs = ndimage.find_objects(lab)
    ones = np.ones(lab.shape)
    out = {
        "label": present,
        "voxel_count": ndimage.sum_labels(ones, lab, present).astype(np.int64),
        "centroid": np.array(ndimage.center_of_mass(ones, lab, present)).reshape(len(present), lab.ndim),
        "bbox": [objs[k - 1] for k in present],
    }
    if intensity is not None:
        out["mean"] = np.asarray(ndimage.mean(intensity, lab, present), dtype=np.float64)
    return out


def assert_props_close(got, want):
    assert got.keys() == want.keys()
    for k in got:
        assert got[k].dtype == want[k].dtype, k
        if got[k].dtype.kind == "f":
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-9, err_msg=k)
        else:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@settings(max_examples=80)
@given(masks(max_side=16), st.booleans(), st.booleans(), st.booleans())
def test_regionprops_vs_scipy_and_twin(case, with_int, with_spacing, relabel):
    x, conn = case
    lab, _ = medfuse.label(x, connectivity=conn)
    if relabel:  # gaps and arbitrary integer ids
        lab = (lab * 3).astype(np.uint16)
    rng = np.random.default_rng(lab.size)
    inten = rng.normal(size=lab.shape).astype(np.float32) if with_int else None
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, lab.ndim)) if with_spacing else None
    got = medfuse.regionprops_basic(lab, inten, spacing)
    assert_props_close(got, ref.regionprops_basic(lab, inten, spacing))
    want = scipy_props(lab, inten, spacing)
    names = ("z", "y", "x")[-lab.ndim:]
    np.testing.assert_array_equal(got["label"], want["label"])
    np.testing.assert_array_equal(got["voxel_count"], want["voxel_count"])
    vox = 1.0 if spacing is None else float(np.prod(spacing))
    np.testing.assert_allclose(got["volume_mm3"], want["voxel_count"] * vox, rtol=1e-12)
    for i, a in enumerate(names):
        np.testing.assert_allclose(got[f"centroid_{a}"], want["centroid"][:, i], rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(got[f"bbox_min_{a}"], [s[i].start for s in want["bbox"]])
        np.testing.assert_array_equal(got[f"bbox_max_{a}"], [s[i].stop for s in want["bbox"]])
    if inten is not None:
        np.testing.assert_allclose(got["mean_intensity"], want["mean"], rtol=1e-9, atol=1e-12)
    else:
        assert "mean_intensity" not in got


def test_regionprops_empty_and_dataframe():
    got = medfuse.regionprops_basic(np.zeros((4, 5), np.int32))
    assert all(len(a) == 0 for a in got.values())
    assert_props_close(got, ref.regionprops_basic(np.zeros((4, 5), np.int32)))
    pd = pytest.importorskip("pandas")
    lab = np.array([[0, 2, 2], [1, 0, 2]])
    df = pd.DataFrame(medfuse.regionprops_basic(lab, lab * 10.0, (2.0, 0.5)))
    assert df["label"].tolist() == [1, 2]
    assert df["voxel_count"].tolist() == [1, 3]
    assert df["volume_mm3"].tolist() == [1.0, 3.0]
    assert df["mean_intensity"].tolist() == [10.0, 20.0]
    assert df["bbox_max_x"].tolist() == [1, 3]


PROPS = [medfuse.regionprops_basic, ref.regionprops_basic]


@pytest.mark.parametrize("fn", PROPS)
def test_regionprops_refusals(fn):
    good = np.ones((3, 4), np.int32)
    with pytest.raises(TypeError, match="labels"):
        fn(good.astype(np.float64))
    with pytest.raises(ValueError, match="labels"):
        fn(-good)
    with pytest.raises(ValueError, match="labels"):
        fn(np.ones((3,), np.int32))
    with pytest.raises(ValueError, match="labels"):
        fn(np.ones((0, 3), np.int32))
    with pytest.raises(ValueError, match="intensity"):
        fn(good, np.ones((4, 3)))
    with pytest.raises(ValueError, match="intensity"):
        fn(good, np.full((3, 4), np.nan))
    with pytest.raises(TypeError, match="intensity"):
        fn(good, np.ones((3, 4), complex))
    with pytest.raises(ValueError, match="spacing"):
        fn(good, None, (1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        fn(good, None, (1.0, 1.0, 1.0))


# ---- run extraction across 64-voxel words, and unions across row blocks (issue 22) ----


@pytest.mark.parametrize("w", [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 300])
@pytest.mark.parametrize("p", [0.5, 0.95, 1.0])
def test_runs_across_words(w, p):
    x = np.random.default_rng(w).random((5, w)) < p
    x[1, ::2] = True  # runs of one voxel
    x[1, 1::2] = False
    for conn in (4, 8):
        assert_same_labels(medfuse.label(x, connectivity=conn), scipy_label(x, conn))


@pytest.mark.parametrize("shape", [(700, 200), (2000, 70), (20, 80, 90), (9, 120, 130)])
@pytest.mark.parametrize("p", [0.3, 0.45, 0.6])
def test_unions_across_blocks(shape, p):
    """Images of >= 2**17 voxels split into row / slab blocks: the unions across them."""
    wide = shape[:-1] + (2 * shape[-1],)
    x = (np.random.default_rng(int(p * 100)).random(wide) < p)[..., ::2]  # a strided view
    before = medfuse.get_num_threads()
    try:
        for conn in CONNS[len(shape)]:
            want = scipy_label(x, conn)
            for n in (1, 2, 3, 4):
                medfuse.set_num_threads(n)
                assert_same_labels(medfuse.label(x, connectivity=conn), want)
    finally:
        medfuse.set_num_threads(before)


# ---- full connectivity labels runs of 2 x 2 voxel columns (issue 22) ----


@pytest.mark.parametrize("parity", [(pz, py, px) for pz in (0, 1) for py in (0, 1) for px in (0, 1)])
def test_full_connectivity_every_offset_and_parity(parity):
    """Two voxels: one component when every |offset| <= 1, two otherwise, for a
    first voxel at each parity of (z, y) (its place in a 2 x 2 pair row) and
    beside a 64-column word boundary."""
    pz, py, px = parity
    base = np.array([2 + pz, 2 + py, 62 + px])
    for off in np.ndindex(5, 5, 5):
        d = np.array(off) - 2
        if not d.any():
            continue
        x = np.zeros((7, 7, 130), dtype=bool)
        x[tuple(base)] = True
        x[tuple(base + d)] = True
        want = 1 if np.abs(d).max() <= 1 else 2
        got = medfuse.label(x, connectivity=26)
        assert got[1] == want, (parity, d.tolist())
        assert_same_labels(got, scipy_label(x, 26))
        # the same pair in a 2D image (offsets in y, x)
        if d[0] == 0:
            x2 = x[base[0]]
            got2 = medfuse.label(x2, connectivity=8)
            assert got2[1] == want, (parity, d.tolist())
            assert_same_labels(got2, scipy_label(x2, 8))


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1), (1, 9, 70), (2, 1, 65), (3, 3, 3), (5, 7, 129), (2, 2, 1), (7, 1, 1), (4, 33, 200), (33, 17, 64)],
)
@pytest.mark.parametrize("p", [0.05, 0.2, 0.35, 0.45, 0.7])
def test_full_connectivity_odd_shapes(shape, p):
    """Odd depths and heights leave the last pair rows half empty; sparse masks
    connect mostly through single diagonal voxels."""
    rng = np.random.default_rng([*shape, int(p * 100)])
    x = rng.random(shape) < p
    assert_same_labels(medfuse.label(x, connectivity=26), scipy_label(x, 26))
    x2 = x.reshape(-1, shape[-1])
    assert_same_labels(medfuse.label(x2, connectivity=8), scipy_label(x2, 8))


def test_full_connectivity_diagonal_lines():
    """Staircases that touch only through voxel corners, in every direction."""
    x = np.zeros((40, 41, 150), dtype=bool)
    for k in range(38):
        x[k, k, 3 + k] = True  # (+1, +1, +1)
        x[k, 39 - k, 60 + k] = True  # (+1, -1, +1)
        x[k + 1, k + 1, 140 - 2 * k] = k % 2 == 0  # broken: gaps of 2 columns
    x[5:35:3, 20, 100:140] = True  # parallel rows two slices apart: separate
    want = scipy_label(x, 26)
    assert want[1] > 3
    assert_same_labels(medfuse.label(x, connectivity=26), want)
