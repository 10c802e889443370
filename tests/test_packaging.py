"""The README's two commands: the test dependencies install without rebuilding medfuse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
SECOND_COMMAND = "python -m pip install -r requirements-test.txt && python -m pytest"


def _requirements(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def test_requirements_test_is_the_test_extra():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]["test"]
    reqs = _requirements(ROOT / "requirements-test.txt")
    assert reqs == extra
    # nothing in it names medfuse itself (which would rebuild the C++ core)
    assert not any(re.match(r"(medfuse|\.|-e)\b", r) for r in reqs)


def test_readme_and_ci_run_the_same_second_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```", 2)[1]
    assert first_block.strip().splitlines()[-1].strip() == SECOND_COMMAND
    assert SECOND_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
