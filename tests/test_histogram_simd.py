"""medfuse.histogram, float data with equal-width bins (the tiled, vectorised path):
counts equal numpy.histogram's on every SIMD path this CPU runs (forced with
MEDFUSE_SIMD, one subprocess each), for every thread count; values on and one ulp
from the edges, NaN / inf, masks, odd lengths, 1 element, non-contiguous input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import medfuse

INFO = medfuse.build_info()
RUNNABLE = [p for p in INFO["simd_compiled"] if p in INFO["simd_supported"]]

_SCRIPT = r"""
import json
import numpy as np
import medfuse

rng = np.random.default_rng(7)
mismatches = []
cases = 0


def data(n, dtype, kind):
    if kind == "normal":
        x = rng.normal(0, 1, n)
    elif kind == "edges":  # on the edges of 0..1 in 10 / 256 bins and one ulp either side
        e = np.concatenate([np.linspace(0, 1, 11), np.linspace(0, 1, 257)])
        x = rng.choice(np.concatenate([e, np.nextafter(e, -1), np.nextafter(e, 2)]), n)
    else:  # specials
        x = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, 0.5, -0.0, 1e300, -1e300]), n)
    return x.astype(dtype)


for dtype in (np.float64, np.float32):
    for n in (1, 7, 8, 9, 15, 16, 17, 33, 511, 512, 513, 4099, 70001):
        for kind in ("normal", "edges", "specials"):
            x = data(n, dtype, kind)
            for bins in (1, 10, 256, 3000, 20000):
                for rng_ in (None, (0.0, 1.0), (-0.7, 2.5)):
                    finite = np.isfinite(x).all()
                    if rng_ is None and not finite:
                        continue
                    for use_mask in (False, True):
                        mask = rng.random(n) < 0.6 if use_mask else None
                        if mask is not None and not mask.any():
                            mask[0] = True
                        sel = x if mask is None else x[mask]
                        if rng_ is None and not np.isfinite(sel).all():
                            continue
                        try:
                            want = np.histogram(sel, bins, rng_)
                        except ValueError:  # e.g. max - min overflows (medfuse refuses too)
                            continue
                        for threads in (1, 3):
                            medfuse.set_num_threads(threads)
                            got = medfuse.histogram(x, bins, rng_, mask=mask)
                            cases += 1
                            if not (np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])):
                                mismatches.append((np.dtype(dtype).name, n, kind, bins, rng_, use_mask, threads))
# non-contiguous and 2D input
x = rng.normal(0, 1, (300, 401))[::2, ::3]
for bins in (7, 256):
    cases += 1
    if not np.array_equal(medfuse.histogram(x, bins)[0], np.histogram(x, bins)[0]):
        mismatches.append(("strided", bins))
info = medfuse.build_info()
print(json.dumps({"active": info["simd_active"], "error": info["simd_request_error"], "cases": cases,
                  "mismatches": mismatches[:20], "n": len(mismatches)}))
"""


@pytest.mark.parametrize("path", RUNNABLE)
def test_float_uniform_bins_match_numpy_on_each_path(path):
    env = {**os.environ, "MEDFUSE_SIMD": path}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["active"] == path and out["error"] == ""
    assert out["cases"] > 2000
    assert out["n"] == 0, out["mismatches"]


@settings(deadline=None)
@given(
    n=st.integers(1, 300),
    bins=st.integers(1, 300),
    lo=st.floats(-10, 10),
    width=st.floats(1e-3, 20),
    seed=st.integers(0, 2**32 - 1),
    single=st.booleans(),
)
def test_float_uniform_bins_match_numpy(n, bins, lo, width, seed, single):
    rng = np.random.default_rng(seed)
    x = rng.normal(lo + width / 2, width, n)
    if single:
        x = x.astype(np.float32)
    r = (lo, lo + width)
    want = np.histogram(x, bins, r)
    got = medfuse.histogram(x, bins, r)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
