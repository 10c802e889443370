"""Short-time spectra of audio signals: STFT, spectrogram, mel spectrogram, MFCC (C++ kernels).

Semantics are librosa's (0.10/0.11), parameter for parameter; the NumPy twins
in :mod:`medfuse.reference.audio` compute the same with ``numpy.fft``.

* Signals are float32 or float64 arrays ``(..., n)``; leading axes are a
  batch. Any strides and byte order. NaN/inf samples are refused
  (ValueError). The output dtype follows the input (complex64/complex128
  for :func:`stft`).
* Framing (librosa.stft): with ``center=True`` the signal is padded by
  ``n_fft // 2`` samples on each side with ``numpy.pad(mode=pad_mode)``
  (default ``"constant"``, zeros, as librosa >= 0.10); frame ``t`` starts at
  ``t * hop_length``; ``1 + (len - n_fft) // hop_length`` frames. A signal
  (padded if centred) shorter than ``n_fft`` is refused.
* Window: ``"hann"`` (default), ``"hamming"``, ``"blackman"``,
  ``"boxcar"``/``"rectangular"``/``"ones"`` — periodic (DFT-even, scipy
  ``get_window(..., fftbins=True)``) — or an array of ``win_length`` values;
  ``win_length`` (default ``n_fft``) samples centred in ``n_fft`` with zeros.
  ``hop_length`` defaults to ``win_length // 4``.
* FFT: medfuse's own (csrc/audio): a real transform of even length n is a
  complex transform of n/2 packed samples; powers of two use Stockham
  autosort passes of radix 4 (plus one of radix 2 for odd log2) with
  per-pass twiddle tables, any other length Bluestein's chirp-z through a
  power-of-two transform. float32 is computed in float32 for power-of-two
  ``n_fft`` and in float64 otherwise. Written here rather than vendored
  (pocketfft is not on PyPI as a header) because it runs 16 frames at once,
  one per vector lane, which gives the AVX2/AVX-512 paths identical bits and
  needs no shuffles inside the transform (frames are transposed into lane
  order on load). Plans are cached per size.
* dB (mfcc): float32 uses the core's own vectorised natural logarithm
  (within a few ulp of ``log10``; identical on every path), float64 libm's.
* Threads: frames are split into blocks of 16; results are identical for
  every thread count and SIMD path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _audio_plan as ap
from ._ext import core as _core
from ._threads import get_num_threads

__all__ = ["mel_spectrogram", "mfcc", "spectrogram", "stft"]

_COMPLEX, _POWER, _MEL, _MFCC = 0, 1, 2, 3




def _run(
    y: npt.NDArray[np.floating[Any]],
    plan: ap.StftPlan,
    mode: int,
    power: float = 2.0,
    mel: ap.MelPlan | None = None,
    dct: npt.NDArray[np.float64] | None = None,
    db: ap.DbPlan | None = None,
) -> npt.NDArray[Any]:
    x = ap.padded(y, plan)
    fn = getattr(_core(), "spectral_f32" if x.dtype == np.float32 else "spectral_f64")
    out = fn(
        x,
        plan.n_fft,
        plan.hop,
        plan.window,
        mode,
        power,
        None if mel is None else mel.filters,
        None if mel is None else mel.lo,
        None if mel is None else mel.hi,
        dct,
        1e-10 if db is None else db.amin,
        0.0 if db is None else db.ref_db,
        -1.0 if db is None else db.top_db,
        get_num_threads(),
    )
    # The core refuses a non-finite output itself (finite_result's message).
    return np.asarray(out).reshape(y.shape[:-1] + out.shape[1:])


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
    """Short-time Fourier transform, as ``librosa.stft``.

    Returns ``(..., 1 + n_fft // 2, n_frames)`` complex64 (float32 input) or
    complex128: ``X[f, t] = sum_n w[n] y_pad[t * hop + n] exp(-2 pi i f n / n_fft)``,
    unnormalised. ``scipy.signal.stft(y, nperseg=n, noverlap=n - hop)``
    equals ``stft(y, n_fft=n, hop_length=hop) / w.sum()`` on the frames both
    produce (scipy zero-pads like ``pad_mode="constant"``).
    """
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    ap.check_range(arr, plan, 1.0)
    return _run(arr, plan, _COMPLEX)


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
    """``abs(stft(y, ...)) ** power``: magnitude (power=1, default) or power (2) spectrogram.

    Same parameters as :func:`stft`; ``(..., 1 + n_fft // 2, n_frames)`` of
    the input's float dtype. Equals ``numpy.abs(librosa.stft(...)) ** power``.
    """
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    ap.check_range(arr, plan, ap.check_power(power))
    return _run(arr, plan, _POWER, ap.check_power(power))


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
    """Mel spectrogram, as ``librosa.feature.melspectrogram``.

    ``M = filters @ abs(stft(y)) ** power`` with ``(..., n_mels, n_frames)``
    out; ``hop_length`` defaults to 512 here, as in librosa (not to
    ``win_length // 4`` as in :func:`stft`). The filters are librosa.filters.mel's: triangles between ``n_mels + 2``
    points equally spaced on the mel scale from ``fmin`` to ``fmax``
    (default ``sr / 2``; must not exceed it), Slaney's mel scale (linear below
    1 kHz, logarithmic above) or HTK's (``htk=True``: ``2595 log10(1 + f/700)``);
    ``norm="slaney"`` divides each triangle by its width in Hz (constant
    energy per channel), ``None`` leaves peaks at 1. The bank is rounded to
    float32 like librosa's.
    """
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    p = ap.check_power(power)
    ap.check_range(arr, plan, p)
    mel = ap.mel_plan(sr, plan.n_fft, n_mels, fmin, fmax, htk, norm)
    return _run(arr, plan, _MEL, p, mel)


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
    """Mel-frequency cepstral coefficients, as ``librosa.feature.mfcc``.

    ``(..., n_mfcc, n_frames)``: the :func:`mel_spectrogram` (same
    parameters) in dB as ``librosa.power_to_db(M, ref=ref, amin=amin,
    top_db=top_db)`` — ``10 log10(max(amin, M)) - 10 log10(max(amin, ref))``,
    then clipped below at its maximum over the whole input (all batch
    entries, as librosa on a batched array) minus ``top_db`` (``None``: no
    clipping) — then the DCT-II along the mel axis (scipy
    ``dct(type=2, norm=norm)``, ``"ortho"`` or ``None``), first ``n_mfcc`` rows, liftered by
    ``1 + (lifter / 2) sin(pi k / lifter)`` (k = 1..n_mfcc) when ``lifter > 0``.
    ``ref`` is a number (librosa also takes a function such as ``np.max``;
    pass its value instead). As in librosa, ``norm`` is the DCT's; the mel
    filters are always Slaney-normalised here.
    """
    arr = ap.as_signal(y)
    plan = ap.stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    p = ap.check_power(power)
    ap.check_range(arr, plan, p)
    mel = ap.mel_plan(sr, plan.n_fft, n_mels, fmin, fmax, htk, "slaney")
    dct = ap.dct_matrix(n_mfcc, mel.filters.shape[0], lifter, norm)
    db = ap.db_plan(ref, amin, top_db)
    return _run(arr, plan, _MFCC, p, mel, dct, db)
