"""medfuse.filter_bank: LoG vs scipy.ndimage.gaussian_laplace, Gabor vs
skimage.filters.gabor, Laws energy vs scipy.ndimage; twins; refusals."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import images
import medfuse
import medfuse.reference as ref
from strategies import image_views

ndi = pytest.importorskip("scipy.ndimage")
TAME = ("natural", "ct", "noise", "constant", "blocks")


def _atol(x, factor):
    return 1e-5 * factor * np.abs(np.asarray(x, dtype=np.float64)).max(initial=0.0) + 1e-30


@pytest.mark.parametrize("shape", [(1, 1), (37, 41), (9, 13, 11)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_log_matches_scipy(shape, dtype):
    x = images.make("natural", shape, dtype, seed=1)
    stack, names = medfuse.filter_bank(x, kind="log", sigmas=[0.7, 1.5, 3.0], normalize=False)
    assert stack.shape == (3,) + shape and stack.dtype == np.float32
    assert names == ["log_s0.7", "log_s1.5", "log_s3"]
    for s, r in zip([0.7, 1.5, 3.0], stack):
        want = ndi.gaussian_laplace(x.astype(np.float64), s, mode="mirror")
        # second-derivative taps sum |.| ~ 2/sigma² per axis
        np.testing.assert_allclose(r, want, rtol=0, atol=_atol(x, len(shape) * 4 / s**2))
    normed, _ = medfuse.filter_bank(x, kind="log", sigmas=[0.7, 1.5, 3.0])
    for s, a, b in zip([0.7, 1.5, 3.0], normed, stack):
        np.testing.assert_allclose(a, b * np.float32(s * s), rtol=1e-6, atol=1e-30 + 1e-6 * np.abs(b).max())


def test_log_of_blob_peaks_at_matching_scale():
    """Scale-normalised LoG of a Gaussian blob of sigma s0 is most negative near sigma = s0."""
    y, x = np.mgrid[:81, :81]
    s0 = 4.0
    img = np.exp(-((y - 40) ** 2 + (x - 40) ** 2) / (2 * s0**2)) * 100
    sig = [1.0, 2.0, 4.0, 8.0, 16.0]
    stack, _ = medfuse.filter_bank(img, kind="log", sigmas=sig)
    centre = stack[:, 40, 40]
    assert sig[int(np.argmin(centre))] == 4.0


@pytest.mark.parametrize("freq", [0.08, 0.15, 0.4])
def test_gabor_matches_skimage(freq):
    skf = pytest.importorskip("skimage.filters")
    x = images.make("natural", (64, 57), np.float64, seed=2)
    stack, names = medfuse.filter_bank(x, kind="gabor", frequencies=[freq], orientations=4)
    assert len(names) == 4 and names[1] == f"gabor_f{freq:g}_t1"
    for k in range(4):
        theta = k * math.pi / 4
        kern = skf.gabor_kernel(freq, theta=theta)
        re, im = skf.gabor(x, freq, theta=theta, mode="mirror")
        want = np.hypot(re, im)
        np.testing.assert_allclose(stack[k], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
        assert kern.shape[0] % 2 == 1


def test_gabor_kernel_matches_skimage():
    skf = pytest.importorskip("skimage.filters")
    from medfuse.kernels._convolve_plan import gabor_kernel

    for f in (0.05, 0.1, 0.3):
        for theta in (0.0, 0.4, math.pi / 2, 2.0):
            for bw in (0.5, 1.0, 2.0):
                np.testing.assert_allclose(gabor_kernel(f, theta, bw, 3.0),
                                           skf.gabor_kernel(f, theta=theta, bandwidth=bw), rtol=1e-12, atol=1e-15)


def _laws_scipy(x, vecs, window):
    from medfuse.kernels._convolve_plan import LAWS_VECTORS

    r = np.asarray(x, dtype=np.float64)
    for axis, name in enumerate(vecs):
        r = ndi.correlate1d(r, LAWS_VECTORS[name], axis=axis, mode="mirror")
    return ndi.uniform_filter(np.abs(r), window, mode="mirror")


@pytest.mark.parametrize("shape", [(40, 45), (7, 12, 10)])
def test_laws_matches_scipy(shape):
    x = images.make("ct", shape, np.int16, seed=3)
    stack, names = medfuse.filter_bank(x, kind="laws", laws_window=5)
    assert len(names) == 5 ** len(shape)
    assert names[0] == "L5" * len(shape)
    for i in (0, 1, 7, len(names) - 1):
        combo = [names[i][j:j + 2] for j in range(0, len(names[i]), 2)]
        want = _laws_scipy(x, combo, 5)
        np.testing.assert_allclose(stack[i], want, rtol=0, atol=_atol(x, 16 ** len(shape)))


def test_laws_subset_and_window_per_axis():
    x = images.make("natural", (30, 33), np.uint8, seed=4)
    stack, names = medfuse.filter_bank(x, kind="laws", laws_vectors=["E5", "S5"], laws_window=(3, 7))
    assert names == ["E5E5", "E5S5", "S5E5", "S5S5"]
    np.testing.assert_allclose(stack[1], _laws_scipy(x, ["E5", "S5"], (3, 7)), rtol=0, atol=_atol(x, 256))


@given(data=st.data())
def test_bank_matches_twin(data):
    kind = data.draw(st.sampled_from(["log", "gabor", "laws"]))
    nd = 2 if kind == "gabor" else data.draw(st.sampled_from([2, 3]))
    x = data.draw(image_views(ndim=nd, families=TAME, max_side=24 if nd == 2 else 8))
    kw = {}
    if kind == "log":
        kw = dict(sigmas=data.draw(st.lists(st.floats(0.3, 3.0), min_size=1, max_size=3)),
                  normalize=data.draw(st.booleans()))
    elif kind == "gabor":
        kw = dict(frequencies=[data.draw(st.floats(0.1, 0.5))], orientations=data.draw(st.integers(1, 3)))
    else:
        kw = dict(laws_vectors=data.draw(st.lists(st.sampled_from(["L5", "E5", "S5", "R5", "W5"]), min_size=1,
                                                  max_size=2, unique=True)),
                  laws_window=data.draw(st.sampled_from([1, 3, 5])))
    border = data.draw(st.sampled_from(["reflect101", "reflect", "replicate", "constant", "wrap"]))
    got, names = medfuse.filter_bank(x, kind=kind, border=border, **kw)
    want, wnames = ref.filter_bank(x, kind=kind, border=border, **kw)
    assert names == wnames
    assert got.dtype == want.dtype == np.float32
    scale = np.abs(want).max(initial=0.0)
    big = np.abs(np.asarray(x, dtype=np.float64)).max(initial=0.0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * (scale + big * 64) + 1e-30)


def test_bank_threads_invariant():
    x = images.make("ct", (12, 90, 80), np.int16, seed=5)
    res = []
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        res.append(medfuse.filter_bank(x, kind="laws", laws_vectors=["L5", "E5"])[0])
    for r in res[1:]:
        np.testing.assert_array_equal(r, res[0])


def _crop_cases():
    """3D CT crops as the extractor's "filters" group sees them (issue 25): odd
    sizes, 1-voxel axes, strided / offset / transposed views, int16 and float32."""
    rng = np.random.default_rng(25)
    shapes = [(1, 1, 1), (1, 7, 1), (3, 1, 9), (5, 7, 3), (2, 17, 33), (9, 13, 11), (1, 40, 37), (7, 3, 129),
              (13, 2, 65), (4, 31, 1), (6, 19, 23), (3, 5, 47)]
    cases = []
    for i, shape in enumerate(shapes):
        big = rng.normal(-300.0, 400.0, size=tuple(2 * n + 1 for n in shape))
        big = big.astype(np.int16 if i % 2 else np.float32)
        view = [big[::2, ::2, ::2][: shape[0], : shape[1], : shape[2]],
                big[1 : shape[0] + 1, : shape[1], 1 : shape[2] + 1],
                np.ascontiguousarray(big[: shape[0], : shape[1], : shape[2]].transpose(2, 0, 1)).transpose(1, 2, 0)][i % 3]
        assert view.shape == shape
        cases.append(view)
    return cases


def _crop_bank(x):
    laws, _ = medfuse.filter_bank(x, kind="laws", laws_vectors=["L5", "E5"], laws_window=7)
    log, _ = medfuse.filter_bank(x, kind="log", sigmas=[1.0, 2.0])
    return laws, log


def test_bank_on_crops_from_python_threads_equals_serial_and_twin():
    """Issue 25: the abort was reported inside the Laws bank on 3D crops, several
    extraction threads at once, each kernel threaded. From 4 Python threads, kernel
    threads switched 1..3 between calls, every result equals the serial one bit
    for bit (a race or an overflowed scratch buffer would change some) and the
    NumPy twin to rounding; the sanitizer job (.ci/sanitize) runs this file."""
    cases = _crop_cases()
    medfuse.set_num_threads(1)
    serial = [_crop_bank(x) for x in cases]
    for x, got in zip(cases, serial):
        big = np.abs(np.asarray(x, dtype=np.float64)).max()
        for g, kw in zip(got, [dict(kind="laws", laws_vectors=["L5", "E5"], laws_window=7),
                               dict(kind="log", sigmas=[1.0, 2.0])]):
            want, _ = ref.filter_bank(x, **kw)
            np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5 * (np.abs(want).max() + big * 64) + 1e-30)
    n_threads, rounds = 4, 3
    barrier = threading.Barrier(n_threads)
    results: dict[tuple[int, int], tuple] = {}
    errors: list[BaseException] = []

    def work(t):
        try:
            barrier.wait(timeout=60)
            for r in range(rounds):
                for i in range(t, len(cases), 2):
                    medfuse.set_num_threads(1 + (t + r + i) % 3)
                    results[(t * rounds + r, i)] = _crop_bank(cases[i])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    medfuse.set_num_threads(1)
    assert not errors, errors[0]
    assert len(results) == rounds * sum(len(range(t, len(cases), 2)) for t in range(n_threads))
    for (_run, i), (laws, log) in results.items():
        np.testing.assert_array_equal(laws, serial[i][0], err_msg=f"laws, crop {cases[i].shape}")
        np.testing.assert_array_equal(log, serial[i][1], err_msg=f"log, crop {cases[i].shape}")


@pytest.mark.parametrize("fn", [medfuse.filter_bank, ref.filter_bank])
def test_bank_refusals(fn):
    x = np.zeros((8, 9), np.float32)
    v = np.zeros((4, 8, 9), np.float32)
    with pytest.raises(ValueError, match="kind"):
        fn(x, kind="sobel")
    with pytest.raises(ValueError, match="gabor"):
        fn(v, kind="gabor")
    with pytest.raises(ValueError, match="sigmas"):
        fn(x, kind="log", sigmas=[1.0, -1.0])
    with pytest.raises(ValueError, match="sigmas"):
        fn(x, kind="log", sigmas=[])
    with pytest.raises(ValueError, match="frequencies"):
        fn(x, kind="gabor", frequencies=[0.7])
    with pytest.raises(ValueError, match="orientations"):
        fn(x, kind="gabor", orientations=0)
    with pytest.raises(TypeError, match="orientations"):
        fn(x, kind="gabor", orientations=2.5)
    with pytest.raises(ValueError, match="bandwidth"):
        fn(x, kind="gabor", bandwidth=0)
    with pytest.raises(ValueError, match="laws_window"):
        fn(x, kind="laws", laws_window=4)
    with pytest.raises(ValueError, match="laws_window"):
        fn(v, kind="laws", laws_window=(3, 3))
    with pytest.raises(ValueError, match="laws_vectors"):
        fn(x, kind="laws", laws_vectors=["Q5"])
    with pytest.raises(ValueError, match="border"):
        fn(x, kind="laws", border="edge")
    with pytest.raises(TypeError, match="normalize"):
        fn(x, kind="log", normalize=1)
