"""Resource checks (issue 9, item 4): repeated calls do not grow memory, and
requests whose output cannot fit are refused before anything is allocated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import hostile_cases as hc

UNDER_ASAN = bool(os.environ.get("MEDFUSE_SANITIZE_RUN")) or "asan" in os.environ.get("LD_PRELOAD", "")
PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 2**20


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# ----------------------------------------------------------------------- leaks

# Inputs of 64x64 (attention 2x64x16, conv2d 1x3x32x32 ...): every call
# allocates at least a few KiB of output and scratch, so a leak of any
# per-call buffer grows RSS by >= 1000 x 4 KiB = 4 MiB per round.
LEAK_SHAPES = {
    "glcm_features": (8, 8, 2, 3), "conv2d": (1, 3, 32, 32), "attention": (2, 64, 16),
    "attention_backward": (2, 64, 16), "multi_head_attention": (2, 32, 16), "filter_bank": (32, 32),
}
CALLS = int(os.environ.get("MEDFUSE_LEAK_CALLS", "1000"))
# Growth allowed per round of CALLS calls. A real leak is linear in the
# number of calls, allocator noise (glibc arenas, pymalloc pools, NumPy's
# small-block cache) is not: a round over 2 MiB is only a failure if the
# next round grows by as much again.
ROUND_LIMIT = 2 * MiB


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.skipif(UNDER_ASAN, reason="ASan keeps freed memory in quarantine: RSS grows by design")
@pytest.mark.parametrize("name", sorted(hc.KERNELS))
def test_no_leak_over_repeated_calls(name: str) -> None:
    import medfuse

    medfuse.set_num_threads(1)
    shape = LEAK_SHAPES.get(name, (64, 64) if 2 in hc.KERNELS[name].ndims else hc.KERNELS[name].valid_shape)
    case = hc.KERNELS[name].valid_case(name, 0, shape)
    kernel, x, p = hc.build_call(case)

    def round_() -> int:
        before = rss_bytes()
        for _ in range(CALLS):
            kernel.call(medfuse, x, p)
        return rss_bytes() - before

    for _ in range(2):  # warm-up: caches, lazy imports, allocator pools
        round_()
    growth = [round_()]
    if growth[0] > ROUND_LIMIT:
        growth.append(round_())
        growth.append(round_())
        assert min(growth[1:]) <= ROUND_LIMIT, (
            f"{name}: RSS grew by {[g // 1024 for g in growth]} KiB over successive rounds of {CALLS} calls"
        )


# ---------------------------------------------------------- oversized requests

# Each runs in a subprocess with a 2 GiB address-space limit (the safety net
# if a kernel did allocate first) and must raise MemoryError/ValueError
# quickly, with medfuse's own message (the names in `expect`), not NumPy's
# "Unable to allocate", which would mean the allocation was attempted.
HUGE_REQUESTS = {
    "histogram_1e9_bins": ("m.histogram(img, bins=10**9)", "bins"),
    "histogram_1e12_bins": ("m.histogram(img, bins=10**12)", "bins"),
    "histogram_float_1e9_bins": ("m.histogram(img.astype(np.float32), bins=10**9)", "bins"),
    "glcm_65536_levels": ("m.glcm(img.astype(np.uint16), [1], [0.0], 65536)", "levels"),
    "glcm_many_offsets": ("m.glcm(img, list(range(1, 129)), list(np.linspace(0, 3, 64)), 256, normed=True)", "glcm"),
    "quantize_1e9_levels": ("m.quantize(img, levels=10**9)", "levels"),
    "attention_broadcast_q": ("m.attention(huge((2**20, 2**20, 64)), huge((2**20, 2**20, 64)), huge((2**20, 2**20, 64)))", "q"),
    "conv2d_huge_cout": ("m.conv2d(np.zeros((1, 1, 64, 64), np.float32), huge((10**6, 1, 3, 3)))", "conv2d"),
    "conv2d_huge_padding": ("m.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32), padding=10**6)", "conv2d"),
    "filter_bank_huge_stack": ("m.filter_bank(huge((256, 256, 256)), kind='laws', laws_window=3)", "filter_bank"),
    "median_huge_window": ("m.median(img, 10**6 + 1)", "size"),
    "bilateral_huge_d": ("m.bilateral(img, 10**6, 20.0, 3.0)", "d"),
    "gaussian_huge_sigma": ("m.gaussian(img.astype(np.float32), 1e9)", "sigma"),
    "unsharp_huge_sigma": ("m.unsharp_mask(img, 1e9, 1.0)", "sigma"),
    "clahe_huge_grid": ("m.clahe(img, 40.0, (10**5, 10**5))", "tile_grid"),
    "convolve_huge_kernel": ("m.convolve(img.astype(np.float32), huge((30001, 30001)))", "kernel"),
    "sep_filter_huge_kernels": ("m.sep_filter(img.astype(np.float32), [huge((10**8,))] * 2)", "kernels"),
}

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from numpy.lib.stride_tricks import as_strided
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
    import medfuse as m

    def huge(shape, dtype=np.float32):
        return as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape))

    img = np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)
    out = {}
    for name, expr in json.loads(sys.argv[1]).items():
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        try:
            eval(expr)
            res = ("returned", "")
        except Exception as err:
            res = (type(err).__name__, str(err)[:300])
        out[name] = res + (time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0)
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(UNDER_ASAN, reason="ASan needs terabytes of address space: no RLIMIT_AS")
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics are Linux's")
def test_oversized_requests_are_refused_before_allocating() -> None:
    exprs = {k: e for k, (e, _) in HUGE_REQUESTS.items()}
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(exprs)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    bad = []
    for name, (kind, msg, _seconds, maxrss_kib) in results.items():
        expect = HUGE_REQUESTS[name][1]
        if kind not in ("MemoryError", "ValueError"):
            bad.append(f"{name}: {kind} {msg}")
        elif "Unable to allocate" in msg or expect not in msg:
            bad.append(f"{name}: not refused by medfuse's own check ({kind}: {msg})")
        elif maxrss_kib > 256 * 1024:
            bad.append(f"{name}: peak RSS grew by {maxrss_kib // 1024} MiB before the refusal")
    assert not bad, "\n".join(bad)


def test_check_alloc_message() -> None:
    from medfuse.kernels import _validate

    _validate.check_alloc(1024, "small")  # fits
    with pytest.raises(MemoryError, match="thing would need"):
        _validate.check_alloc(1 << 70, "thing")
