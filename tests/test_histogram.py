"""medfuse.histogram (and window) against numpy.histogram, the twin, fast-histogram;
values on and next to bin edges, masks, weights, layouts, threads, SIMD paths, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref
from strategies import layouts_of

DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _np_hist(x, bins, rng, mask=None, weights=None):
    vals = x[mask] if mask is not None else x
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None and mask is not None:
        w = w[mask]
    return np.histogram(vals, bins, rng, weights=w)


def _assert_same(got, want, *, exact_weights=True):
    assert got[0].dtype == want[0].dtype
    assert got[1].dtype == want[1].dtype
    np.testing.assert_array_equal(got[1], want[1])
    if exact_weights:
        np.testing.assert_array_equal(got[0], want[0])
    else:
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-9)


@st.composite
def data_with_edges(draw):
    """Data that lands on, and one ulp around, the edges numpy computes."""
    dt = np.dtype(draw(st.sampled_from(DTYPES)))
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    n = int(np.prod(shape))
    seed = draw(st.integers(0, 2**32 - 1))
    g = np.random.default_rng(seed)
    if dt.kind == "f":
        scale = draw(st.sampled_from([1e-3, 1.0, 100.0, 1e5]))
        x = g.standard_normal(n) * scale
    else:
        info = np.iinfo(dt)
        span = draw(st.sampled_from([3, 300, 5000, int(info.max)]))
        x = g.integers(max(int(info.min), -span), min(int(info.max), span) + 1, n)
    x = x.astype(dt)
    kind = draw(st.sampled_from(["int", "int", "edges"]))
    rng = None
    if kind == "int":
        bins = draw(st.integers(1, 300))
        if draw(st.booleans()):
            lo = float(x.min()) - draw(st.sampled_from([0.0, 0.5, 1.0, 0.1]))
            hi = float(x.max()) + draw(st.sampled_from([0.0, 0.3, 1.0]))
            if dt.kind == "f" and draw(st.booleans()):
                lo, hi = dt.type(lo), dt.type(hi)
            if lo < hi:
                rng = (lo, hi)
        # plant values on the edges numpy will use, and their neighbours
        first, last = (x.min(), x.max()) if rng is None else rng
        try:
            with np.errstate(all="ignore"):
                edges = np.histogram_bin_edges(x, bins, rng)
        except ValueError:  # numpy refuses these bins; the test checks we refuse too
            edges = None
        if first != last and edges is not None:
            with np.errstate(all="ignore"):
                if dt.kind == "f":
                    pts = np.concatenate([edges, np.nextafter(edges.astype(dt), np.inf), np.nextafter(edges.astype(dt), -np.inf)])
                else:
                    pts = np.concatenate([np.floor(edges), np.ceil(edges)])
                pts = pts[np.isfinite(pts)]
                if dt.kind in "iu":
                    info = np.iinfo(dt)
                    pts = np.clip(pts, info.min, info.max)
                pts = pts.astype(dt)
            k = min(len(pts), n)
            pos = g.choice(n, size=k, replace=False)
            x[pos] = g.choice(pts, size=k)
    else:
        e = np.sort(g.choice(x.astype(np.float64), size=draw(st.integers(2, 6))))
        if draw(st.booleans()) and dt.kind == "f":
            e = e.astype(dt)
        bins = e
    x = x.reshape(shape)
    mask = g.random(shape) < 0.7 if draw(st.booleans()) else None
    if mask is not None and not mask.any():
        mask.flat[0] = True
    weights = g.standard_normal(shape) if draw(st.booleans()) else None
    return x, bins, rng, mask, weights


@given(data_with_edges())
def test_matches_numpy_on_and_next_to_edges(case):
    x, bins, rng, mask, weights = case
    try:
        want = _np_hist(x, bins, rng, mask, weights)
    except ValueError:  # e.g. numpy's "too many bins for data range": refused alike
        for fn in (medfuse.histogram, ref.histogram):
            with pytest.raises(ValueError, match="bins|range"):
                fn(x, bins, rng, mask=mask, weights=weights)
        return
    got = medfuse.histogram(x, bins, rng, mask=mask, weights=weights)
    exact = weights is None or np.ndim(bins) == 0
    _assert_same(got, want, exact_weights=exact)
    _assert_same(ref.histogram(x, bins, rng, mask=mask, weights=weights), want, exact_weights=exact)
    if weights is None:
        assert got[0].sum() <= (x.size if mask is None else mask.sum())


@given(st.data())
def test_layouts(data):
    dt = data.draw(st.sampled_from(DTYPES))
    g = np.random.default_rng(data.draw(st.integers(0, 1000)))
    base = (g.standard_normal((9, 11, 5)) * 50).astype(dt) if np.dtype(dt).kind == "f" else g.integers(0, 200, (9, 11, 5)).astype(dt)
    x = data.draw(layouts_of(base))
    bins = data.draw(st.sampled_from([7, 256]))
    want = np.histogram(np.asarray(x), bins)
    _assert_same(medfuse.histogram(x, bins), want)
    m = np.asarray(x) > np.median(np.asarray(x))
    if m.any():
        _assert_same(medfuse.histogram(x, bins, mask=m), np.histogram(np.asarray(x)[m], bins))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_aligned_fast_paths(dtype):
    g = np.random.default_rng(3)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        x = np.round(g.standard_normal((40, 50)) * 300).astype(dt)
    elif dt == np.uint8:
        x = g.integers(0, 256, (40, 50)).astype(dt)
    else:
        x = g.integers(-1100 if dt.kind == "i" else 0, 3100, (40, 50)).astype(dt)
    x.flat[:4] = [3072, 3071, -1024, -1025] if dt.kind == "i" else x.flat[:4]
    for bins, rng in [(256, (0, 256)), (1024, (-1024, 3072)), (4096, (-1024, 3072)), (16, (0, 256)), (10, None), (3, (0.5, 100.5))]:
        _assert_same(medfuse.histogram(x, bins, rng), np.histogram(x, bins, rng))
    edges = np.array([-1024, -100, 0, 40, 41, 41, 400, 3072])
    _assert_same(medfuse.histogram(x, edges), np.histogram(x, edges))


def test_last_bin_is_closed_and_outside_ignored():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, -0.1, 4.1, np.nan], dtype=np.float64)
    counts, edges = medfuse.histogram(x, 4, (0, 4))
    np.testing.assert_array_equal(counts, [1, 1, 1, 2])
    np.testing.assert_array_equal(edges, [0, 1, 2, 3, 4])
    counts, _ = medfuse.histogram(x, np.array([0.0, 2.0, 4.0]))
    np.testing.assert_array_equal(counts, [2, 3])


def test_constant_data_widens_like_numpy():
    x = np.full((3, 4), 7, dtype=np.int16)
    _assert_same(medfuse.histogram(x, 5), np.histogram(x, 5))
    _assert_same(medfuse.histogram(np.float32([2.5]), 3), np.histogram(np.float32([2.5]), 3))


def test_float32_range_dtypes_follow_numpy():
    x = np.linspace(-3, 3, 1001, dtype=np.float32)
    for rng in [(-1.1, 2.3), (np.float32(-1.1), np.float32(2.3)), (np.float64(-1.1), np.float64(2.3)), (-1, 2)]:
        _assert_same(medfuse.histogram(x, 37, rng), np.histogram(x, 37, rng))
    u = np.arange(256, dtype=np.uint8)
    _assert_same(medfuse.histogram(u, 7, (np.float32(0.5), np.float32(200.25))), np.histogram(u, 7, (np.float32(0.5), np.float32(200.25))))


def test_nan_policy():
    x = np.array([1.0, np.nan, 2.0])
    np.testing.assert_array_equal(medfuse.histogram(x, 2, (0, 3))[0], [1, 1])
    with pytest.raises(ValueError, match="x: autodetected range"):
        medfuse.histogram(x, 2)
    with pytest.raises(ValueError, match="autodetected range"):
        medfuse.histogram(np.array([1.0, np.inf]), 2)
    m = np.array([True, False, True])
    _assert_same(medfuse.histogram(x, 2, mask=m), np.histogram(x[m], 2))


def test_weighted_sums_are_numpy_bit_exact_on_large_input():
    g = np.random.default_rng(5)
    x = g.standard_normal(300_000).astype(np.float32)
    w = g.standard_normal(300_000) * 1e3
    _assert_same(medfuse.histogram(x, 50, (-2, 2), weights=w), np.histogram(x, 50, (-2, 2), weights=w))
    xi = g.integers(0, 1000, 300_000).astype(np.int16)
    _assert_same(medfuse.histogram(xi, 97, weights=w), np.histogram(xi, 97, weights=w))


def _big_cases():
    g = np.random.default_rng(11)
    ct = g.integers(-1100, 3100, (9, 300, 301)).astype(np.int16)
    f = (g.standard_normal((700, 1500)) * 100).astype(np.float32)
    w = g.standard_normal(f.shape)
    m = g.random(ct.shape) < 0.6
    return [
        lambda: medfuse.histogram(ct, 1024, (-1024, 3072)),
        lambda: medfuse.histogram(ct, 1024, (-1024, 3072), mask=m),
        lambda: medfuse.histogram(ct.astype(np.int32), 333),
        lambda: medfuse.histogram(f, 100),
        lambda: medfuse.histogram(f, 100, weights=w),
        lambda: medfuse.histogram(f, np.array([-300.0, -1.0, 0.0, 5.5, 300.0]), weights=w),
        lambda: medfuse.histogram(ct, np.array([-1000, -50, 0, 100, 1000])),
    ]


def test_identical_for_any_thread_count():
    for case in _big_cases():
        results = []
        for n in (1, 2, 7):
            medfuse.set_num_threads(n)
            results.append(case())
        for r in results[1:]:
            np.testing.assert_array_equal(r[0], results[0][0])
            np.testing.assert_array_equal(r[1], results[0][1])


def test_python_threads_concurrently():
    cases = _big_cases()[:4]
    serial = [c() for c in cases]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(c) for c in cases * 2]
        got = [f.result() for f in futures]
    for i, r in enumerate(got):
        np.testing.assert_array_equal(r[0], serial[i % len(cases)][0])


_SIMD_SCRIPT = r"""
import json, numpy as np, medfuse
g = np.random.default_rng(2)
bad = 0
cases = 0
for dt in (np.uint8, np.uint16, np.int16, np.int32):
    for n in (1, 7, 255, 256, 513, 4099):
        x = g.integers(0 if dt in (np.uint8, np.uint16) else -1100, 255 if dt == np.uint8 else 3100, n).astype(dt)
        m = g.random(n) < 0.5
        m[0] = True
        for bins, rng in ((256, (0, 256)), (1024, (-1024, 3072)), (13, None), (70000, (0, 70000))):
            for mask in (None, m):
                cases += 1
                want = np.histogram(x if mask is None else x[mask], bins, rng)[0]
                bad += not np.array_equal(medfuse.histogram(x, bins, rng, mask=mask)[0], want)
# 8/16-bit data count into 16-bit counters flushed every 126 tiles per sub-histogram: long runs of one value
# (one counter far past 65535 increments in all, nearly 64519 in one window), 4 / 2 / 1 sub-histograms
# (4096 / 10000 / 40000 keys), with a mask, at 1 and 2 threads.
for dt, lo, hi in ((np.uint8, 0, 256), (np.uint16, 0, 40000), (np.int16, -1024, 30000)):
    for n in (64519, 258077, 600011):
        x = np.full(n, 7 if dt == np.uint8 else 1000, dt)
        some = g.random(n) < 0.1
        x[some] = g.integers(lo, hi, some.sum()).astype(dt)
        m = g.random(n) < 0.97
        for bins in ((256, 100, 17) if dt == np.uint8 else (4096, 10000, 40000, 1024)):
            rng = (lo, lo + bins) if dt != np.uint8 else (0, 256)
            for mask in (None, m):
                for th in (1, 2):
                    medfuse.set_num_threads(th)
                    cases += 1
                    want = np.histogram(x if mask is None else x[mask], bins, rng)[0]
                    bad += not np.array_equal(medfuse.histogram(x, bins, rng, mask=mask)[0], want)
print(json.dumps({"active": medfuse.build_info()["simd_active"], "cases": cases, "bad": bad}))
"""


@pytest.mark.parametrize("path", ["baseline", "avx2"])
def test_simd_paths_match_numpy(path):
    if path not in medfuse.build_info()["simd_supported"]:
        pytest.skip(f"{path} not supported here")
    env = dict(os.environ, MEDFUSE_SIMD=path)
    proc = subprocess.run([sys.executable, "-c", _SIMD_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["active"] == path
    assert out["cases"] > 100
    assert out["bad"] == 0


def test_fast_histogram_agrees_on_half_open_bins():
    fh = pytest.importorskip("fast_histogram")
    g = np.random.default_rng(1)
    x = g.integers(-1024, 3071, 100_000).astype(np.int16)
    got = medfuse.histogram(x, 1024, (-1024, 3072))[0]
    np.testing.assert_array_equal(got, fh.histogram1d(x, 1024, (-1024, 3072)).astype(np.int64))


# ---- refusals --------------------------------------------------------------------
X = np.arange(12, dtype=np.float64).reshape(3, 4)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(bins=0), ValueError, "bins"),
        (dict(bins=-3), ValueError, "bins"),
        (dict(bins=True), TypeError, "bins"),
        (dict(bins="auto"), TypeError, "bins"),
        (dict(bins=2.5), TypeError, "bins"),
        (dict(bins=np.array([0.0, 2.0, 1.0])), ValueError, "bins"),
        (dict(bins=np.array([0.0, np.nan, 1.0])), ValueError, "bins"),
        (dict(bins=np.array([1.0])), ValueError, "bins"),
        (dict(bins=np.array([[0.0, 1.0]])), ValueError, "bins"),
        (dict(range=(3, 3)), ValueError, "range"),
        (dict(range=(4, 1)), ValueError, "range"),
        (dict(range=(0, np.inf)), ValueError, "range"),
        (dict(range=(np.nan, 1)), ValueError, "range"),
        (dict(range=(0, 1, 2)), TypeError, "range"),
        (dict(range=("a", 1)), TypeError, "range"),
        (dict(mask=np.ones((4, 3), bool)), ValueError, "mask"),
        (dict(mask=np.ones((3, 4), np.uint8)), TypeError, "mask"),
        (dict(mask=np.zeros((3, 4), bool)), ValueError, "mask"),
        (dict(weights=np.ones((3, 3))), ValueError, "weights"),
        (dict(weights=np.ones((3, 4), complex)), TypeError, "weights"),
        (dict(bins=10**6, range=(np.float32(1), np.float32(1.0001))), ValueError, "bins"),
    ],
)
def test_refusals(kwargs, exc, match):
    x = X.astype(np.float32) if "range" in kwargs and isinstance(kwargs["range"][0], np.float32) else X
    for fn in (medfuse.histogram, ref.histogram):
        with pytest.raises(exc, match=match):
            fn(x, **kwargs)


@pytest.mark.parametrize("x", [np.zeros(3, np.int64), np.zeros(3, bool), np.zeros(3, complex), np.zeros((0, 3)), "abc"])
def test_refuses_bad_data(x):
    for fn in (medfuse.histogram, ref.histogram):
        with pytest.raises((TypeError, ValueError), match="x"):
            fn(x)


def test_refuses_overflowing_range():
    x = np.array([-3e38, 3e38], dtype=np.float32)
    for fn in (medfuse.histogram, ref.histogram):
        with pytest.raises(ValueError, match="range"):
            fn(x, 4)


# ---- window ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("out_dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_window_matches_twin(dtype, out_dtype):
    g = np.random.default_rng(4)
    x = g.integers(-2000, 3000, (6, 33, 17))
    if np.dtype(dtype).kind == "u":
        x = np.abs(x)
    x = x.astype(dtype)
    for center, width in [(-600, 1500), (40, 400), (400, 1800), (0.5, 1.0)]:
        got = medfuse.window(x, center, width, out_dtype=out_dtype)
        want = ref.window(x, center, width, out_dtype=out_dtype)
        assert got.dtype == np.dtype(out_dtype) and got.shape == x.shape
        np.testing.assert_array_equal(got, want)


def test_window_endpoints():
    hu = np.array([-1350, -600, 150, 151, 5000], dtype=np.int16)
    np.testing.assert_array_equal(medfuse.window(hu, -600, 1500), [0, 128, 255, 255, 255])
    np.testing.assert_array_equal(medfuse.window(hu, -600, 1500, out_dtype=np.float64), ref.window(hu, -600, 1500, out_dtype=np.float64))
    assert medfuse.window(hu, -600, 1500, out_dtype=np.float32).max() == 1.0


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((-600, 0), {}, ValueError, "width"),
        ((-600, -5), {}, ValueError, "width"),
        ((np.nan, 10), {}, ValueError, "center"),
        ((0, 10), dict(out_dtype=np.int8), TypeError, "out_dtype"),
        ((0, 10), dict(out_dtype="nonsense"), TypeError, "out_dtype"),
    ],
)
def test_window_refusals(args, kwargs, exc, match):
    for fn in (medfuse.window, ref.window):
        with pytest.raises(exc, match=match):
            fn(np.zeros((2, 2), np.int16), *args, **kwargs)


def test_window_refuses_nan():
    for fn in (medfuse.window, ref.window):
        with pytest.raises(ValueError, match="hu"):
            fn(np.array([0.0, np.nan]), 0, 10)
