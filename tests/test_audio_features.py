"""Synthetic auscultation, crackle / wheeze detectors (scored against the truth) and AudioFeatureExtractor."""

from __future__ import annotations

import numpy as np
import pytest

from medfuse.data.auscultation import EVENT_TYPES, AudioFindings, auscultation, findings_from_factors
from medfuse.features import AudioFeatureExtractor
from medfuse.features.audio import detect_crackles, detect_wheezes, estimate_breaths, score_events

FRESH_SEEDS = range(90_000, 90_012)  # never used while tuning the detectors


def _findings(seed: int) -> AudioFindings:
    rng = np.random.default_rng(seed)
    return AudioFindings(
        fine_crackles=float(rng.choice([0, 6])),
        coarse_crackles=float(rng.choice([0, 3])),
        wheeze=float(rng.choice([0.0, 0.7])),
        diminished=float(rng.choice([0.0, 0.5])),
    )


def test_recording_shape_and_truth():
    r = auscultation(AudioFindings(6, 3, 0.9, 0.0), 4)
    assert r.rate == 4000 and r.samples.dtype == np.float32 and r.samples.ndim == 1
    assert 10.0 <= r.samples.size / r.rate <= 30.0
    assert np.isfinite(r.samples).all() and np.abs(r.samples).max() <= 1.0
    assert {e.kind for e in r.events} <= set(EVENT_TYPES)
    assert r.count("fine_crackle") > 0 and r.count("coarse_crackle") > 0 and r.count("wheeze") > 0
    dur = r.samples.size / r.rate
    for e in r.events:
        assert 0 <= e.start < e.end <= dur
        if e.kind == "wheeze":
            assert e.end - e.start > 0.08 and 100 <= e.freq <= 1000
        else:
            assert e.end - e.start <= 0.015
    again = auscultation(AudioFindings(6, 3, 0.9, 0.0), 4)
    assert np.array_equal(r.samples, again.samples) and r.events == again.events
    assert not np.array_equal(r.samples[:4000], auscultation(AudioFindings(6, 3, 0.9, 0.0), 5).samples[:4000])


def test_findings_follow_the_factors():
    f = findings_from_factors({"fibrosis": 1.0, "infection": 0.0, "airway_narrowing": 0.0, "effusion": 0.0}, 1)
    assert f.fine_crackles > 0 and f.coarse_crackles == 0 and f.wheeze == 0
    f = findings_from_factors({"fibrosis": 0.0, "tuberculosis": 1.0, "airway_narrowing": 0.8, "effusion": 1.0}, 1)
    assert f.coarse_crackles > 0 and f.wheeze > 0.5 and f.diminished > 0
    # the nodule model: malignant, large nodules wheeze more often on average
    hi = np.mean([findings_from_factors({"malignancy_logit": 3.0, "diameter_mm": 25.0}, s).wheeze for s in range(200)])
    lo = np.mean([findings_from_factors({"malignancy_logit": -3.0, "diameter_mm": 6.0}, s).wheeze for s in range(200)])
    assert hi > lo + 0.2
    quiet = auscultation(AudioFindings(diminished=0.8), 3, duration=12.0)
    loud = auscultation(AudioFindings(), 3, duration=12.0)
    assert quiet.samples.std() < 0.6 * loud.samples.std()


def test_detectors_reach_f1_on_fresh_seeds():
    tot = {"crackle": np.zeros(3), "wheeze": np.zeros(3)}
    kind_ok = kind_n = 0
    for seed in FRESH_SEEDS:
        r = auscultation(_findings(seed), seed)
        cr = detect_crackles(r.samples, r.rate)
        truth_c = [(e.start, e.end) for e in r.events if e.kind.endswith("crackle")]
        s = score_events([(t, t + d) for t, d, _, _ in cr], truth_c, tolerance=0.005)
        tot["crackle"] += (s["tp"], s["fp"], s["fn"])
        wh = detect_wheezes(r.samples, r.rate)
        s = score_events([(a, b) for a, b, _ in wh], [(e.start, e.end) for e in r.events if e.kind == "wheeze"])
        tot["wheeze"] += (s["tp"], s["fp"], s["fn"])
        for t, _d, _f, kind in cr:
            match = [e for e in r.events if e.kind.endswith("crackle") and e.start - 0.005 <= t <= e.end + 0.005]
            if match:
                kind_n += 1
                kind_ok += (kind == "fine") == (match[0].kind == "fine_crackle")
    for name, (tp, fp, fn) in tot.items():
        assert tp >= 20, name  # not a vacuous score
        p, r_ = tp / (tp + fp), tp / (tp + fn)
        assert 2 * p * r_ / (p + r_) >= 0.85, (name, tp, fp, fn)
    assert kind_ok / kind_n >= 0.9


def test_detectors_stay_quiet_on_clean_breathing():
    n_c = n_w = 0
    for seed in range(91_000, 91_004):
        r = auscultation(AudioFindings(), seed)
        n_c += len(detect_crackles(r.samples, r.rate))
        n_w += len(detect_wheezes(r.samples, r.rate))
    assert n_c <= 4 and n_w <= 2


def test_breath_estimate():
    for seed in range(92_000, 92_004):
        r = auscultation(AudioFindings(), seed)
        assert abs(estimate_breaths(r.samples, r.rate) - len(r.breaths)) <= max(1.0, 0.2 * len(r.breaths))


def test_score_events():
    s = score_events([(0.0, 0.1), (0.5, 0.6), (2.0, 2.1)], [(0.05, 0.2), (0.55, 0.58), (1.0, 1.1)])
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1) and s["precision"] == pytest.approx(2 / 3)
    assert score_events([], [])["f1"] == 1.0


def test_extractor_names_rows_and_pandas():
    recs = [(auscultation(AudioFindings(6, 0, 0.8), s, duration=10.0).samples, 4000) for s in (1, 2)]
    fe = AudioFeatureExtractor()
    X = fe.fit_transform([*recs, None])
    names = fe.get_feature_names_out()
    assert X.shape == (3, len(names)) and len(set(names)) == len(names)
    assert np.isfinite(X[:2]).all() and np.isnan(X[2]).all()
    col = {n: i for i, n in enumerate(names)}
    assert X[0, col["fine_crackles_per_breath"]] > 1 and X[0, col["coarse_crackles_per_breath"]] < 1
    df = AudioFeatureExtractor(groups=("spectral", "wheezes")).set_output(transform="pandas").fit_transform(recs)
    assert list(df.columns) == list(AudioFeatureExtractor(groups=("spectral", "wheezes")).fit([None]).get_feature_names_out())
    # a recording at another rate is resampled: features close to the 4 kHz ones
    from scipy.signal import resample_poly

    up = resample_poly(recs[0][0].astype(np.float64), 2, 1).astype(np.float32)
    a = AudioFeatureExtractor(groups=("crackles", "wheezes")).fit_transform([recs[0], (up, 8000)])
    np.testing.assert_allclose(a[0], a[1], rtol=0.2, atol=0.2)


def test_extractor_spectral_features_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000).astype(np.float32)
    fe = AudioFeatureExtractor(groups=("spectral",), n_fft=256, hop_length=64).fit([None])
    row = fe.transform([x])[0]
    librosa = pytest.importorskip("librosa")

    s = np.abs(librosa.stft(x, n_fft=256, hop_length=64)) ** 2
    cen = librosa.feature.spectral_centroid(S=np.sqrt(s), sr=4000, n_fft=256)[0]
    # librosa weights by magnitude; ours by power: compare with a power-weighted centroid
    f = np.fft.rfftfreq(256, 1 / 4000)[:, None]
    ours = ((f * s).sum(0) / s.sum(0)).mean()
    assert row[0] == pytest.approx(ours, rel=1e-3)
    assert abs(cen.mean() - ours) < 200  # both near the middle of the band for white noise
    roll = librosa.feature.spectral_rolloff(S=s, sr=4000, n_fft=256, roll_percent=0.85)[0]
    assert row[6] == pytest.approx(roll.mean(), abs=20)  # same bins, same definition


def test_extractor_refusals():
    with pytest.raises(ValueError, match="n_mfcc must be <= n_mels"):
        AudioFeatureExtractor(n_mfcc=50, n_mels=40).fit([None])
    with pytest.raises(ValueError, match="groups must be"):
        AudioFeatureExtractor(groups=("mfcc", "nope")).fit([None])
    with pytest.raises(ValueError, match="sr must be a positive integer"):
        AudioFeatureExtractor(sr=0).fit([None])
    fe = AudioFeatureExtractor().fit([None])
    with pytest.raises(ValueError, match="X is empty"):
        fe.transform([])
    with pytest.raises(ValueError, match="wrap a single signal"):
        fe.transform(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="recording 0 contains NaN"):
        fe.transform([np.full(100, np.nan, np.float32)])
    with pytest.raises(ValueError, match="sample rate must be"):
        fe.transform([(np.zeros(100, np.float32), 0)])
    with pytest.raises(ValueError, match="non-empty 1D"):
        fe.transform([np.zeros((2, 100), np.float32)])
