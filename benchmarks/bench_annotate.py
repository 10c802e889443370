"""Report labeling speed: 10,000 synthetic reports (half English, half Chinese).

``medfuse.annotate.label_reports`` (sentences, cue scopes, aggregation)
against the keyword baseline ``keyword_labels`` (the same dictionary
regexes, no negation or hedges) on the same reports, both single-threaded
pure Python. The target of issue 23 is < 10 s for 10,000 reports on 2 cores.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

pytest.importorskip("pandas")

from medfuse.annotate import keyword_labels, label_reports
from medfuse.data import synthetic

N = 10_000
INPUT = f"{N} synthetic reports from medfuse.data.synthetic.write_report (lang mixed, about half Chinese)"


@pytest.fixture(scope="module")
def reports() -> list[str]:
    return [synthetic.write_report(c) for c in synthetic.draw_cases(N, 0, "mixed")]


@pytest.mark.benchmark(group="annotate-10000-reports")
@pytest.mark.parametrize("impl", ["medfuse", "keyword-baseline"])
def test_label_reports(benchmark: BenchmarkFixture, reports: list[str], impl: str) -> None:
    fn = label_reports if impl == "medfuse" else keyword_labels
    benchmark.extra_info.update({"implementation": impl, "family": "annotate", "threads": 1, "input": INPUT})
    out = benchmark.pedantic(fn, args=(reports,), rounds=3, iterations=1, warmup_rounds=1)
    assert len(out) == N
