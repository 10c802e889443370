"""NumPy twins of ``medfuse.stft``, ``spectrogram``, ``mel_spectrogram`` and ``mfcc``.

Same signatures and refusals (shared plans in ``kernels._audio_plan``);
framing with stride tricks and ``numpy.fft.rfft`` in float64, results cast to
the input's precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..kernels import _audio_plan as ap

__all__ = ["mel_spectrogram", "mfcc", "spectrogram", "stft"]


def _stft(y: npt.NDArray[np.floating[Any]], plan: ap.StftPlan) -> npt.NDArray[np.complex128]:
    x = ap.padded(y, plan).astype(np.float64)
    n_frames = 1 + (x.shape[-1] - plan.n_fft) // plan.hop
    idx = np.arange(n_frames)[:, None] * plan.hop + np.arange(plan.n_fft)[None, :]
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused by finite_result
        frames = x[:, idx] * plan.window  # (batch, frames, n_fft)
        spec = np.fft.rfft(frames, axis=-1)  # (batch, frames, freq)
    return np.swapaxes(spec, -1, -2)


def stft(
    y: npt.NDArray[np.floating[Any]],
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str | npt.NDArray[np.floating[Any]] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> npt.NDArray[np.complexfloating[Any, Any]]:
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    ap.check_range(arr, plan, 1.0)
    s = _stft(arr, plan)
    ctype = np.complex64 if arr.dtype == np.float32 else np.complex128
    with np.errstate(over="ignore", invalid="ignore"):
        out = s.astype(ctype)
    return ap.finite_result(out.reshape(arr.shape[:-1] + s.shape[1:]), arr)


def _power(s: npt.NDArray[np.complex128], power: float) -> npt.NDArray[np.float64]:
    with np.errstate(over="ignore", invalid="ignore"):
        p = s.real**2 + s.imag**2
        return p if power == 2.0 else np.sqrt(p) ** power


def spectrogram(
    y: npt.NDArray[np.floating[Any]],
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str | npt.NDArray[np.floating[Any]] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 1.0,
) -> npt.NDArray[np.floating[Any]]:
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    ap.check_range(arr, plan, ap.check_power(power))
    p = _power(_stft(arr, plan), ap.check_power(power))
    with np.errstate(over="ignore", invalid="ignore"):
        out = p.astype(arr.dtype)
    return ap.finite_result(out.reshape(arr.shape[:-1] + p.shape[1:]), arr)


def _mel(arr: npt.NDArray[np.floating[Any]], plan: ap.StftPlan, power: float, mel: ap.MelPlan) -> npt.NDArray[np.float64]:
    p = _power(_stft(arr, plan), power)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.einsum("mf,bft->bmt", mel.filters, p)


def mel_spectrogram(
    y: npt.NDArray[np.floating[Any]],
    *,
    sr: float = 22050,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str | npt.NDArray[np.floating[Any]] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> npt.NDArray[np.floating[Any]]:
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    p = ap.check_power(power)
    ap.check_range(arr, plan, p)
    mel = ap.mel_plan(sr, plan.n_fft, n_mels, fmin, fmax, htk, norm)
    m = _mel(arr, plan, p, mel)
    with np.errstate(over="ignore", invalid="ignore"):
        out = m.astype(arr.dtype)
    return ap.finite_result(out.reshape(arr.shape[:-1] + m.shape[1:]), arr)


def mfcc(
    y: npt.NDArray[np.floating[Any]],
    *,
    sr: float = 22050,
    n_mfcc: int = 20,
    lifter: float = 0.0,
    ref: float = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str | npt.NDArray[np.floating[Any]] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "ortho",
) -> npt.NDArray[np.floating[Any]]:
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    p = ap.check_power(power)
    ap.check_range(arr, plan, p)
    mel = ap.mel_plan(sr, plan.n_fft, n_mels, fmin, fmax, htk, "slaney")
    dct = ap.dct_matrix(n_mfcc, mel.filters.shape[0], lifter, norm)
    db = ap.db_plan(ref, amin, top_db)
    m = _mel(arr, plan, p, mel)
    with np.errstate(over="ignore", invalid="ignore"):
        d = 10.0 * np.log10(np.maximum(db.amin, m)) - db.ref_db
        if db.top_db >= 0:
            d = np.maximum(d, d.max() - db.top_db)
        c = np.einsum("km,bmt->bkt", dct, d)
    with np.errstate(over="ignore", invalid="ignore"):
        out = c.astype(arr.dtype)
    return ap.finite_result(out.reshape(arr.shape[:-1] + c.shape[1:]), arr)
