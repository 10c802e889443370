"""Audio spectra: medfuse.stft / spectrogram / mel_spectrogram / mfcc.

Checked against librosa (the stated semantics), scipy.signal.stft, and the
NumPy twins (hypothesis over lengths, odd and non-power-of-two n_fft,
windows, padding modes, batches and layouts); refusals one by one.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import medfuse
import medfuse.reference as ref
from medfuse.kernels import _audio_plan as ap
from simd_paths import run_on_path, simd_paths
from strategies import audio_cases

librosa = pytest.importorskip("librosa")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.abs(b).max())
    return float(np.abs(a - b).max()) / (scale if scale > 0 else 1.0)


def _signal(n: int, dtype=np.float32, seed: int = 0, batch: tuple[int, ...] = ()) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 4000.0
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(batch + (n,))
    return y.astype(dtype)


# ---- librosa ------------------------------------------------------------------------

STFT_CASES = [
    dict(n_fft=2048, hop_length=512),
    dict(n_fft=512),
    dict(n_fft=400, hop_length=160, win_length=300, window="hamming"),
    dict(n_fft=255, hop_length=100, pad_mode="reflect"),
    dict(n_fft=256, hop_length=64, center=False, window="blackman"),
    dict(n_fft=100, hop_length=7, pad_mode="edge", window="boxcar"),
    dict(n_fft=3, hop_length=1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", STFT_CASES, ids=str)
def test_stft_matches_librosa(kw, dtype):
    y = _signal(6001, dtype)
    got = medfuse.stft(y, **kw)
    want = librosa.stft(y, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert _rel(got, want) <= (1e-5 if dtype == np.float32 else 1e-12)
    power = medfuse.spectrogram(y, power=2.0, **kw)
    assert power.dtype == y.dtype and power.shape == want.shape
    assert _rel(power, np.abs(want) ** 2) <= 1e-4


def test_stft_window_array_matches_librosa():
    y = _signal(3000, np.float64)
    w = np.linspace(0.1, 1.0, 200)
    assert _rel(medfuse.stft(y, n_fft=256, win_length=200, window=w), librosa.stft(y, n_fft=256, win_length=200, window=w)) < 1e-12


def test_stft_matches_scipy_signal():
    signal = pytest.importorskip("scipy.signal")
    y = _signal(8000, np.float32)
    for nperseg, hop in [(256, 64), (400, 100), (512, 512)]:
        _, _, z = signal.stft(y, nperseg=nperseg, noverlap=nperseg - hop)
        w = signal.get_window("hann", nperseg)
        got = medfuse.stft(y, n_fft=nperseg, hop_length=hop) / w.sum()
        n = min(got.shape[1], z.shape[1])
        assert n >= 8000 // hop
        assert _rel(got[:, :n], z[:, :n]) <= 1e-4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(sr=4000, n_fft=256, hop_length=64, n_mels=40, fmin=50.0, fmax=1800.0),
        dict(sr=8000, n_fft=400, hop_length=160, n_mels=26, htk=True),
        dict(sr=8000, n_fft=512, n_mels=32, norm=None, power=1.0),
    ],
    ids=str,
)
def test_mel_spectrogram_matches_librosa(kw, dtype):
    y = _signal(20000, dtype)
    got = medfuse.mel_spectrogram(y, **kw)
    want = librosa.feature.melspectrogram(y=y, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert _rel(got, want) <= 1e-4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(sr=4000, n_mfcc=13, n_fft=256, hop_length=64, n_mels=40, fmax=2000.0),
        dict(sr=8000, n_fft=400, hop_length=160, n_mels=40, htk=True, lifter=22, fmin=20.0),
        dict(sr=8000, n_fft=512, n_mels=32, norm=None, top_db=None),
        dict(sr=8000, n_fft=512, n_mels=32, top_db=10.0, ref=0.01),
    ],
    ids=str,
)
def test_mfcc_matches_librosa(kw, dtype):
    y = _signal(20000, dtype)
    got = medfuse.mfcc(y, **kw)
    db_kw = {k: kw.pop(k) for k in ("top_db", "ref") if k in kw}
    if db_kw:  # librosa.feature.mfcc takes the dB parameters only through S
        mel_kw = {k: v for k, v in kw.items() if k not in ("norm", "lifter", "n_mfcc")}
        s_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, **mel_kw), **db_kw)
        want = librosa.feature.mfcc(S=s_db, norm=kw.get("norm", "ortho"))
    else:
        want = librosa.feature.mfcc(y=y, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert _rel(got, want) <= 1e-4


def test_mel_filters_match_librosa():
    for kw in [dict(sr=22050, n_fft=2048, n_mels=128), dict(sr=4000, n_fft=256, n_mels=40, fmin=50.0, fmax=1800.0, htk=True),
               dict(sr=8000, n_fft=401, n_mels=20, norm=None)]:
        sr, n_fft, n_mels = kw.pop("sr"), kw.pop("n_fft"), kw.pop("n_mels")
        got = ap.mel_plan(sr, n_fft, n_mels, kw.get("fmin", 0.0), kw.get("fmax"), kw.get("htk", False), kw.get("norm", "slaney"))
        want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, **kw)
        np.testing.assert_allclose(got.filters, want, rtol=1e-6, atol=1e-9)
        for i in range(n_mels):  # the kernel only visits [lo, hi): nothing non-zero outside
            assert not got.filters[i, : got.lo[i]].any() and not got.filters[i, got.hi[i] :].any()


def test_batched_equals_one_by_one():
    y = _signal(5000, np.float32, batch=(2, 3))
    s = medfuse.mel_spectrogram(y, sr=4000, n_fft=256, n_mels=20)
    assert s.shape[:2] == (2, 3)
    for i in range(2):
        for j in range(3):
            assert np.array_equal(s[i, j], medfuse.mel_spectrogram(y[i, j], sr=4000, n_fft=256, n_mels=20))
    # mfcc clips at the maximum over the whole batch, as librosa on a batched array
    np.testing.assert_allclose(medfuse.mfcc(y, sr=4000, n_fft=256, n_mels=20),
                               librosa.feature.mfcc(y=y, sr=4000, n_fft=256, n_mels=20), rtol=0, atol=2e-3)


# ---- invariants ---------------------------------------------------------------------


def test_pure_tone_peaks_at_its_bin():
    n_fft, sr = 512, 4000.0
    for f_bin in (5, 37, 100, 250):
        t = np.arange(8000) / sr
        y = np.cos(2 * np.pi * f_bin * sr / n_fft * t)
        mag = medfuse.spectrogram(y, n_fft=n_fft, hop_length=128)
        assert np.all(mag[:, 4:-4].argmax(axis=0) == f_bin)


def test_parseval_boxcar():
    y = _signal(4096, np.float64)
    s = medfuse.stft(y, n_fft=1024, hop_length=1024, window="boxcar", center=False)
    full = np.concatenate([s, np.conj(s[-2:0:-1])], axis=0)
    energy = (np.abs(full) ** 2).sum(axis=0) / 1024
    np.testing.assert_allclose(energy, (y.reshape(4, 1024) ** 2).sum(axis=1), rtol=1e-12)


def test_db_logarithm_is_accurate_to_a_few_ulp():
    """mfcc's float32 dB uses the core's own vectorised logarithm: with one mel band and one
    coefficient the MFCC is the band's dB, compared with float64 log10 of the same band values
    over 45 decades, zeros (amin) and subnormal bands."""
    rng = np.random.default_rng(1)
    n = 40000
    y = (np.logspace(-24, 0, n) * rng.standard_normal(n)).astype(np.float32)
    y[:3000] = 0
    kw = dict(sr=4000, n_fft=256, hop_length=64, n_mels=1, fmax=2000.0)
    band = medfuse.mel_spectrogram(y, **kw)[0]  # the same float32 values mfcc takes the dB of
    assert ((band > 0) & (band < np.finfo(np.float32).tiny)).sum() > 20 and (band == 0).sum() > 20
    for amin in (1e-10, 1e-40, 1e-45):
        got = medfuse.mfcc(y, n_mfcc=1, amin=amin, top_db=None, **kw)[0]
        want = 10.0 * np.log10(np.maximum(float(np.float32(amin)), band.astype(np.float64)))
        assert float((np.abs(got - want) / np.maximum(1.0, np.abs(want))).max()) <= 5e-7, amin
        assert got.min() < -99.0  # the amin floor was reached


def test_overflowing_bands_are_refused():
    """Finite samples whose mel bands overflow float32 (tiny sr: Slaney weights in the 1e5s)."""
    y = np.full(4000, 6e14, np.float32)
    kw = dict(sr=1e-3, n_fft=256, n_mels=128)
    for fn in (medfuse.mel_spectrogram, ref.mel_spectrogram):
        with pytest.raises(ValueError, match="the spectrum of y overflows float32"):
            fn(y, **kw)
        with pytest.raises(ValueError, match="overflows float32"):
            fn(y, **{**kw, "n_fft": 250})  # float32 computed in float64, overflowing at the cast
    # the core computes mfcc's bands in float32 too (the twin, in float64, can take these)
    with pytest.raises(ValueError, match="overflows float32"):
        medfuse.mfcc(y, **kw)
    y64 = y.astype(np.float64)
    assert _rel(medfuse.mel_spectrogram(y64, **kw), ref.mel_spectrogram(y64, **kw)) <= 1e-10


def test_plan_cache_many_sizes_and_threads():
    """More FFT sizes than the plan cache holds, in turn and from several Python threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    y = _signal(3000, np.float32)
    sizes = [16, 30, 64, 100, 128, 200, 255, 256, 300, 512, 1000, 1024]
    first = {n: medfuse.stft(y, n_fft=n, hop_length=37) for n in sizes}
    for n in sizes:
        assert _rel(first[n], ref.stft(y, n_fft=n, hop_length=37)) <= 2e-5
    with ThreadPoolExecutor(4) as ex:
        again = list(ex.map(lambda n: medfuse.stft(y, n_fft=n, hop_length=37), sizes * 3))
    for n, got in zip(sizes * 3, again):
        assert np.array_equal(got, first[n])


# ---- twins --------------------------------------------------------------------------


@given(audio_cases())
def test_stft_and_spectrogram_match_twin(case):
    y, kw = case
    try:
        want = ref.stft(y, **kw)
    except ValueError as e:
        with pytest.raises(ValueError, match=str(e)[:30].replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            medfuse.stft(y, **kw)
        return
    got = medfuse.stft(y, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 2e-5 if y.dtype.itemsize == 4 else 1e-11
    assert _rel(got, want) <= tol
    p = medfuse.spectrogram(y, power=1.5, **kw)
    assert _rel(p, ref.spectrogram(y, power=1.5, **kw)) <= 10 * tol


@given(audio_cases(), st.integers(1, 40), st.booleans(), st.sampled_from(["slaney", None]))
def test_mel_and_mfcc_match_twin(case, n_mels, htk, norm):
    y, kw = case
    mel_kw = dict(sr=4000, n_mels=n_mels, htk=htk, **kw)
    try:
        want = ref.mel_spectrogram(y, norm=norm, **mel_kw)
    except ValueError:
        with pytest.raises(ValueError):
            medfuse.mel_spectrogram(y, norm=norm, **mel_kw)
        return
    got = medfuse.mel_spectrogram(y, norm=norm, **mel_kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-4 if y.dtype.itemsize == 4 else 1e-10
    # Relative to the largest output, but never below rounding of the filter weights: a filter whose edge falls on a
    # bin has weight 0 exactly and ~eps in float32 (its output is then rounding noise of order eps * weight * power;
    # seen as 2.8e-36 vs 8.0e-37 for a 1-sample signal and one mel band). Floor: eps32 * max weight * total power.
    from medfuse.kernels._audio_plan import mel_plan

    weights = mel_plan(4000, kw["n_fft"], n_mels, 0.0, None, htk, norm).filters
    power = ref.spectrogram(y, power=2.0, **kw).astype(np.float64).sum(axis=-2).max(initial=0.0)
    floor = float(np.finfo(y.dtype).eps) * float(weights.max(initial=0.0)) * float(power) * 4
    assert float(np.abs(got.astype(np.float64) - want).max(initial=0.0)) <= max(
        tol * float(np.abs(want).max(initial=0.0)), floor)
    n_mfcc = min(13, n_mels)
    got_c = medfuse.mfcc(y, n_mfcc=n_mfcc, **mel_kw)
    want_c = ref.mfcc(y, n_mfcc=n_mfcc, **mel_kw)
    assert got_c.shape == want_c.shape
    # dB of near-zero bins amplifies float32 rounding: compare in dB units
    assert float(np.abs(got_c - want_c).max()) <= (2e-2 if y.dtype.itemsize == 4 else 1e-5)


def test_identical_for_any_thread_count():
    y = _signal(40000, np.float32, batch=(2,))
    results = {}
    for n in (1, 2, 7):
        medfuse.set_num_threads(n)
        results[n] = [medfuse.stft(y, n_fft=400, hop_length=100), medfuse.mfcc(y, sr=4000, n_fft=256),
                      medfuse.mel_spectrogram(y, n_fft=512, hop_length=37)]
    for n in (2, 7):
        for a, b in zip(results[1], results[n]):
            assert np.array_equal(a, b)


# ---- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize("fn", [medfuse.stft, medfuse.spectrogram, medfuse.mel_spectrogram, medfuse.mfcc,
                                ref.stft, ref.spectrogram, ref.mel_spectrogram, ref.mfcc])
def test_refusals(fn):
    y = _signal(1000)
    with pytest.raises(TypeError, match="y must be float32 or float64"):
        fn(y.astype(np.int16))
    with pytest.raises(TypeError, match="y must be a numpy array"):
        fn([0.0] * 100)
    with pytest.raises(ValueError, match="y is empty"):
        fn(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="at least one dimension"):
        fn(np.array(1.0, np.float32))
    bad = y.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        fn(bad)
    bad[10] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        fn(bad)
    with pytest.raises(ValueError, match="n_fft must be between 1"):
        fn(y, n_fft=0)
    with pytest.raises(TypeError, match="n_fft must be an integer"):
        fn(y, n_fft=256.0)
    with pytest.raises(ValueError, match="too large for a signal"):
        fn(y, n_fft=2048, center=False)
    with pytest.raises(ValueError, match="win_length must be between"):
        fn(y, n_fft=256, win_length=300)
    with pytest.raises(ValueError, match="hop_length must be between"):
        fn(y, n_fft=256, hop_length=0)
    with pytest.raises(ValueError, match="window must be one of"):
        fn(y, n_fft=256, window="kaiser")
    with pytest.raises(ValueError, match="window array must have"):
        fn(y, n_fft=256, window=np.ones(10))
    with pytest.raises(ValueError, match="pad_mode must be one of"):
        fn(y, n_fft=256, pad_mode="mean")
    with pytest.raises(TypeError, match="center must be"):
        fn(y, n_fft=256, center="yes")


@pytest.mark.parametrize("fn", [medfuse.mel_spectrogram, medfuse.mfcc, ref.mel_spectrogram, ref.mfcc])
def test_mel_refusals(fn):
    y = _signal(1000)
    with pytest.raises(ValueError, match="sr must be > 0"):
        fn(y, sr=0, n_fft=256)
    with pytest.raises(ValueError, match="fmin < fmax"):
        fn(y, sr=4000, n_fft=256, fmax=2500.0)
    with pytest.raises(ValueError, match="n_mels must be between"):
        fn(y, sr=4000, n_fft=256, n_mels=0)
    with pytest.raises(ValueError, match="power must be > 0"):
        fn(y, sr=4000, n_fft=256, power=0.0)
    with pytest.raises(TypeError, match="htk must be"):
        fn(y, sr=4000, n_fft=256, htk=1)


@pytest.mark.parametrize("fn", [medfuse.mfcc, ref.mfcc])
def test_mfcc_refusals(fn):
    y = _signal(1000)
    with pytest.raises(ValueError, match="n_mfcc must be between"):
        fn(y, sr=4000, n_fft=256, n_mels=20, n_mfcc=21)
    with pytest.raises(ValueError, match="amin must be > 0"):
        fn(y, sr=4000, n_fft=256, amin=0.0)
    with pytest.raises(ValueError, match="top_db must be >= 0"):
        fn(y, sr=4000, n_fft=256, top_db=-1.0)
    with pytest.raises(ValueError, match="ref must be > 0"):
        fn(y, sr=4000, n_fft=256, ref=0.0)
    with pytest.raises(ValueError, match="norm must be 'ortho' or None"):
        fn(y, sr=4000, n_fft=256, norm="slaney")
    with pytest.raises(ValueError, match="lifter must be >= 0"):
        fn(y, sr=4000, n_fft=256, lifter=-1.0)


def test_core_defends_itself():
    core = medfuse._core
    w = np.ones(8)
    with pytest.raises(TypeError):
        core.spectral_f32(np.zeros((1, 64), np.float64), 8, 2, w, 0, 2.0, None, None, None, None, 1e-10, 0.0, -1.0, 1)
    with pytest.raises(ValueError, match="shorter than n_fft"):
        core.spectral_f32(np.zeros((1, 4), np.float32), 8, 2, w, 0, 2.0, None, None, None, None, 1e-10, 0.0, -1.0, 1)
    with pytest.raises(ValueError, match="window must have n_fft"):
        core.spectral_f32(np.zeros((1, 64), np.float32), 8, 2, np.ones(4), 0, 2.0, None, None, None, None, 1e-10, 0.0, -1.0, 1)
    with pytest.raises(ValueError, match="NaN"):
        core.spectral_f64(np.full((1, 64), np.nan), 8, 2, w, 0, 2.0, None, None, None, None, 1e-10, 0.0, -1.0, 1)
    with pytest.raises(ValueError, match="mel_lo"):
        core.spectral_f64(np.zeros((1, 64)), 8, 2, w, 2, 2.0, np.ones((2, 5)), np.array([0, 0]), np.array([9, 5]), None,
                          1e-10, 0.0, -1.0, 1)


@pytest.mark.parametrize("fn", [medfuse.stft, medfuse.mfcc, ref.stft, ref.mfcc])
def test_overflow_is_refused(fn):
    y = np.full(600, np.finfo(np.float32).max, np.float32)
    with pytest.raises(ValueError, match="too large for float32 spectra"):
        fn(y, n_fft=256)
    with pytest.raises(ValueError, match="too large for float64 spectra"):
        fn(np.full(600, 1e307), n_fft=256)
    fn(np.full(600, 1e6, np.float32), n_fft=256)  # loud but representable: accepted


def test_fft_plan_cache_budget():
    """The FFT plan cache keeps at most 64 MB per compute type (least recently
    used evicted) and never keeps a plan over 16 MB (an odd n_fft near 2**22
    needs ~350 MB of Bluestein tables in double); results do not depend on it."""
    from medfuse import _core

    mb = 1 << 20
    # Seven ~9.5 MB double plans (odd n_fft, Bluestein length 2**18): the
    # seventh pushes the total past 64 MB, so the cache ends with exactly the
    # six most recent ones (fewer than the 8-entry limit: the bytes decided).
    sizes = [65537 + 2 * i for i in range(7)]
    for n in sizes:
        plan_bytes, held, cached = _core._fft_plan_cache_probe(n, True)
        assert 8 * mb < plan_bytes < 16 * mb
        assert n in cached and held <= 64 * mb
    assert sorted(cached) == sizes[1:]
    # A plan over 16 MB is built for its call and not kept; it evicts nothing.
    plan_bytes, held2, cached2 = _core._fft_plan_cache_probe(131073, True)
    assert plan_bytes > 16 * mb
    assert sorted(cached2) == sizes[1:] and held2 == held
    # Float plans have their own cache (same rules).
    plan_bytes, _, cached_f = _core._fft_plan_cache_probe(262145, False)
    assert plan_bytes > 16 * mb and 262145 not in cached_f
    # An uncached plan still gives numpy's spectrum.
    y = _signal(131073, np.float64)
    a = medfuse.stft(y, n_fft=131073, center=False)
    w = ap.window_values("hann", 131073, 131073)
    assert _rel(a[:, 0], np.fft.rfft(y * w)) < 1e-9


_DIGEST_SCRIPT = r"""
import hashlib, json
import numpy as np
import medfuse
rng = np.random.default_rng(5)
digests = {}
def put(key, a):
    a = np.ascontiguousarray(a)
    digests[key] = hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()
for dt in (np.float32, np.float64):
    for n in (1, 7, 333, 3001, 20000):
        y = (rng.standard_normal(n) * 0.3).astype(dt)
        y[n // 2] = 40.0  # one loud sample: a wide dynamic range in the dB values
        for n_fft, hop in ((16, 5), (100, 25), (256, 64), (2048, 512)):  # 100: Bluestein
            for th in (1, 3):
                medfuse.set_num_threads(th)
                k = f"{np.dtype(dt).name}-{n}-{n_fft}-{th}"
                put("stft-" + k, medfuse.stft(y, n_fft=n_fft, hop_length=hop))
                put("power-" + k, medfuse.spectrogram(y, n_fft=n_fft, hop_length=hop))
                put("magnitude-" + k, medfuse.spectrogram(y, n_fft=n_fft, hop_length=hop, power=1.0))
                put("mel-" + k, medfuse.mel_spectrogram(y, sr=8000, n_fft=n_fft, hop_length=hop, n_mels=20))
                put("mfcc-" + k, medfuse.mfcc(y, sr=8000, n_mfcc=13, n_fft=n_fft, hop_length=hop, n_mels=20))
print(json.dumps({"active": medfuse.build_info()["simd_active"], "digests": digests}))
"""


def test_spectra_identical_on_every_simd_path():
    """stft, power and magnitude spectrograms, mel and MFCC are the same bits on every SIMD path (each path runs
    the 16 frames of a block through its own vector width: 16, 8 or 4 float lanes), at 1 and 3 threads, for frame
    counts that leave a partial block, power-of-two and Bluestein sizes, float32 and float64."""
    paths = simd_paths()
    if len(paths) < 2:
        pytest.skip("one SIMD path on this machine")
    runs = {p: run_on_path(_DIGEST_SCRIPT, p)["digests"] for p in paths}
    first = runs[paths[0]]
    assert len(first) == 2 * 5 * 4 * 2 * 5
    for p in paths[1:]:
        differ = sorted(k for k in first if runs[p][k] != first[k])
        assert not differ, f"{p} differs from {paths[0]}: {differ[:8]}"
