"""benchmarks/compare.py: worst ratio per group from pytest-benchmark JSON."""

from __future__ import annotations

import json
import math

from bench_scripts import BENCH, load_script


def _bench(group, family, threads, median, label=None):
    return {"group": group, "name": f"{group}-{family}", "param": family,
            "stats": {"median": median, "iqr": 0.0, "rounds": 3},
            "extra_info": {"family": family, "threads": threads, "implementation": label or family}}


def test_worst_ratio_per_group(tmp_path, capsys):
    cmp = load_script("compare")
    data = {"benchmarks": [
        _bench("a", "medfuse", 1, 2.0), _bench("a", "medfuse", 2, 1.0),
        _bench("a", "cv2", 1, 3.0, "cv2.Canny"), _bench("a", "cv2", 2, 0.5, "cv2.Canny"),  # 1.5x and 0.5x
        _bench("a", "reference", None, 0.1),  # the twin is not an anchor by default
        _bench("b", "medfuse", 1, 1.0), _bench("b", "scipy", None, 4.0),
        _bench("c", "medfuse", 1, 1.0),
    ]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    rows = [cmp._row(b) for b in data["benchmarks"]]
    s = {g.group: g for g in cmp.summarise(rows)}
    assert s["a"].worst == 0.5 and s["a"].worst_anchor == "cv2.Canny (2 threads)" and s["a"].speedup == 2.0
    assert s["b"].worst == 4.0 and math.isnan(s["b"].speedup)
    assert math.isnan(s["c"].worst)
    assert cmp.summarise(rows, with_reference=True)[0].worst == 0.05
    assert [g.group for g in cmp.summarise(rows)] == ["a", "b", "c"]  # worst first
    assert cmp.main([str(path), "--fail-below", "1.0"]) == 1
    out = capsys.readouterr().out
    assert "<-- below" in out.splitlines()[1] and out.splitlines()[1].startswith("a ")
    assert cmp.main([str(path), "--fail-below", "0.4"]) == 0


def _run(active, supported, benchmarks, command):
    return {
        "datetime": "2026-12-06T18:00:00",
        "commit_info": {"id": "0123456789abcdef"},
        "machine_info": {
            "cpu": {"brand_raw": "Test CPU", "family": 26, "model": 2, "flags": ["avx2", "avx512f"]},
            "medfuse": {"simd_active": active, "simd_supported": supported, "simd_compiled": supported},
            "load_average": [0.1, 0.2, 0.3],
            "command": command,
        },
        "benchmarks": benchmarks,
    }


def test_report_one_summary_per_cpu_kind():
    rep = load_script("report")
    fast = [_bench("a", "medfuse", 1, 2.0), _bench("a", "medfuse", 2, 1.0), _bench("a", "cv2", 2, 0.5, "cv2.Canny")]
    slow = [_bench("a", "medfuse", 1, 4.0), _bench("a", "medfuse", 2, 3.0), _bench("a", "cv2", 2, 0.6, "cv2.Canny")]
    full = ["baseline", "avx2", "avx512"]
    text = rep.render(_run("avx512", full, fast, "run-512"), _run("avx2", full, slow, "run-avx2"))
    kind2 = "Test CPU family 26 model 2, SIMD path avx2 (forced with MEDFUSE_SIMD; the CPU has avx512)"
    assert "## Machine 1: Test CPU family 26 model 2, SIMD path avx512\n" in text
    assert f"## Machine 2: {kind2}" in text
    assert f"## Summary: machine 2, {kind2}" in text
    assert "Load average when the run started (1, 5, 15 min): 0.1, 0.2, 0.3" in text
    # two-thread table: speed-up 1 -> 2 and the worst anchor at 2 threads, per kind
    assert "| `a` | 2.00x | 0.50x (cv2.Canny) |" in text
    assert "| `a` | 1.33x | 0.20x (cv2.Canny) |" in text
    # per-group tables once, from the first kind
    assert text.count("## `a`") == 1
    assert "`run-avx2`" in text
    one = rep.render(_run("avx512", full, fast, "run-512"))
    assert "## Machine\n" in one and "Machine 2" not in one and "## Summary\n" in one


def test_report_names_reference_isa_limits():
    """A run under benchmarks/as_avx2.sh (references limited to AVX2 as well) is its own CPU kind and says so."""
    rep = load_script("report")
    rows = [_bench("a", "medfuse", 1, 2.0), _bench("a", "cv2", 1, 1.0, "cv2.Canny")]
    full = ["baseline", "avx2", "avx512"]
    limited = _run("avx2", full, rows, "run-avx2-limited")
    limited["machine_info"]["isa_limits"] = {"OPENCV_IPP": "avx2", "ATEN_CPU_CAPABILITY": "avx2"}
    text = rep.render(_run("avx2", full, rows, "run-avx2"), limited)
    assert "## Machine 2: Test CPU family 26 model 2, SIMD path avx2 (forced with MEDFUSE_SIMD; the CPU has " \
           "avx512), references limited likewise" in text
    assert "- SIMD limits of the reference libraries in the environment (benchmarks/as_avx2.sh sets them): " \
           "OPENCV_IPP=avx2, ATEN_CPU_CAPABILITY=avx2" in text
    # a machine-wide setting alone (here OpenBLAS's core type) does not make a run "limited"
    plain = _run("avx512", full, rows, "run-512")
    plain["machine_info"]["isa_limits"] = {"OPENBLAS_CORETYPE": "Haswell"}
    assert "references limited" not in rep.render(plain)


def test_as_avx2_limits_what_conftest_records():
    """Every variable as_avx2.sh sets (besides MEDFUSE_SIMD) is one conftest.py records."""
    text = (BENCH / "as_avx2.sh").read_text()
    exported = {line.split("=", 1)[0].split()[1] for line in text.splitlines() if line.startswith("export ")}
    src = (BENCH / "conftest.py").read_text()
    for name in exported - {"MEDFUSE_SIMD"}:
        assert f'"{name}"' in src, name
    assert {"OPENCV_IPP", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"} <= exported
