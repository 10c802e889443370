"""medfuse.data.read_audio: WAV/FLAC of every sample format, mix-down, resampling, refusals."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from medfuse.data import MedfuseFileNotFoundError, MedfuseIOError, read_audio

sf = pytest.importorskip("soundfile")


def _signal(frames: int = 4000, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 4000.0
    x = 0.4 * np.sin(2 * np.pi * 200 * t)[:, None] + 0.05 * rng.standard_normal((frames, channels))
    return x.clip(-0.99, 0.99)


@pytest.mark.parametrize(
    "fmt,subtype,tol",
    [("WAV", "PCM_U8", 1 / 128), ("WAV", "PCM_16", 2**-15), ("WAV", "PCM_24", 2**-23), ("WAV", "PCM_32", 1e-7),
     ("WAV", "FLOAT", 1e-7), ("WAV", "DOUBLE", 1e-7), ("FLAC", "PCM_S8", 1 / 128), ("FLAC", "PCM_16", 2**-15),
     ("FLAC", "PCM_24", 2**-23)],
)
def test_every_sample_format(tmp_path, fmt, subtype, tol):
    x = _signal()
    p = tmp_path / f"a.{fmt.lower()}"
    sf.write(p, x, 4000, subtype=subtype, format=fmt)
    y, rate = read_audio(p)
    assert rate == 4000 and y.dtype == np.float32 and y.shape == (4000,) and y.flags.c_contiguous
    assert np.abs(y - x[:, 0]).max() <= tol


def test_stereo_is_mixed_to_mono(tmp_path):
    x = _signal(channels=2)
    p = tmp_path / "s.wav"
    sf.write(p, x, 4000, subtype="FLOAT")
    y, _ = read_audio(p)
    np.testing.assert_allclose(y, x.astype(np.float32).mean(axis=1), atol=1e-7)


def test_resampling_matches_scipy_and_keeps_a_tone(tmp_path):
    from scipy.signal import resample_poly

    t = np.arange(44100) / 44100.0
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    p = tmp_path / "r.wav"
    sf.write(p, x, 44100, subtype="FLOAT")
    y, rate = read_audio(p, sr=4000)
    assert rate == 4000 and y.shape == (4000,)
    np.testing.assert_allclose(y, resample_poly(x.astype(np.float32).astype(np.float64), 40, 441), atol=1e-6)
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert abs(int(spec.argmax()) - 440) <= 1  # 1 Hz bins: the tone stays at 440 Hz
    same, rate2 = read_audio(p, sr=44100)
    assert rate2 == 44100 and np.array_equal(same, x.astype(np.float32))


def test_parameter_errors(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, _signal(), 4000)
    with pytest.raises(ValueError, match="sr must be between"):
        read_audio(p, sr=0)
    with pytest.raises(TypeError, match="sr must be an integer"):
        read_audio(p, sr=4000.0)  # type: ignore[arg-type]
    with pytest.raises(MedfuseFileNotFoundError):
        read_audio(tmp_path / "missing.wav")


def _wav_header(*, rate: int = 4000, data_len: int = 0, channels: int = 1, bits: int = 16, fmt: int = 1) -> bytes:
    block = channels * bits // 8
    f = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    return b"RIFF" + struct.pack("<I", min(36 + data_len, 0xFFFFFFFF)) + b"WAVEfmt " + struct.pack("<I", 16) + f + b"data" + struct.pack("<I", data_len)


def _expect(p, match):
    with pytest.raises(MedfuseIOError, match=match) as err:
        read_audio(p)
    assert err.value.path == str(p) and str(p) in str(err.value)


def test_bad_files(tmp_path):
    p = tmp_path / "zero.wav"
    p.write_bytes(_wav_header(data_len=0))
    _expect(p, "no samples|cannot read")
    p = tmp_path / "rate0.wav"
    p.write_bytes(_wav_header(rate=0, data_len=8) + b"\x00" * 8)
    _expect(p, "sample rate|cannot read")
    p = tmp_path / "huge.wav"
    p.write_bytes(_wav_header(data_len=0xFFFFFFF0) + b"\x01\x00" * 100)
    _expect(p, "truncated|2\\*\\*30|cannot read")
    x = _signal()
    full = tmp_path / "full.wav"
    sf.write(full, x, 4000, subtype="PCM_16")
    p = tmp_path / "cut.wav"
    p.write_bytes(full.read_bytes()[:3000])
    _expect(p, "truncated WAV")
    flac = tmp_path / "full.flac"
    sf.write(flac, x, 4000, subtype="PCM_16", format="FLAC")
    p = tmp_path / "cut.flac"
    p.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(MedfuseIOError) as err:
        read_audio(p)
    assert err.value.path == str(p)
    p = tmp_path / "nan.wav"
    bad = np.zeros(100, np.float32)
    bad[5] = np.nan
    p.write_bytes(_wav_header(data_len=400, bits=32, fmt=3) + bad.tobytes())
    _expect(p, "NaN or infinite")
    p = tmp_path / "inf.wav"
    bad[5] = np.inf
    p.write_bytes(_wav_header(data_len=400, bits=32, fmt=3) + bad.tobytes())
    _expect(p, "NaN or infinite")
    p = tmp_path / "notaudio.wav"
    p.write_bytes(b"hello world" * 20)
    _expect(p, "cannot read")
    p = tmp_path / "audio.mp3"
    p.write_bytes(b"ID3")
    _expect(p, "unsupported audio file type")
    (tmp_path / "dir.wav").mkdir()
    _expect(tmp_path / "dir.wav", "folder")
