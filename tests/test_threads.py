"""Threads: identical results for any kernel thread count, the environment
variable, argument checks, and many Python threads calling at once (GIL released)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import images
import medfuse
import medfuse.reference as ref
from strategies import magnitude_quantiles

THREAD_COUNTS = [1, 2, 7]

# Kernels split work into bands of at least 2**18 pixels, so only large
# inputs are split; the first two cases split into 2 (and up to 7) bands.
_CASES = [
    ("natural", (1031, 1777)),
    ("ct", (29, 263, 250)),
    ("natural", (257, 190)),
    ("ct", (128, 131)),
    ("noise", (3, 500)),
    ("blocks", (1, 64)),
    ("natural", (33, 47, 41)),
    ("ct", (5, 64, 60)),
    ("noise", (2, 9, 300)),
]


def _all_results(x):
    """Canny with several option sets, and Sobel, as one list of arrays."""
    out = []
    ndim = x.ndim
    for aperture in (3, 5, 7):
        _, top = magnitude_quantiles(x, aperture)
        for l2 in (False, True):
            kw = dict(aperture_size=aperture, l2_gradient=l2)
            out.append(medfuse.canny(x, 0.1 * top, 0.3 * top, **kw))
    _, top = magnitude_quantiles(x, 3, sigma=1.0)
    out.append(medfuse.canny(x, 0.1 * top, 0.3 * top, sigma=1.3, spacing=(2.0, 1.0, 0.7)[-ndim:]))
    out.extend(medfuse.sobel(x, aperture_size=5))
    out.extend(medfuse.sobel(x, aperture_size=3, border="replicate"))
    return out


@pytest.mark.parametrize("dtype", images.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("family,shape", _CASES, ids=lambda v: str(v))
def test_identical_for_any_thread_count(family, shape, dtype):
    x = images.make(family, shape, dtype, seed=1)
    results = {}
    for n in THREAD_COUNTS:
        medfuse.set_num_threads(n)
        assert medfuse.get_num_threads() == n
        results[n] = _all_results(x)
    assert any(r.any() for r in results[1][:7]), "no edges: the comparison would be vacuous"
    for n in THREAD_COUNTS[1:]:
        for a, b in zip(results[1], results[n]):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{n} threads differ from 1"


def _snake(height=1920, width=1000):
    """A long weak edge winding through every row band; only its start is strong.

    Hysteresis must follow it across band borders for any thread count.
    """
    img = np.zeros((height, width), np.uint8)
    for r in range(0, height, 8):
        img[r : r + 4, 4 : width - 4] = 40  # horizontal bars, weak steps
        side = 4 if (r // 8) % 2 else width - 8
        img[r : r + 12, side : side + 4] = 40  # joined alternately at the ends
    img[0:4, 4:12] = 250  # one strong spot at the start
    return img


@pytest.mark.parametrize("n", THREAD_COUNTS + [16])
def test_hysteresis_crosses_bands(n):
    x = _snake()
    want = ref.canny(x, 50, 400)
    medfuse.set_num_threads(n)
    got = medfuse.canny(x, 50, 400)
    assert np.array_equal(got, want)
    # the chain really is long: edges in every band of rows
    rows = np.nonzero(got.any(axis=1))[0]
    assert rows.min() < 5 and rows.max() > x.shape[0] - 20


_HELIX_CACHE: dict[str, np.ndarray] = {}


def _helix_reference(vol):
    if "want" not in _HELIX_CACHE:
        _HELIX_CACHE["want"] = ref.canny(vol, 300, 3000)
    return _HELIX_CACHE["want"]


@pytest.mark.parametrize("n", THREAD_COUNTS + [16])
def test_hysteresis_crosses_slabs_3d(n):
    """A helix of weak edge through every z-slab, strong only at one end.

    Padded to 1.9M voxels so that the kernel really splits it into slabs.
    """
    z, y, x = np.indices((40, 24, 24))
    t = z / 40 * 4 * np.pi
    vol, _ = images.tube((40, 24, 24), (0.0, 11.5, 11.5), (1.0, 0.0, 0.0), 5.0, 200.0, 0.0, np.float64)
    vol = vol + 60.0 * ((y - 11.5 - 7 * np.cos(t)) ** 2 + (x - 11.5 - 7 * np.sin(t)) ** 2 < 4)
    vol[:3] *= 4.0  # strong contrast only in the first slices
    vol = np.pad(vol, ((0, 0), (96, 96), (96, 96)))
    want = _helix_reference(vol)
    medfuse.set_num_threads(n)
    got = medfuse.canny(vol, 300, 3000)
    assert np.array_equal(got, want)
    assert got[-5:].any()


# ---------------------------------------------------------------------------
# set_num_threads / get_num_threads / MEDFUSE_NUM_THREADS


@pytest.mark.parametrize("bad", [0, -1, -100, 10**6])
def test_set_num_threads_value_error(bad):
    before = medfuse.get_num_threads()
    with pytest.raises(ValueError, match=r"\bn\b"):
        medfuse.set_num_threads(bad)
    assert medfuse.get_num_threads() == before


@pytest.mark.parametrize("bad", [1.5, 2.0, "2", None, True, [2]], ids=repr)
def test_set_num_threads_type_error(bad):
    before = medfuse.get_num_threads()
    with pytest.raises(TypeError, match=r"\bn\b"):
        medfuse.set_num_threads(bad)
    assert medfuse.get_num_threads() == before


def test_set_num_threads_accepts_integer_like():
    medfuse.set_num_threads(np.int64(3))
    assert medfuse.get_num_threads() == 3
    assert type(medfuse.get_num_threads()) is int
    assert medfuse.build_info()["num_threads"] == 3


def _run_python(code, **env_over):
    env = dict(os.environ)
    env.pop("MEDFUSE_NUM_THREADS", None)
    env.update(env_over)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


_REPORT = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import medfuse
    from medfuse.kernels._threads import default_num_threads
print(json.dumps({
    "n": medfuse.get_num_threads(),
    "info": medfuse.build_info()["num_threads"],
    "default": default_num_threads(),
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
}))
"""


@pytest.mark.parametrize("value", ["1", "3", " 5 ", "64"])
def test_env_var_sets_thread_count(value):
    out = json.loads(_run_python(_REPORT, MEDFUSE_NUM_THREADS=value))
    assert out["n"] == out["info"] == int(value)
    assert out["warnings"] == []


def test_env_var_unset_means_all_cores():
    out = json.loads(_run_python(_REPORT))
    assert out["n"] == out["default"] >= 1
    if hasattr(os, "sched_getaffinity"):
        assert out["n"] == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["zero", "0", "-2", "1.5", "100000"])
def test_env_var_invalid_warns_and_uses_default(value):
    out = json.loads(_run_python(_REPORT, MEDFUSE_NUM_THREADS=value))
    assert out["n"] == out["default"]
    assert any("RuntimeWarning" in w and "MEDFUSE_NUM_THREADS" in w for w in out["warnings"]), out["warnings"]


def test_env_var_results_identical():
    """Same edges whether the thread count comes from the environment or the default."""
    code = f"""
import sys, numpy as np, medfuse
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import images
x = images.make("natural", (150, 120), np.uint8, seed=3)
v = images.make("ct", (9, 40, 36), np.int16, seed=3)
import hashlib
h = hashlib.sha256()
for a in (3, 5, 7):
    h.update(medfuse.canny(x, 5 * 4**a, 15 * 4**a, aperture_size=a).tobytes())
    h.update(medfuse.canny(v, 5 * 4**a, 15 * 4**a, aperture_size=a, spacing=(2.5, 0.7, 0.7)).tobytes())
print(medfuse.get_num_threads(), h.hexdigest())
"""
    outs = [_run_python(code, MEDFUSE_NUM_THREADS=n).split() for n in ("1", "2", "7")]
    assert [o[0] for o in outs] == ["1", "2", "7"]
    assert len({o[1] for o in outs}) == 1


# ---------------------------------------------------------------------------
# Python threads


def test_python_threads_match_serial():
    """8 Python threads call the kernels at once on different images (GIL released)."""
    inputs = []
    for i, (family, shape) in enumerate(_CASES * 2):
        dtype = images.DTYPES[i % len(images.DTYPES)]
        inputs.append(images.make(family, shape, dtype, seed=100 + i))

    tops = [magnitude_quantiles(x, 3)[1] for x in inputs]

    def work(j):
        x, t = inputs[j], tops[j]
        return [
            medfuse.canny(x, 0.1 * t, 0.3 * t),
            medfuse.canny(x, 0.05 * t, 0.2 * t, sigma=1.0, l2_gradient=True),
            *medfuse.sobel(x, aperture_size=5),
        ]

    serial = [work(j) for j in range(len(inputs))]
    assert sum(bool(r[0].any()) for r in serial) >= len(inputs) - 2
    barrier = threading.Barrier(8)

    def run(i):
        barrier.wait()  # start together
        return [work(j) for j in range(i, len(inputs), 8)] + [work(j) for j in range(len(inputs))]

    for kernel_threads in (1, 2):
        medfuse.set_num_threads(kernel_threads)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(run, range(8)))
        for i, res in enumerate(results):
            expected = [serial[j] for j in range(i, len(inputs), 8)] + serial
            for got, want in zip(res, expected):
                for g, w in zip(got, want):
                    assert np.array_equal(g, w)


def test_gil_is_released():
    """While one thread is inside a long kernel call, another Python thread runs.

    The ticker's rate alone is measured first; during the call it must reach
    a good fraction of it. With the GIL held it could only tick in the few
    milliseconds around the call's start and end.
    """
    vol = images.make("natural", (64, 160, 160), np.float32, seed=0)
    medfuse.set_num_threads(1)
    ticks = 0
    stop = threading.Event()

    def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    import time

    t = threading.Thread(target=ticker)
    t.start()
    try:
        time.sleep(0.05)
        t0, k0 = time.perf_counter(), ticks
        time.sleep(0.2)
        rate = (ticks - k0) / (time.perf_counter() - t0)  # ticks/s with the GIL free
        for _ in range(5):
            k0, t0 = ticks, time.perf_counter()
            medfuse.canny(vol, 10, 30, sigma=1.0, aperture_size=5)
            k1, elapsed = ticks, time.perf_counter() - t0
            if elapsed > 0.1:
                break
            vol = np.concatenate([vol, vol])  # machine too fast: make the call longer
    finally:
        stop.set()
        t.join()
    assert elapsed > 0.1
    assert k1 - k0 > 0.2 * rate * elapsed, f"ticker ran {k1 - k0} times in {elapsed:.3f}s (free rate {rate:.0f}/s)"
