"""``medfuse bench``: the quick benchmark (:mod:`.quick`) and the shared
benchmark cases, timers and thread pinning (:mod:`.cases`) that the
pytest-benchmark suites in ``benchmarks/`` also use."""
