"""Argument checks and fixed parameters shared by the audio kernels and their twins.

Both ``medfuse.stft`` … and ``medfuse.reference.stft`` … call these, so they
refuse the same inputs with the same messages, and they share the window,
the mel filter bank and the DCT-II matrix (the tests check those against
librosa/scipy independently).
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

AUDIO_DTYPES = (np.float32, np.float64)
PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
WINDOWS = ("hann", "hamming", "blackman", "boxcar", "rectangular", "ones")
MAX_NFFT = 1 << 22


def as_signal(y: object, name: str = "y") -> npt.NDArray[np.floating[Any]]:
    """Native-order C-contiguous float32/float64 array (..., n), finite."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of float32 or float64, got {type(y).__name__}")
    if y.dtype.newbyteorder("=") not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name} must be float32 or float64 audio samples, got dtype {y.dtype}")
    if y.ndim < 1:
        raise ValueError(f"{name} must have at least one dimension (..., samples); got a scalar")
    if y.size == 0:
        raise ValueError(f"{name} is empty (shape {y.shape}); a signal needs at least one sample")
    arr = np.ascontiguousarray(y, dtype=y.dtype.newbyteorder("="))
    # min and max propagate NaN and show +-inf: two fast reductions, no temporary
    if not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
        raise ValueError(f"{name} contains NaN or infinity; spectra are undefined there")
    return arr


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < lo or v > hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {v}")
    return v


def _float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def window_values(window: object, win_length: int, n_fft: int) -> npt.NDArray[np.float64]:
    """The periodic window of ``win_length`` samples centred in ``n_fft`` (librosa)."""
    if isinstance(window, str):
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS} or an array, got {window!r}")
        return _named_window(window, win_length, n_fft)
    return _centred(_array_window(window, win_length), win_length, n_fft)


@functools.lru_cache(maxsize=64)
def _named_window(window: str, win_length: int, n_fft: int) -> npt.NDArray[np.float64]:
    k = np.arange(win_length, dtype=np.float64)
    a = 2.0 * np.pi * k / win_length  # periodic (scipy fftbins=True, as librosa)
    if win_length == 1 or window in ("boxcar", "rectangular", "ones"):
        w = np.ones(win_length)  # scipy: a 1-point window is [1.0]
    elif window == "hann":
        w = 0.5 - 0.5 * np.cos(a)
    elif window == "hamming":
        w = 0.54 - 0.46 * np.cos(a)
    else:  # blackman
        w = 0.42 - 0.5 * np.cos(a) + 0.08 * np.cos(2.0 * a)
    out = _centred(w, win_length, n_fft)
    out.flags.writeable = False  # cached: shared by every call
    return out


def _array_window(window: object, win_length: int) -> npt.NDArray[np.float64]:
    if not isinstance(window, np.ndarray):
        raise TypeError(f"window must be a name or a 1D array, got {type(window).__name__}")
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != win_length:
        raise ValueError(f"window array must have win_length={win_length} values, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("window contains NaN or infinity")
    return w


def _centred(w: npt.NDArray[np.float64], win_length: int, n_fft: int) -> npt.NDArray[np.float64]:
    lpad = (n_fft - win_length) // 2
    out = np.zeros(n_fft, dtype=np.float64)
    out[lpad : lpad + win_length] = w
    return out


@dataclass(frozen=True)
class StftPlan:
    n_fft: int
    hop: int
    win_length: int
    window: npt.NDArray[np.float64]
    center: bool
    pad_mode: str


def stft_plan(
    n_fft: object, hop_length: object, win_length: object, window: object, center: object, pad_mode: object
) -> StftPlan:
    nf = _int(n_fft, "n_fft", 1, MAX_NFFT)
    wl = nf if win_length is None else _int(win_length, "win_length", 1, nf)
    hop = max(wl // 4, 1) if hop_length is None else _int(hop_length, "hop_length", 1, 1 << 40)
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError(f"center must be True or False, got {center!r}")
    if not isinstance(pad_mode, str) or pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    return StftPlan(nf, hop, wl, window_values(window, wl, nf), bool(center), pad_mode)


def padded(y: npt.NDArray[np.floating[Any]], plan: StftPlan) -> npt.NDArray[np.floating[Any]]:
    """The signal as (batch, samples), padded by n_fft // 2 per side if centred (librosa)."""
    flat = y.reshape(-1, y.shape[-1])
    if plan.center:
        p = plan.n_fft // 2
        if plan.pad_mode == "constant":  # numpy.pad's zeros, without its Python overhead
            out = np.zeros((flat.shape[0], flat.shape[1] + 2 * p), dtype=flat.dtype)
            out[:, p : p + flat.shape[1]] = flat
            flat = out
        else:
            flat = np.pad(flat, [(0, 0), (p, p)], mode=plan.pad_mode)  # type: ignore[call-overload]
    if flat.shape[-1] < plan.n_fft:
        raise ValueError(
            f"n_fft={plan.n_fft} is too large for a signal of {y.shape[-1]} samples"
            + ("" if plan.center else " (center=False)")
        )
    return np.ascontiguousarray(flat)


def check_range(y: npt.NDArray[np.floating[Any]], plan: StftPlan, power: float = 2.0) -> None:
    """Refuse samples whose spectra could overflow the input's float type.

    |X| <= n_fft max|y| max|w|; a power spectrum summed over every bin (the
    widest mel filter) stays below a tenth of the type's maximum.
    """
    top = max(float(y.max()), -float(y.min())) * float(np.abs(plan.window).max()) * plan.n_fft
    if top == 0.0:
        return
    limit = math.log10(float(np.finfo(y.dtype).max)) - 1.0
    if power * math.log10(top) + math.log10(1 + plan.n_fft // 2) > limit:
        raise ValueError(
            f"y is too large for {y.dtype.name} spectra (max |y| = {float(np.abs(y).max()):.3g}): they could overflow; "
            + ("pass float64 samples or scale y down" if y.dtype.itemsize == 4 else "scale y down")
        )


def finite_result(out: npt.NDArray[Any], y: npt.NDArray[np.floating[Any]]) -> npt.NDArray[Any]:
    """Refuse a spectrum that overflowed the output type (never return inf from finite samples)."""
    if not np.isfinite(out).all():
        raise ValueError(
            f"the spectrum of y overflows {np.dtype(out.dtype).name} (max |y| = {float(np.abs(y).max()):.3g}); "
            + ("pass float64 samples or scale y down" if y.dtype.itemsize == 4 else "scale y down")
        )
    return out


def check_power(power: object) -> float:
    p = _float(power, "power")
    if p <= 0:
        raise ValueError(f"power must be > 0, got {p}")
    return p


# ---- mel filter bank (librosa.filters.mel semantics) -------------------------


def hz_to_mel(f: npt.ArrayLike, htk: bool) -> npt.NDArray[np.float64]:
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return np.asarray(2595.0 * np.log10(1.0 + f / 700.0))
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = f / f_sp
    above = f >= min_log_hz
    return np.where(above, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mel)


def mel_to_hz(m: npt.ArrayLike, htk: bool) -> npt.NDArray[np.float64]:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return np.asarray(700.0 * (10.0 ** (m / 2595.0) - 1.0))
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@dataclass(frozen=True)
class MelPlan:
    filters: npt.NDArray[np.float64]  # (n_mels, n_freq)
    lo: npt.NDArray[np.int64]  # first non-zero bin per filter
    hi: npt.NDArray[np.int64]  # one past the last non-zero bin


def mel_plan(
    sr: object, n_fft: int, n_mels: object, fmin: object, fmax: object, htk: object, norm: object
) -> MelPlan:
    rate = _float(sr, "sr")
    if rate <= 0:
        raise ValueError(f"sr must be > 0, got {rate}")
    nm = _int(n_mels, "n_mels", 1, 4096)
    lo_f = _float(fmin, "fmin")
    hi_f = rate / 2.0 if fmax is None else _float(fmax, "fmax")
    if lo_f < 0 or hi_f <= lo_f or hi_f > rate / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sr / 2; got fmin={lo_f}, fmax={hi_f}, sr={rate}")
    if not isinstance(htk, (bool, np.bool_)):
        raise TypeError(f"htk must be True or False, got {htk!r}")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    return _mel_bank(rate, n_fft, nm, lo_f, hi_f, bool(htk), norm)


@functools.lru_cache(maxsize=32)
def _mel_bank(rate: float, n_fft: int, nm: int, lo_f: float, hi_f: float, htk: bool, norm: str | None) -> MelPlan:
    n_freq = 1 + n_fft // 2
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / rate)  # bin centres (k * sr / n_fft)
    mels = np.linspace(hz_to_mel(lo_f, bool(htk)), hz_to_mel(hi_f, bool(htk)), nm + 2)
    mel_f = mel_to_hz(mels, bool(htk))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((nm, n_freq))
    for i in range(nm):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : nm + 2] - mel_f[:nm]))[:, None]
    # librosa builds the bank in float32 (its default dtype): round the same way.
    weights = weights.astype(np.float32).astype(np.float64)
    nz = weights > 0
    any_nz = nz.any(axis=1)
    lo = np.where(any_nz, nz.argmax(axis=1), 0).astype(np.int64)
    hi = np.where(any_nz, n_freq - nz[:, ::-1].argmax(axis=1), 0).astype(np.int64)
    for a in (weights, lo, hi):
        a.flags.writeable = False  # cached: shared by every call
    return MelPlan(weights, lo, hi)


# ---- dB and DCT (librosa.power_to_db, scipy.fft.dct type 2 ortho) -------------


@dataclass(frozen=True)
class DbPlan:
    amin: float
    ref_db: float  # 10 log10(max(amin, ref))
    top_db: float  # < 0: no clipping


def db_plan(ref: object, amin: object, top_db: object) -> DbPlan:
    a = _float(amin, "amin")
    if a <= 0:
        raise ValueError(f"amin must be > 0, got {a}")
    r = _float(ref, "ref")
    if r <= 0:
        raise ValueError(f"ref must be > 0, got {r}")
    if top_db is None:
        t = -1.0
    else:
        t = _float(top_db, "top_db")
        if t < 0:
            raise ValueError(f"top_db must be >= 0 or None, got {t}")
    return DbPlan(a, 10.0 * math.log10(max(a, r)), t)


def dct_matrix(n_mfcc: object, n_mels: int, lifter: object, norm: object = "ortho") -> npt.NDArray[np.float64]:
    """Rows of the DCT-II (scipy ``dct(type=2, norm=norm)``), liftered as librosa."""
    if norm not in ("ortho", None):
        raise ValueError(f"norm must be 'ortho' or None (the DCT-II normalisation), got {norm!r}")
    k = _int(n_mfcc, "n_mfcc", 1, n_mels)
    lift = _float(lifter, "lifter")
    if lift < 0:
        raise ValueError(f"lifter must be >= 0, got {lift}")
    return _dct_rows(k, n_mels, lift, norm)


@functools.lru_cache(maxsize=32)
def _dct_rows(k: int, n_mels: int, lift: float, norm: str | None) -> npt.NDArray[np.float64]:
    n = np.arange(n_mels, dtype=np.float64)
    rows = np.arange(k, dtype=np.float64)[:, None]
    d = np.cos(np.pi * rows * (2.0 * n + 1.0) / (2.0 * n_mels))
    if norm == "ortho":
        d *= math.sqrt(2.0 / n_mels)
        d[0] *= 1.0 / math.sqrt(2.0)
    else:
        d *= 2.0
    if lift > 0:
        d *= (1.0 + (lift / 2.0) * np.sin(np.pi * np.arange(1, k + 1) / lift))[:, None]
    d.flags.writeable = False  # cached: shared by every call
    return d
