"""The SIMD paths this machine runs, and a script run under one of them (MEDFUSE_SIMD) in a fresh interpreter.

Plain functions (no pytest) shared by the per-path tests of the kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import medfuse

TESTS = os.path.dirname(os.path.abspath(__file__))


def simd_paths() -> list[str]:
    """The paths compiled into the extension that this CPU supports."""
    info = medfuse.build_info()
    return [p for p in info["simd_compiled"] if p in info["simd_supported"]]


def run_on_path(script: str, path: str) -> dict:
    """Run a check script under MEDFUSE_SIMD=path; its last line of output is JSON with the active path as "active"."""
    env = dict(os.environ, MEDFUSE_SIMD=path)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["active"] == path
    return out
