"""Wall time of `medfuse demo`, `train --learner gbdt`, `evaluate` and `train --fusion deep` with one core kept busy
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
import resource
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name  # benchmarks/ (the script's folder) is on sys.path


def _spin() -> subprocess.Popen[bytes]:
    """Another process keeping one core busy."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command: user + system, every thread)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the spinner is reaped later: not counted here
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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
        # torch's OpenMP threads spin at barriers when a core is busy (20 s CPU instead of 1.4 s for 5 epochs
        # with 2 threads on 2 cores): DeepFusionClassifier runs with the learners' thread count
        "train --fusion deep": [*cli, "train", str(features), "--fusion", "deep", "--manifest",
                                str(args.out / "demo" / "cohort" / "manifest.csv"), "--epochs", "5",
                                "-o", str(args.out / "deep.joblib")],
    }
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for condition in ("idle", "one core busy"):
        for name, cmd in commands.items():
            best = (float("inf"), float("inf"))
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
            print(f"{condition:>14}  {name:<22} {best[0]:7.1f} s wall {best[1]:7.1f} s CPU", file=sys.stderr, flush=True)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores, load average {os.getloadavg()[0]:.1f}; "
          f"env {' '.join(args.env) or '(none)'}{'; PYTHONPATH ' + args.pythonpath if args.pythonpath else ''}")
    print("wall and CPU (user + system) seconds; CPU beyond the work itself is threads spinning")
    print(f"{'command':<22} {'idle wall':>10} {'busy wall':>10} {'ratio':>6} {'idle CPU':>9} {'busy CPU':>9}")
    for name, r in results.items():
        (iw, ic), (bw, bc) = r["idle"], r["one core busy"]
        print(f"{name:<22} {iw:9.1f}s {bw:9.1f}s {bw / iw:5.2f}x {ic:8.1f}s {bc:8.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
