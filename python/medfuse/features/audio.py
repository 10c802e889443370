"""Lung-sound features: spectral statistics and crackle / wheeze detectors.

- :func:`detect_crackles`: short transients (crackles) in a recording, as
  ``(time_s, duration_s, freq_hz, kind)`` with kind "fine" (oscillation
  above ``fine_hz``) or "coarse".
- :func:`detect_wheezes`: continuous tonal lines (wheezes), as
  ``(start_s, end_s, f0_hz)``.
- :func:`estimate_breaths`: the number of breath cycles (from the period of
  the breath-sound envelope).
- :func:`score_events`: precision / recall / F1 of detections against truth.
- :class:`AudioFeatureExtractor`: scikit-learn transformer, one row per
  recording: MFCC and log-mel statistics, spectral centroid / bandwidth /
  flatness / roll-off, crackle and wheeze counts per breath and durations.

Spectra come from the C++ kernels (``medfuse.spectrogram``, ``mfcc``,
``mel_spectrogram``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

from ..kernels.audio import mel_spectrogram, mfcc, spectrogram

__all__ = [
    "AudioFeatureExtractor",
    "detect_crackles",
    "detect_wheezes",
    "estimate_breaths",
    "score_events",
]


def _band(y: npt.NDArray[np.float32], rate: int, lo: float, hi: float) -> npt.NDArray[np.float32]:
    """Zero-phase band-pass by an FFT mask with raised-cosine edges (power-of-two length)."""
    n = y.size
    m = 1 << max(1, (n - 1).bit_length())
    spec = np.fft.rfft(y, m)
    f = np.fft.rfftfreq(m, 1.0 / rate)
    w = np.clip((f - 0.7 * lo) / (0.3 * lo), 0.0, 1.0) * np.clip((1.3 * hi - f) / (0.3 * hi), 0.0, 1.0)
    return np.fft.irfft(spec * w, m)[:n].astype(np.float32)


def detect_crackles(
    y: npt.NDArray[np.floating[Any]],
    rate: int,
    *,
    threshold: float = 15.0,
    fine_hz: float = 350.0,
    band: tuple[float, float] = (250.0, 1500.0),
) -> list[tuple[float, float, float, str]]:
    """Crackles: bursts of band energy (``band``, default 250-1500 Hz) far above the local background, shorter than 25 ms.

    Energy ``e`` = squared band-passed signal smoothed over 2 ms; background
    = the median of ``e`` in 100 ms blocks (interpolated); a run with ``e``
    above ``threshold`` x background (and above an absolute floor from the
    quietest blocks) lasting 25 ms or less is one crackle (continuous
    sounds such as wheezes stay above longer and are skipped). Its frequency
    is read from zero crossings over 8 ms from the onset: above ``fine_hz``
    "fine", else "coarse".
    """
    x = _band(np.asarray(y, dtype=np.float32), rate, band[0], band[1])
    k = max(1, int(0.002 * rate))
    e = np.convolve(x * x, np.ones(k, np.float32) / k, mode="same")
    blk = max(1, int(0.1 * rate))
    nb = max(1, e.size // blk)
    med = np.median(e[: nb * blk].reshape(nb, blk), axis=1) if e.size >= blk else np.array([np.median(e)])
    centres = (np.arange(med.size) + 0.5) * blk
    bg = np.interp(np.arange(e.size), centres, med)
    floor = 4.0 * float(np.percentile(med, 10)) + 1e-12
    above = e > np.maximum(threshold * bg, floor)
    if not above.any():
        return []
    d = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    out: list[tuple[float, float, float, str]] = []
    max_len = int(0.025 * rate)
    last_end = -(10**9)
    for s, t in zip(starts.tolist(), ends.tolist()):
        if t - s > max_len:
            continue
        if s - last_end < int(0.02 * rate) and out:  # the tail of the previous crackle
            last_end = t
            continue
        seg = x[s : min(x.size, s + int(0.008 * rate))]
        zc = int(np.count_nonzero(np.diff(np.signbit(seg).astype(np.int8))))
        freq = zc * rate / (2.0 * max(seg.size, 1))
        out.append((s / rate, (t - s) / rate, freq, "fine" if freq >= fine_hz else "coarse"))
        last_end = t
    return out


def detect_wheezes(
    y: npt.NDArray[np.floating[Any]],
    rate: int,
    *,
    min_duration: float = 0.08,
    prominence: float = 20.0,
    fmin: float = 100.0,
    fmax: float = 1000.0,
    max_gap: float = 0.06,
) -> list[tuple[float, float, float]]:
    """Wheezes: a spectral line in ``[fmin, fmax]`` Hz standing out of its neighbourhood for >= ``min_duration`` s.

    Power spectrogram (``medfuse.spectrogram``, 64 ms Hann windows, 8 ms hop
    at 4 kHz); per frame, the strongest bin in the band and its prominence =
    its power over the mean of the bins 3-8 away on both sides; frames with
    prominence > ``prominence`` whose peak stays within 2 bins of the
    previous frame's form a track; tracks of ``min_duration`` or more are
    wheezes, reported with their median f0. Tracks less than ``max_gap`` s
    apart with f0 within 15 % are one wheeze (a crackle or a noisy frame
    can interrupt a line).
    """
    x = np.asarray(y, dtype=np.float32)
    n_fft = 1 << max(4, round(float(np.log2(0.064 * rate))))
    hop = max(1, n_fft // 8)
    if x.size < n_fft:
        return []
    s = spectrogram(x, n_fft=n_fft, hop_length=hop, power=2.0).astype(np.float64)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lo = max(8, int(np.searchsorted(freqs, fmin)))
    hi = min(s.shape[0] - 8, int(np.searchsorted(freqs, fmax, side="right")))
    if hi <= lo:
        return []
    band = s[lo:hi]
    peak = band.argmax(axis=0) + lo
    cols = np.arange(s.shape[1])
    neigh = np.zeros(s.shape[1])
    for off in (3, 4, 5, 6, 7, 8):
        neigh += s[np.clip(peak - off, 0, s.shape[0] - 1), cols] + s[np.clip(peak + off, 0, s.shape[0] - 1), cols]
    neigh /= 12.0
    tonal = s[peak, cols] > prominence * (neigh + 1e-20)
    tracks: list[tuple[int, int, float]] = []  # (first frame, last frame, f0)
    start = -1
    for t in range(s.shape[1] + 1):
        ok = t < s.shape[1] and tonal[t] and (start < 0 or abs(int(peak[t]) - int(peak[t - 1])) <= 2)
        if ok and start < 0:
            start = t
        elif not ok and start >= 0:
            tracks.append((start, t - 1, float(np.median(freqs[peak[start:t]]))))
            start = t if (t < s.shape[1] and tonal[t]) else -1
    merged: list[list[float]] = []
    for a, b, f0 in tracks:
        if merged and (a - merged[-1][1]) * hop / rate <= max_gap and abs(f0 - merged[-1][2]) <= 0.15 * merged[-1][2]:
            prev = merged[-1]
            w_prev, w_new = prev[1] - prev[0] + 1, b - a + 1
            prev[2] = (prev[2] * w_prev + f0 * w_new) / (w_prev + w_new)
            prev[1] = b
        else:
            merged.append([a, b, f0])
    min_frames = int(np.ceil(min_duration * rate / hop))
    # frame t is centred at t * hop (center=True)
    return [(a * hop / rate, b * hop / rate, f0) for a, b, f0 in merged if b - a + 1 >= min_frames]


def estimate_breaths(y: npt.NDArray[np.floating[Any]], rate: int) -> float:
    """Breath cycles in the recording (at least 1): half the number of breath-sound humps.

    The breath-sound envelope (100-600 Hz RMS in 50 ms steps, smoothed over
    0.2 s) rises above 30 % of its 95th percentile once per inspiration and
    once per expiration (hysteresis: it must fall below 12 % in between).
    """
    x = _band(np.asarray(y, dtype=np.float32), rate, 100.0, 600.0)
    hop = max(1, rate // 20)  # 50 ms
    nb = x.size // hop
    if nb < 8:
        return 1.0
    env = np.sqrt((x[: nb * hop].reshape(nb, hop) ** 2).mean(axis=1))
    env = np.convolve(env, np.ones(4) / 4.0, mode="same")
    ref = float(np.percentile(env, 95))
    on, off = 0.3 * ref, 0.12 * ref
    humps, high = 0, False
    for v in env.tolist():
        if not high and v > on:
            humps, high = humps + 1, True
        elif high and v < off:
            high = False
    return max(1.0, humps / 2.0)


def score_events(
    detected: Sequence[tuple[float, float]], truth: Sequence[tuple[float, float]], *, tolerance: float = 0.0
) -> dict[str, float]:
    """Greedy one-to-one matching of (start, end) intervals: a pair matches when the
    intervals, widened by ``tolerance`` s, overlap. Returns tp, fp, fn, precision, recall, f1."""
    used = [False] * len(truth)
    tp = 0
    for d0, d1 in sorted(detected):
        for i, (t0, t1) in enumerate(truth):
            if not used[i] and d0 - tolerance <= t1 and t0 <= d1 + tolerance:
                used[i] = True
                tp += 1
                break
    fp, fn = len(detected) - tp, len(truth) - tp
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


_GROUPS = ("mfcc", "logmel", "spectral", "crackles", "wheezes")


class AudioFeatureExtractor(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Features of lung-sound recordings, one row per recording.

    Input ``X``: a sequence of recordings, each a ``(samples, rate)`` tuple
    (what :func:`medfuse.data.read_audio` returns) or a 1D float array at
    ``sr`` Hz; ``None`` (missing recording) gives a row of NaN. Recordings at
    another rate are resampled to ``sr`` (``scipy.signal.resample_poly``).

    Features (``groups`` selects), in this order:

    * ``mfcc``: ``medfuse.mfcc`` (``n_mfcc`` coefficients, ``n_mels`` bands,
      ``n_fft``/``hop_length``, fmax = sr / 2): mean and standard deviation
      over frames, ``mfcc_mean_<k>``, ``mfcc_std_<k>``.
    * ``logmel``: ``log10(1e-10 + medfuse.mel_spectrogram(...))`` pooled into
      ``logmel_groups`` groups of adjacent bands: ``logmel_mean_<g>``,
      ``logmel_std_<g>``.
    * ``spectral``: from the power spectrogram, per frame the centroid,
      bandwidth (power-weighted standard deviation of frequency), flatness
      (geometric / arithmetic mean of power) and roll-off (frequency below
      which 85 % of the power lies); mean and standard deviation of each:
      ``spectral_<name>_mean``, ``spectral_<name>_std``.
    * ``crackles``: :func:`detect_crackles`; ``fine_crackles_per_breath``,
      ``coarse_crackles_per_breath`` (breaths from :func:`estimate_breaths`),
      ``crackles_per_s``, ``crackle_duration_ms`` (mean; 0 without crackles).
    * ``wheezes``: :func:`detect_wheezes`; ``wheezes_per_breath``,
      ``wheeze_fraction`` (time covered / duration), ``wheeze_duration_s``
      (mean), ``wheeze_f0_hz`` (mean; 0 without wheezes).

    ``fit`` learns nothing; output float64 (n, n_features);
    ``set_output(transform="pandas")`` gives named columns.
    """

    def __init__(
        self,
        *,
        sr: int = 4000,
        n_fft: int = 256,
        hop_length: int = 64,
        n_mfcc: int = 13,
        n_mels: int = 40,
        logmel_groups: int = 8,
        groups: Sequence[str] = _GROUPS,
    ) -> None:
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mfcc = n_mfcc
        self.n_mels = n_mels
        self.logmel_groups = logmel_groups
        self.groups = groups

    def _check_params(self) -> None:
        for name in ("sr", "n_fft", "hop_length", "n_mfcc", "n_mels", "logmel_groups"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc must be <= n_mels; got {self.n_mfcc} > {self.n_mels}")
        if self.logmel_groups > self.n_mels:
            raise ValueError(f"logmel_groups must be <= n_mels; got {self.logmel_groups} > {self.n_mels}")
        if isinstance(self.groups, str) or not self.groups or any(g not in _GROUPS for g in self.groups):
            raise ValueError(f"groups must be a non-empty subset of {_GROUPS}; got {self.groups!r}")

    def _names(self) -> list[str]:
        names: list[str] = []
        for g in _GROUPS:
            if g not in self.groups:
                continue
            if g == "mfcc":
                names += [f"mfcc_mean_{k}" for k in range(self.n_mfcc)] + [f"mfcc_std_{k}" for k in range(self.n_mfcc)]
            elif g == "logmel":
                r = range(self.logmel_groups)
                names += [f"logmel_mean_{i}" for i in r] + [f"logmel_std_{i}" for i in r]
            elif g == "spectral":
                names += [f"spectral_{n}_{s}" for n in ("centroid", "bandwidth", "flatness", "rolloff") for s in ("mean", "std")]
            elif g == "crackles":
                names += ["fine_crackles_per_breath", "coarse_crackles_per_breath", "crackles_per_s", "crackle_duration_ms"]
            else:
                names += ["wheezes_per_breath", "wheeze_fraction", "wheeze_duration_s", "wheeze_f0_hz"]
        return names

    def fit(self, X: Any, y: Any = None) -> AudioFeatureExtractor:
        self._check_params()
        self._signals(X)
        self.n_features_out_ = len(self._names())
        return self

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        return np.asarray(self._names(), dtype=object)

    def _signals(self, X: Any) -> list[npt.NDArray[np.float32] | None]:
        if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind == "f":
            raise ValueError("X must be a sequence of recordings; wrap a single signal in a list: [signal]")
        try:
            items = list(X)
        except TypeError:
            raise TypeError(f"X must be a sequence of recordings; got {type(X).__name__}") from None
        if not items:
            raise ValueError("X is empty: found 0 recordings; at least 1 is required")
        out: list[npt.NDArray[np.float32] | None] = []
        for i, item in enumerate(items):
            if item is None or (isinstance(item, float) and np.isnan(item)):
                out.append(None)
                continue
            if isinstance(item, tuple) and len(item) == 2:
                sig, rate = item
            else:
                sig, rate = item, self.sr
            arr = np.asarray(sig)
            if arr.ndim != 1 or arr.dtype.kind not in "fiu" or arr.size == 0:
                raise ValueError(f"recording {i} must be a non-empty 1D numeric array; got shape {arr.shape} dtype {arr.dtype}")
            if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
                raise ValueError(f"recording {i}: sample rate must be a positive integer; got {rate!r}")
            x = arr.astype(np.float32)
            if not np.isfinite(x).all():
                raise ValueError(f"recording {i} contains NaN or infinity")
            if int(rate) != self.sr:
                from math import gcd

                from scipy.signal import resample_poly

                g = gcd(int(rate), int(self.sr))
                x = resample_poly(x.astype(np.float64), self.sr // g, int(rate) // g).astype(np.float32)
            out.append(x)
        return out

    def transform(self, X: Any) -> npt.NDArray[np.float64]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "n_features_out_")
        sigs = self._signals(X)
        rows = np.full((len(sigs), self.n_features_out_), np.nan)
        for i, x in enumerate(sigs):
            if x is not None:
                rows[i] = self._features(x)
        return rows

    def _features(self, x: npt.NDArray[np.float32]) -> list[float]:
        sr, nf, hop = int(self.sr), int(self.n_fft), int(self.hop_length)
        if x.size < nf // 2 + 1:  # reflect-free zero padding handles short signals; need a frame
            x = np.pad(x, (0, nf // 2 + 1 - x.size))
        feats: list[float] = []
        n_breaths: float | None = None
        for g in _GROUPS:
            if g not in self.groups:
                continue
            if g == "mfcc":
                c = mfcc(x, sr=sr, n_mfcc=self.n_mfcc, n_fft=nf, hop_length=hop, n_mels=self.n_mels)
                feats += list(c.mean(axis=1)) + list(c.std(axis=1))
            elif g == "logmel":
                m = np.log10(1e-10 + mel_spectrogram(x, sr=sr, n_fft=nf, hop_length=hop, n_mels=self.n_mels))
                parts = np.array_split(m, self.logmel_groups, axis=0)
                feats += [float(p.mean()) for p in parts] + [float(p.mean(axis=0).std()) for p in parts]
            elif g == "spectral":
                s = spectrogram(x, n_fft=nf, hop_length=hop, power=2.0).astype(np.float64) + 1e-20
                f = np.fft.rfftfreq(nf, 1.0 / sr)[:, None]
                tot = s.sum(axis=0)
                cen = (f * s).sum(axis=0) / tot
                bw = np.sqrt(((f - cen) ** 2 * s).sum(axis=0) / tot)
                flat = np.exp(np.log(s).mean(axis=0)) / s.mean(axis=0)
                roll = f[np.minimum((np.cumsum(s, axis=0) < 0.85 * tot).sum(axis=0), f.size - 1), 0]
                for v in (cen, bw, flat, roll):
                    feats += [float(v.mean()), float(v.std())]
            elif g == "crackles":
                dur = x.size / sr
                nb = n_breaths = estimate_breaths(x, sr) if n_breaths is None else n_breaths
                cr = detect_crackles(x, sr)
                fine = sum(k == "fine" for *_, k in cr)
                feats += [
                    fine / nb,
                    (len(cr) - fine) / nb,
                    len(cr) / dur,
                    1000 * float(np.mean([c[1] for c in cr])) if cr else 0.0,
                ]
            else:
                dur = x.size / sr
                nb = n_breaths = estimate_breaths(x, sr) if n_breaths is None else n_breaths
                wh = detect_wheezes(x, sr)
                lens = [b - a for a, b, _ in wh]
                feats += [
                    len(wh) / nb,
                    float(sum(lens)) / dur,
                    float(np.mean(lens)) if wh else 0.0,
                    float(np.mean([w[2] for w in wh])) if wh else 0.0,
                ]
        return feats
