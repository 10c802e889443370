"""Masked and indexed SIMD accesses are visible to AddressSanitizer (issue 25).

GCC's ASan does not instrument the memory accesses of masked loads/stores,
gathers/scatters and memory broadcasts: an overflow there passed every
sanitizer run. csrc/common/checked_simd.hpp wraps them; in the sanitizer
build each wrapper checks the bytes of every lane its mask enables.

- In every build: no kernel in csrc/ calls such an intrinsic directly (a new
  one would be unchecked again).
- In the sanitizer build (.ci/sanitize, which builds the test-only binding
  ``_core._checked_simd_selftest``): a deliberate out-of-bounds access through
  each wrapper, in a subprocess, ends in ASan's report naming the wrapper,
  while in-bounds accesses -- including masked-off lanes that lie outside the
  buffer -- pass; the same out-of-bounds access through the raw intrinsic is
  not reported (the blind spot the wrappers close).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import medfuse
from medfuse import _core

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"

# Intrinsics whose memory access GCC's ASan does not see (they pass a pointer
# to a builtin instead of dereferencing it).
UNINSTRUMENTED = re.compile(
    r"\b_mm(?:256|512)?_(?:"
    r"mask[z]?_(?:loadu?|storeu?|compressstoreu|expandloadu|i32gather|i64gather|i32scatter|i64scatter)_\w+"
    r"|mmask_i(?:32|64)gather_\w+"
    r"|i(?:32|64)(?:gather|scatter)_\w+"
    r"|mask(?:load|store)_\w+"
    r"|maskmoveu?_\w+"
    r"|broadcast_s[sd]|broadcast_p[sd]"
    r"|stream_\w+|lddqu_\w+"
    r")\s*\("
)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def test_no_kernel_calls_an_unchecked_masked_or_indexed_intrinsic():
    offenders = []
    for path in sorted(CSRC.rglob("*")):
        if path.suffix not in (".cpp", ".hpp", ".h", ".cc") or path.name.startswith("checked_simd"):
            continue
        for lineno, line in enumerate(_strip_comments(path.read_text()).splitlines(), 1):
            for m in UNINSTRUMENTED.finditer(line):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {m.group(0).rstrip('( ')}")
    assert not offenders, (
        "masked/indexed SIMD accesses must go through csrc/common/checked_simd.hpp "
        "(checked::<name>, so the sanitizer build sees them):\n" + "\n".join(offenders))


def test_the_pattern_catches_each_form():
    # The guard above is only as good as its pattern.
    for call in ("_mm512_mask_storeu_ps(p, m, v)", "_mm512_maskz_loadu_epi32(m, p)", "_mm256_maskstore_ps(p, m, v)",
                 "_mm512_mask_i32scatter_ps(p, m, i, v, 4)", "_mm512_mask_compressstoreu_ps(p, m, v)",
                 "_mm256_i32gather_ps(b, i, 4)", "_mm512_i32gather_pd(i, b, 8)", "_mm_maskload_epi32(p, m)",
                 "_mm256_broadcast_ss(p)", "_mm512_stream_ps(p, v)", "_mm256_mmask_i32gather_ps(s, m, i, b, 4)"):
        assert UNINSTRUMENTED.search(call), call
    for call in ("_mm512_maskz_min_ps(m, a, b)", "_mm512_mask_blend_pd(m, a, b)", "_mm512_loadu_ps(p)",
                 "checked::mask_storeu_ps(p, m, v)", "_mm512_maskz_cvttps_epi32(m, t)"):
        assert not UNINSTRUMENTED.search(call), call


def test_normal_build_has_no_selftest_and_says_whether_it_checks():
    info = medfuse.build_info()
    assert isinstance(info["checked_simd"], bool)
    if not info["checked_simd"]:
        assert not hasattr(_core, "_checked_simd_selftest")


def _needs(isa: str) -> pytest.MarkDecorator:
    """Skip unless the sanitizer build's selftest binding can run `isa` ops here."""
    return pytest.mark.skipif(
        not hasattr(_core, "_checked_simd_selftest") or isa not in medfuse.build_info()["simd_supported"],
        reason=f"needs the sanitizer build (.ci/sanitize) with the {isa} path on a CPU that runs it",
    )


sanitizer_only = _needs("avx512")  # the masked forms are AVX-512

# op, elements allocated, offset, lane mask, element size
F32_OPS = ["mask_storeu_ps", "maskz_loadu_ps", "mask_i32gather_ps"]


def _run(op: str, n_alloc: int, offset: int, lanes: int, checked: bool) -> subprocess.CompletedProcess:
    # ASan's report goes to stderr here (the job's log_path is for reports
    # inside the test process itself).
    env = dict(os.environ)
    opts = [o for o in env.get("ASAN_OPTIONS", "").split(":") if o and not o.startswith("log_path=")]
    env["ASAN_OPTIONS"] = ":".join(opts + ["abort_on_error=0", "halt_on_error=1"])
    code = textwrap.dedent(f"""
        from medfuse import _core
        print(_core._checked_simd_selftest({op!r}, {n_alloc}, {offset}, {lanes}, {checked}))
    """)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@sanitizer_only
@pytest.mark.parametrize("op", F32_OPS)
def test_in_bounds_lanes_pass_even_where_masked_off_lanes_are_outside(op):
    # 13 floats; 16 lanes from element 0 with the last three masked off;
    # and 16 lanes starting 3 before the buffer with the first three off.
    for offset, lanes in ((0, 0x1FFF), (-3, 0xFFF8), (5, 0x00FF), (0, 0)):
        r = _run(op, 13, offset, lanes, checked=True)
        assert r.returncode == 0, (offset, lanes, r.stderr[-3000:])
        assert "ERROR: AddressSanitizer" not in r.stderr


@sanitizer_only
@pytest.mark.parametrize("op", F32_OPS)
@pytest.mark.parametrize(("offset", "lanes", "where"), [(0, 0x3FFF, "right"), (-1, 0x0003, "left"),
                                                       (0, 0x2001, "right")])
def test_out_of_bounds_lane_is_reported(op, offset, lanes, where):
    # 13 floats: lane 13 from element 0 is one past the end; lane 0 at -1 one
    # before the start; 0x2001 enables only lanes 0 and 13 (a gap between).
    r = _run(op, 13, offset, lanes, checked=True)
    assert r.returncode != 0, f"{op}: out-of-bounds lane not reported\n{r.stdout}\n{r.stderr[-2000:]}"
    assert f"medfuse checked_simd: _mm512_{op}" in r.stderr, r.stderr[-3000:]
    assert "checked_simd_selftest_avx512.cpp" in r.stderr  # the call site's file:line
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in r.stderr, r.stderr[-3000:]
    side = {"right": "(to the right of|after)", "left": "(to the left of|before)"}[where]
    assert re.search(rf"{side} 52-byte region", r.stderr), r.stderr[-3000:]


@pytest.mark.parametrize(("op", "n_alloc", "offset", "lanes", "name"), [
    pytest.param("i32gather_ps", 7, 0, 0xFF, "_mm256_i32gather_ps", marks=_needs("avx2")),  # 8 lanes over 7 floats
    pytest.param("mask_i32gather_pd", 5, 0, 0x3F, "_mm512_mask_i32gather_pd",
                 marks=_needs("avx512")),  # lane 5 of 5 doubles
    pytest.param("broadcast_ss", 13, 13, 1, "_mm256_broadcast_ss", marks=_needs("avx2")),
    pytest.param("broadcast_sd", 5, 5, 1, "_mm256_broadcast_sd", marks=_needs("avx2")),
])
def test_out_of_bounds_other_forms_are_reported(op, n_alloc, offset, lanes, name):
    # One element more and the same access is in bounds (the AVX2 gather has
    # no mask: all 8 lanes read).
    ok = _run(op, n_alloc + 1, offset, lanes, checked=True)
    assert ok.returncode == 0, ok.stderr[-3000:]
    r = _run(op, n_alloc, offset, lanes, checked=True)
    assert r.returncode != 0 and f"medfuse checked_simd: {name}" in r.stderr, r.stderr[-3000:]
    assert "heap-buffer-overflow" in r.stderr
    # the call site, in the file built for the op's ISA
    assert f"checked_simd_selftest_{'avx512' if name.startswith('_mm512') else 'avx2'}.cpp" in r.stderr


@sanitizer_only
@pytest.mark.parametrize("op", F32_OPS)
def test_the_raw_intrinsic_is_a_blind_spot(op):
    # The same one-past-the-end lane through the raw intrinsic: ASan says
    # nothing (the slack up to the 64-byte chunk keeps the heap intact). If a
    # compiler ever instruments these itself, the wrappers are merely redundant.
    r = _run(op, 13, 0, 0x3FFF, checked=False)
    if "AddressSanitizer" in r.stderr:
        pytest.skip("this compiler's ASan instruments the raw intrinsic itself")
    assert r.returncode == 0, r.stderr[-3000:]


@_needs("avx2")
def test_selftest_refuses_an_unknown_op():
    with pytest.raises(ValueError, match="unknown op 'nope'"):
        _core._checked_simd_selftest("nope", 4, 0, 1, True)
