"""Every README code block runs as written.

The ```python blocks are executed in order in one namespace (later blocks use
names the tour defined earlier), inside a temporary directory; the ```sh
blocks made only of `medfuse` commands run after them in the same directory,
on the cohort the tour wrote. The install and test commands at the top, the
development loop and the benchmark reproduction are run by CI (.ci/run) and
are not repeated here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(lang: str) -> list[str]:
    return [body for tag, body in _BLOCK.findall(README.read_text(encoding="utf-8")) if tag == lang]


def test_readme_has_runnable_blocks():
    assert len(_blocks("python")) >= 6
    assert any(b.strip().startswith("medfuse ") for b in _blocks("sh"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # third-party warnings during a user's session
def test_readme_blocks_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(_blocks("python")):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(f"README python block {i} failed:\n{block}") from err
    exe = shutil.which("medfuse", path=str(Path(sys.executable).parent)) or shutil.which("medfuse")
    assert exe, "the medfuse console script is not installed"
    for block in _blocks("sh"):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not all(ln.startswith("medfuse ") for ln in lines):
            continue  # install/build commands: CI runs them
        for line in lines:
            proc = subprocess.run([exe, *shlex.split(line)[1:]], capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{line!r} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "out" / "report.html").is_file()
    assert (tmp_path / "predictions.csv").is_file()
