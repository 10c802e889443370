"""Synthetic lung sounds (auscultation) with event truth.

One recording per patient, 10-30 s at 4 kHz, built from:

- **breath cycles**: 12-20 breaths a minute; inspiration (about 40 % of the
  cycle) and expiration envelopes (raised-cosine ramps) over noise shaped
  like vesicular sound (band 80-600 Hz, falling above 250 Hz);
- **fine crackles** ("velcro", fibrosis): damped oscillations of about
  650 Hz lasting about 5 ms, mid-to-late inspiration;
- **coarse crackles** (secretions, infection): about 250 Hz, about 12 ms,
  early inspiration and expiration;
- **wheezes** (airway narrowing, e.g. a tumour against a bronchus):
  continuous tones with f0 in 150-800 Hz and harmonics at 2 f0 and 3 f0
  (f0 + harmonics stay below 2 kHz), 150-600 ms (always > 80 ms), mostly
  expiratory, with a slight glide;
- **diminished sounds** (effusion): breath sounds attenuated;
- **heartbeat** (S1/S2 thumps of 30-60 Hz at 55-100 beats a minute) and
  **device noise** (white noise and a 50 Hz hum).

:func:`findings_from_factors` maps a case's latent factors to the sound
findings: the keys ``fibrosis``, ``infection`` (or ``tuberculosis``),
``airway_narrowing`` and ``effusion`` (0-1) when the disease model provides
them (``synthetic_cohort(task="disease")`` passes
:func:`medfuse.data.synthetic.disease_sound_factors`); otherwise the nodule model's ``malignancy_logit`` and ``diameter_mm``
drive airway narrowing (wheezes) through a noisy link (a tumour narrows a
bronchus only sometimes), and unrelated background infection or fibrosis is
drawn from the seed. :func:`auscultation` returns the signal and
the truth (every event's type, start and end in seconds, and the breaths).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EVENT_TYPES", "AudioFindings", "Event", "Recording", "auscultation", "findings_from_factors"]

EVENT_TYPES = ("fine_crackle", "coarse_crackle", "wheeze")
SAMPLE_RATE = 4000


@dataclass(frozen=True)
class AudioFindings:
    """What the recording contains (rates per breath, 0-1 severities)."""

    fine_crackles: float = 0.0  # mean fine crackles per breath
    coarse_crackles: float = 0.0  # mean coarse crackles per breath
    wheeze: float = 0.0  # probability that a breath carries a wheeze
    diminished: float = 0.0  # attenuation of breath sounds (0 none, 1 silent)


@dataclass(frozen=True)
class Event:
    kind: str  # one of EVENT_TYPES
    start: float  # seconds
    end: float  # seconds
    freq: float = 0.0  # Hz: wheeze f0 or crackle oscillation frequency


@dataclass
class Recording:
    samples: npt.NDArray[np.float32]
    rate: int
    events: list[Event] = field(default_factory=list)
    breaths: list[tuple[float, float, float]] = field(default_factory=list)  # (start, end of inspiration, end)
    findings: AudioFindings = field(default_factory=AudioFindings)

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.events)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def findings_from_factors(factors: Mapping[str, Any], seed: int) -> AudioFindings:
    """Sound findings of a case (see the module docstring for the mapping)."""
    rng = np.random.default_rng([int(seed), 17])
    fibrosis = factors.get("fibrosis")
    infection = factors.get("infection", factors.get("tuberculosis"))
    airway = factors.get("airway_narrowing")
    effusion = float(factors.get("effusion", 0.0) or 0.0)
    if airway is None:
        # a tumour narrows a bronchus only sometimes: a noisy, partial link to malignancy
        logit = float(factors.get("malignancy_logit", -3.0))
        size = float(factors.get("diameter_mm", 0.0))
        airway = _sigmoid(0.6 * logit + rng.normal(0.0, 1.5) - 1.0) * min(1.0, 0.3 + size / 30.0)
    if fibrosis is None:
        fibrosis = float(rng.random() < 0.15) * rng.uniform(0.5, 1.0)
    if infection is None:
        infection = float(rng.random() < 0.2) * rng.uniform(0.5, 1.0)
    return AudioFindings(
        fine_crackles=8.0 * float(fibrosis),
        coarse_crackles=4.0 * float(infection),
        wheeze=min(0.9, float(airway)),
        diminished=min(0.8, 0.8 * effusion),
    )


@functools.lru_cache(maxsize=8)
def _vesicular_shape(m: int, rate: int) -> npt.NDArray[np.float32]:
    f = np.fft.rfftfreq(m, 1.0 / rate)
    shape = (f / 80.0) ** 2 / (1.0 + (f / 80.0) ** 2) / (1.0 + (f / 250.0) ** 4)
    return shape.astype(np.float32)


def _shaped_noise(n: int, rate: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Unit-RMS noise with a vesicular spectrum (80-600 Hz band, falling above 250 Hz)."""
    m = 1 << max(1, (n - 1).bit_length())  # a power of two: fast FFT whatever n is
    spec = np.fft.rfft(rng.standard_normal(m, dtype=np.float32))
    x = np.fft.irfft(spec * _vesicular_shape(m, rate), m)[:n].astype(np.float32)
    return x / np.float32(np.sqrt(np.mean(x * x)) + 1e-12)


def _crackle(kind: str, rate: int, rng: np.random.Generator) -> tuple[npt.NDArray[np.float64], float]:
    if kind == "fine_crackle":
        f, tau, dur = rng.uniform(550, 800), rng.uniform(0.0010, 0.0016), 0.006
    else:
        f, tau, dur = rng.uniform(200, 320), rng.uniform(0.0030, 0.0045), 0.014
    t = np.arange(int(dur * rate)) / rate
    wave = np.exp(-t / tau) * np.sin(2 * np.pi * f * t + rng.uniform(-0.3, 0.3))
    return wave / np.abs(wave).max(), f


def auscultation(
    factors: Mapping[str, Any] | AudioFindings, seed: int, *, rate: int = SAMPLE_RATE, duration: float | None = None
) -> Recording:
    """One synthetic auscultation recording and its event truth.

    ``factors``: the case's latent factors (a mapping, e.g. ``case.__dict__``)
    or explicit :class:`AudioFindings`. ``duration`` in seconds (default:
    10-30 s drawn from the seed). Deterministic in ``seed``.
    """
    findings = factors if isinstance(factors, AudioFindings) else findings_from_factors(factors, seed)
    rng = np.random.default_rng([int(seed), 29])
    dur = float(duration) if duration is not None else float(rng.uniform(10.0, 30.0))
    n = round(dur * rate)
    env = np.zeros(n, dtype=np.float32)
    breaths: list[tuple[float, float, float]] = []
    period = 60.0 / rng.uniform(12.0, 20.0)
    start = rng.uniform(0.0, 0.5)
    while start + 1.5 < dur:
        cyc = period * rng.uniform(0.9, 1.1)
        insp = cyc * rng.uniform(0.35, 0.45)
        end = min(start + cyc, dur)
        insp = min(insp, 0.6 * (end - start))
        i0, i1, i2 = (min(n, int(v * rate)) for v in (start, start + insp, end))
        # raised-cosine inspiration (peak 1) then expiration (peak 0.6)
        if i1 > i0:
            env[i0:i1] = np.sin(np.pi * np.arange(i1 - i0) / (i1 - i0)) ** 2
        if i2 > i1:
            env[i1:i2] = 0.6 * np.sin(np.pi * np.arange(i2 - i1) / (i2 - i1)) ** 2
        breaths.append((start, start + insp, end))
        start = end + rng.uniform(0.1, 0.6)
    breath_amp = np.float32(0.05 * (1.0 - findings.diminished))
    y = breath_amp * env * _shaped_noise(n, rate, rng)
    events: list[Event] = []
    # crackles: fine mid-late inspiration, coarse early inspiration and expiration
    for b0, b1, b2 in breaths:
        for kind, lam in (("fine_crackle", findings.fine_crackles), ("coarse_crackle", findings.coarse_crackles)):
            k = int(rng.poisson(lam)) if lam > 0 else 0
            if kind == "fine_crackle":
                times = rng.uniform(b0 + 0.4 * (b1 - b0), b1, k)
            else:
                early = rng.random(k) < 0.7
                times = np.where(early, rng.uniform(b0, b0 + 0.4 * (b1 - b0), k), rng.uniform(b1, b1 + 0.3 * (b2 - b1), k))
            placed: list[float] = [e.start for e in events if e.kind.endswith("crackle")]
            for tc in np.sort(times):
                if any(abs(tc - p) < 0.04 for p in placed):  # keep crackles resolvable (40 ms apart)
                    continue
                wave, f = _crackle(kind, rate, rng)
                i = int(tc * rate)
                j = min(n, i + wave.size)
                if j <= i:
                    continue
                y[i:j] += rng.uniform(0.15, 0.3) * wave[: j - i]
                events.append(Event(kind, i / rate, j / rate, round(float(f), 1)))
                placed.append(i / rate)
        # wheeze: expiratory (80 %) or inspiratory
        if rng.random() < findings.wheeze:
            expi = rng.random() < 0.8
            lo, hi = (b1, b2) if expi else (b0, b1)
            length = min(rng.uniform(0.15, 0.6), 0.8 * (hi - lo))
            if length < 0.1:
                continue
            w0 = rng.uniform(lo + 0.05 * (hi - lo), hi - length)
            f0 = rng.uniform(150.0, 800.0) if rng.random() < 0.8 else rng.uniform(150.0, 600.0)
            i, j = int(w0 * rate), int((w0 + length) * rate)
            tt = np.arange(j - i) / rate
            glide = f0 * (1.0 + rng.uniform(-0.08, 0.08) * tt / length)
            phase = 2 * np.pi * np.cumsum(glide) / rate
            edge = np.minimum(1.0, np.minimum(tt, tt[::-1]) / 0.03)
            tone = np.sin(phase) + 0.5 * np.sin(2 * phase) * (3 * f0 < rate / 2) + 0.25 * np.sin(3 * phase) * (3 * f0 < rate / 2)
            y[i:j] += rng.uniform(0.03, 0.06) * edge * tone
            events.append(Event("wheeze", i / rate, j / rate, round(float(f0), 1)))
    # heartbeat: S1, S2 (30-60 Hz thumps)
    hr = 60.0 / rng.uniform(55.0, 100.0)
    tb = rng.uniform(0.0, hr)
    while tb < dur:
        for off, amp in ((0.0, 0.05), (0.3 * hr, 0.035)):
            i = int((tb + off) * rate)
            m = min(n - i, int(0.06 * rate))
            if m > 0:
                tt = np.arange(m) / rate
                y[i : i + m] += amp * np.sin(np.pi * tt / 0.06) * np.sin(2 * np.pi * rng.uniform(30, 60) * tt)
        tb += hr * rng.uniform(0.97, 1.03)
    # device noise
    y += np.float32(0.002) * rng.standard_normal(n, dtype=np.float32)
    hum = np.sin(2 * np.pi * 50.0 * np.arange(rate // 50) / rate + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    y += np.float32(0.002) * np.resize(hum, n)  # 50 Hz: one period tiled
    events.sort(key=lambda e: e.start)
    return Recording(np.clip(y, -1.0, 1.0, out=y), rate, events, breaths, findings)
