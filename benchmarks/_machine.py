"""What the benchmark scripts share: the machine they ran on, and where their Markdown goes (imported by the
scripts in this folder: ``python benchmarks/<script>.py`` puts the folder on sys.path)."""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s first "model name"; else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def emit(text: str, output: Path | None) -> None:
    """Write ``text`` to ``output`` (UTF-8), or to stdout when it is None."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``repeat`` calls of ``fn``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
