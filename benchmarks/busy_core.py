"""Wall time of `medfuse demo`, `train --learner gbdt` and `evaluate` with one core kept busy
by another process, against the same commands without it.

Not a test and not a pytest-benchmark suite: it runs the CLI in subprocesses
(so each run starts with fresh thread pools) and prints a table. Library
thread pools that are not limited spin while they wait for a descheduled
thread, so a busy core costs far more than its share; medfuse limits them
(docs/architecture.md, "Threads"). To compare with library defaults, run
with ``--env MEDFUSE_LEARNER_THREADS=<cores>`` (learners' BLAS/OpenMP pools
at the libraries' default size), or point ``--pythonpath`` at another
checkout's ``python/`` folder (with its compiled ``_core``).

    python benchmarks/busy_core.py --n 100 --out /tmp/busy
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _spin() -> subprocess.Popen[bytes]:
    """Another process keeping one core busy."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="demo patients (default 100)")
    ap.add_argument("--out", type=Path, required=True, help="work folder")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for the runs")
    ap.add_argument("--pythonpath", default=None, help="import medfuse from this folder instead")
    ap.add_argument("--repeat", type=int, default=1, help="runs per command and condition (the minimum is kept)")
    args = ap.parse_args()

    env = dict(os.environ)
    for kv in args.env:
        key, _, value = kv.partition("=")
        env[key] = value
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    args.out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "medfuse"]
    features = args.out / "demo" / "features.parquet"
    commands = {
        "demo": [*cli, "demo", "--n", str(args.n), "--out", str(args.out / "demo")],
        "train --learner gbdt": [*cli, "train", str(features), "--learner", "gbdt", "-o", str(args.out / "m.joblib")],
        "evaluate": [*cli, "evaluate", str(features), "--out", str(args.out / "eval")],
    }
    results: dict[str, dict[str, float]] = {}
    for condition in ("idle", "one core busy"):
        for name, cmd in commands.items():
            best = float("inf")
            for _ in range(args.repeat):
                spinner = _spin() if condition != "idle" else None
                try:
                    time.sleep(0.2 if spinner else 0.0)
                    best = min(best, _run(cmd, env))
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
            results.setdefault(name, {})[condition] = best
            print(f"{condition:>14}  {name:<22} {best:7.1f} s", file=sys.stderr, flush=True)
    print(f"CPU: {_cpu_name()}, {os.cpu_count()} logical cores; env {' '.join(args.env) or '(none)'}"
          f"{'; PYTHONPATH ' + args.pythonpath if args.pythonpath else ''}")
    print(f"{'command':<22} {'idle':>8} {'busy':>8} {'busy/idle':>10}")
    for name, r in results.items():
        print(f"{name:<22} {r['idle']:7.1f}s {r['one core busy']:7.1f}s {r['one core busy'] / r['idle']:9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
