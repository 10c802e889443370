"""Run-time SIMD dispatch: every path this CPU can run gives the twin's results.

The path is chosen once, at import, from MEDFUSE_SIMD, so each one runs in a
subprocess. build_info() keys used: simd_compiled, simd_supported,
simd_active, simd_request_error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import medfuse

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
INFO = medfuse.build_info()
COMPILED = list(INFO["simd_compiled"])
SUPPORTED = list(INFO["simd_supported"])
RUNNABLE = [p for p in COMPILED if p in SUPPORTED]
NOT_RUNNABLE = [p for p in COMPILED if p not in SUPPORTED]

# Compares kernel and twin on images of every dtype, 2D and 3D, sizes around
# the vector widths (1..17 columns, 31/32/33/64/65 ...) and one larger image.
_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
import images
from strategies import magnitude_quantiles
import medfuse
import medfuse.reference as ref

info = medfuse.build_info()
mismatches = []
shapes_2d = [(1, 1), (3, 17), (9, 31), (16, 32), (7, 33), (20, 64), (13, 65), (5, 127), (70, 96)]
shapes_3d = [(1, 1, 1), (3, 5, 33), (6, 11, 64), (9, 14, 17)]
cases = 0
with_edges = 0
for dtype in images.DTYPES:
    for shape in shapes_2d + shapes_3d:
        for family in ("natural", "noise", "extremes"):
            x = images.make(family, shape, dtype, seed=len(shape))
            for aperture in (3, 5, 7):
                _, top = magnitude_quantiles(x, aperture)
                top = min(top, 1e150)
                with np.errstate(over="ignore", invalid="ignore"):
                    want_s = ref.sobel(x, aperture_size=aperture)
                for g, w in zip(medfuse.sobel(x, aperture_size=aperture), want_s):
                    if not np.array_equal(g, w, equal_nan=g.dtype.kind == "f"):
                        mismatches.append(("sobel", np.dtype(dtype).name, shape, family, aperture))
                for l2 in (False, True):
                    for kw in ({{}}, {{"sigma": 1.0, "spacing": (2.0, 1.0, 0.5)[-x.ndim:]}}):
                        lo, hi = 0.1 * top, 0.3 * top
                        with np.errstate(over="ignore", invalid="ignore"):
                            want = ref.canny(x, lo, hi, aperture_size=aperture, l2_gradient=l2, **kw)
                        got = medfuse.canny(x, lo, hi, aperture_size=aperture, l2_gradient=l2, **kw)
                        cases += 1
                        with_edges += bool(want.any())
                        if not np.array_equal(got, want):
                            mismatches.append(("canny", np.dtype(dtype).name, shape, family, aperture, l2, repr(kw), int((got != want).sum())))
print(json.dumps({{"info": {{k: info[k] for k in ("simd_active", "simd_request_error", "simd_compiled", "simd_supported")}},
                  "cases": cases, "with_edges": with_edges, "mismatches": mismatches[:20], "n_mismatches": len(mismatches)}}))
"""

_INFO_ONLY = r"""
import json, medfuse
info = medfuse.build_info()
print(json.dumps({k: info[k] for k in ("simd_active", "simd_request_error", "simd_compiled", "simd_supported")}))
"""


def _run(code, simd):
    env = dict(os.environ)
    env.pop("MEDFUSE_SIMD", None)
    if simd is not None:
        env["MEDFUSE_SIMD"] = simd
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_build_info_lists_paths():
    assert "baseline" in COMPILED
    assert "baseline" in SUPPORTED
    assert INFO["simd_active"] in RUNNABLE


@pytest.mark.parametrize("path", RUNNABLE)
def test_each_path_matches_reference(path):
    out = _run(_SCRIPT.format(tests=TESTS_DIR), path)
    assert out["info"]["simd_active"] == path
    assert out["info"]["simd_request_error"] == ""
    assert out["cases"] > 500
    assert out["with_edges"] > out["cases"] // 2  # not a comparison of empty edge maps
    assert out["n_mismatches"] == 0, out["mismatches"]


def test_baseline_always_available():
    out = _run(_INFO_ONLY, "baseline")
    assert out["simd_active"] == "baseline"
    assert out["simd_request_error"] == ""


def test_default_is_best_supported():
    """Without MEDFUSE_SIMD the widest path compiled in and supported is used."""
    out = _run(_INFO_ONLY, None)
    order = ["baseline", "avx2", "avx512"]
    best = max(RUNNABLE, key=lambda p: order.index(p) if p in order else -1)
    assert out["simd_active"] == best
    assert out["simd_request_error"] == ""


@pytest.mark.parametrize("path", NOT_RUNNABLE + ["sse9", "AVX2 ", "", "native"])
def test_unusable_request_falls_back(path):
    """A path not compiled in / not supported / unknown: reported, never a crash or an illegal instruction."""
    out = _run(_INFO_ONLY, path)
    assert out["simd_active"] in RUNNABLE
    if path.strip() == "":
        return  # empty counts as unset (either way is acceptable)
    if path not in RUNNABLE:
        assert out["simd_request_error"], f"MEDFUSE_SIMD={path!r} was ignored silently"
        assert "MEDFUSE_SIMD" in out["simd_request_error"]


# Audio spectra: every path agrees with the twin and all paths give the same
# bits (16 frames per vector lane group, no FMA contraction).
_AUDIO_SCRIPT = r"""
import hashlib, json
import numpy as np
import medfuse
import medfuse.reference as ref
info = medfuse.build_info()
rng = np.random.default_rng(3)
h = hashlib.sha256()
worst = 0.0
for dtype in (np.float32, np.float64):
    for n, n_fft, hop in [(5000, 256, 64), (4001, 400, 100), (3000, 255, 17), (300, 2, 1), (1000, 1, 3),
                          (1000, 8, 3), (777, 32, 5), (6000, 2048, 300), (2000, 64, 1)]:
        y = rng.standard_normal((2, n)).astype(dtype)
        for fn, kw in [("stft", {}), ("spectrogram", {"power": 1.0}), ("mel_spectrogram", {"sr": 4000, "n_mels": 20}),
                       ("mfcc", {"sr": 4000, "n_mels": 20, "n_mfcc": 13, "lifter": 22})]:
            if fn in ("mel_spectrogram", "mfcc") and n_fft < 64:
                continue
            got = getattr(medfuse, fn)(y, n_fft=n_fft, hop_length=hop, **kw)
            want = getattr(ref, fn)(y, n_fft=n_fft, hop_length=hop, **kw)
            h.update(np.ascontiguousarray(got).tobytes())
            scale = max(float(np.abs(want).max()), 1e-30)
            worst = max(worst, float(np.abs(got - want).max()) / scale)
print(json.dumps({"active": info["simd_active"], "digest": h.hexdigest(), "worst": worst}))
"""


def test_audio_paths_match_reference_and_each_other():
    outs = [_run(_AUDIO_SCRIPT, path) for path in RUNNABLE]
    for path, out in zip(RUNNABLE, outs):
        assert out["active"] == path
        assert out["worst"] < 1e-4, (path, out["worst"])
    assert len({o["digest"] for o in outs}) == 1, "SIMD paths give different bits"
