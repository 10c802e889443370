"""Cohort data path: DICOM series reading, synthetic cohort generation, report features.

Pure Python (no C++ kernels): these time the I/O and generation the demo
relies on. ``read_ct`` is compared with SimpleITK's series reader on the
same synthetic DICOM series (checked equal once, outside the timing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

pytest.importorskip("pydicom")
pytest.importorskip("pandas")

from medfuse.data import io as mio
from medfuse.data import synthetic_cohort

SERIES_INPUT = "synthetic chest CT DICOM series, 48 slices of 128x128 (uint16 + rescale)"


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    synthetic_cohort(1, seed=0, missing=0.0, out_dir=out)
    return out / "P000" / "ct"


@pytest.mark.benchmark(group="read-ct-dicom-48x128x128")
@pytest.mark.parametrize("impl", ["medfuse", "sitk"])
def test_read_ct_series(benchmark: BenchmarkFixture, series_dir: Path, impl: str) -> None:
    expected = mio.read_ct(series_dir).array
    if impl == "medfuse":
        def run() -> np.ndarray:
            return mio.read_ct(series_dir).array

        checked = None
    else:
        sitk = pytest.importorskip("SimpleITK")

        def run() -> np.ndarray:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series_dir)))
            # SimpleITK orders slices inferior first; medfuse superior first.
            return sitk.GetArrayFromImage(reader.Execute())[::-1]

        checked = "medfuse.data.read_ct"
        np.testing.assert_array_equal(run(), expected)
    benchmark(run)
    benchmark.extra_info.update(
        implementation=f"{impl} read series", family=impl, threads=None, input=SERIES_INPUT, checked_against=checked
    )


@pytest.mark.benchmark(group="synthetic-cohort-20")
def test_synthetic_cohort_in_memory(benchmark: BenchmarkFixture) -> None:
    synthetic_cohort(1, seed=0)  # warm the per-shape anatomy cache
    result = benchmark.pedantic(lambda: synthetic_cohort(20, seed=1, lang="mixed"), rounds=3, iterations=1)
    assert len(result) == 20
    benchmark.extra_info.update(
        implementation="medfuse synthetic_cohort(20)", family="medfuse", threads=None,
        input="20 patients: CT 48x128x128, X-ray, report", checked_against=None,
    )


@pytest.mark.benchmark(group="synthetic-cohort-20")
def test_synthetic_cohort_disease_in_memory(benchmark: BenchmarkFixture) -> None:
    synthetic_cohort(1, seed=0, task="disease")  # warm the per-shape anatomy and texture caches
    result = benchmark.pedantic(
        lambda: synthetic_cohort(20, seed=1, lang="mixed", task="disease"), rounds=3, iterations=1
    )
    assert len(result) == 20
    benchmark.extra_info.update(
        implementation="medfuse synthetic_cohort(20, task='disease')", family="medfuse", threads=None,
        input="20 patients: CT 48x128x128 with disease findings, X-ray, report, lung sounds", checked_against=None,
    )


@pytest.mark.benchmark(group="report-vectorizer-200")
def test_report_vectorizer_transform(benchmark: BenchmarkFixture) -> None:
    pytest.importorskip("gensim")
    pytest.importorskip("jieba")
    from medfuse.features import ReportVectorizer

    cohort = synthetic_cohort(200, seed=2, lang="mixed", missing=0.0, shape=(16, 32, 32))
    reports = [r.report for r in cohort]
    vec = ReportVectorizer(vector_size=32, epochs=5).fit(reports)
    X = benchmark(vec.transform, reports)
    # Word2Vec block (vector_size) + the default TF-IDF block + negation features: the names say how many.
    assert X.shape == (200, len(vec.get_feature_names_out())) and X.shape[1] > 32
    benchmark.extra_info.update(
        implementation="medfuse ReportVectorizer.transform", family="medfuse", threads=None,
        input="200 synthetic reports (en+zh)", checked_against=None,
    )
