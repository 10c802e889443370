"""benchmarks/paired.py: issue 22's rows as per-pair ratios of alternating blocks."""

from __future__ import annotations

import pytest

from bench_scripts import load_script


def test_ratios_are_taken_per_pair_in_alternating_order(monkeypatch):
    pytest.importorskip("cv2")
    paired = load_script("paired")
    calls = []

    def mf():
        calls.append("mf")

    def anchor():
        calls.append("anchor")

    # block times in call order: pair 0 medfuse first, pair 1 anchor first, ...
    script = iter([1.0, 3.0,   # pair 0: mf 1.0, anchor 3.0 -> 3.0x
                   8.0, 2.0,   # pair 1: anchor 8.0, mf 2.0 -> 4.0x (a slow host moment on both sides)
                   2.0, 1.0])  # pair 2: mf 2.0, anchor 1.0 -> 0.5x

    def fake_block(fn, repeat, gap=0.0, warmup=2):
        fn()
        return next(script)

    monkeypatch.setattr(paired, "_block", fake_block)
    checked = []
    row = paired.Row("x", "x", "y", lambda threads: (mf, anchor), lambda a, b: checked.append(True))
    m = paired.measure(row, 1, 3, 5)
    assert checked == [True]
    assert calls[2:] == ["mf", "anchor", "anchor", "mf", "mf", "anchor"]  # after the check's two calls
    assert m["ratio"] == 3.0 and m["lo"] == 0.5 and m["hi"] == 4.0
    assert m["ahead"] == 2 and m["pairs"] == 3
    assert m["mf"] == 2.0 and m["anchor"] == 3.0  # medians of each side's blocks


def test_a_row_whose_results_differ_is_refused(monkeypatch):
    pytest.importorskip("cv2")
    paired = load_script("paired")

    def check(a, b):
        assert a == b, "results differ"

    row = paired.Row("x", "x", "y", lambda threads: ((lambda: 1), (lambda: 2)), check)
    with pytest.raises(AssertionError, match="results differ"):
        paired.measure(row, 1, 1, 1)


def test_unknown_row_is_refused(capsys):
    pytest.importorskip("cv2")
    paired = load_script("paired")
    with pytest.raises(SystemExit):
        paired.main(["--rows", "nonsense"])
    assert "unknown rows ['nonsense']" in capsys.readouterr().err
