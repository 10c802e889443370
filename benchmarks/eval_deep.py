"""Deep fusion learning curve on the synthetic disease cohort: deep vs the best classical fusion vs the oracle.

    python benchmarks/eval_deep.py --n 200,500,1000 [--seed 0] [--cache-dir DIR] [--threads 2] [--learner-threads 2]

For each n: ``synthetic_cohort(n, seed=S, task="disease")`` (4 classes; S =
--seed, 0 for the reported curve, other seeds to make design choices on),
its feature table (``CohortFeatures``, cached as ``features<n>.parquet``, or
``features<n>_seed<S>.parquet`` for S != 0, under --cache-dir), then
``cross_validate(..., folds=5, seed=S, cohort=...,
deep=DeepFusionClassifier(random_state=S))``: every model on
the same stratified folds; macro one-vs-rest AUC, mean ± std over folds.
Prints a Markdown table (n, best classical fusion, deep fusion, oracle,
deep minus best classical, deep fit time per fold) and the CPU model.
Issue 15's targets: deep >= best classical at n = 200, deep >= 0.92 at n = 1000.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _machine import cpu_name  # benchmarks/ (the script's folder) is on sys.path


def features(cohort: object, n: int, cache_dir: Path | None, workers: int, seed: int = 0) -> pd.DataFrame:
    name = f"features{n}.parquet" if seed == 0 else f"features{n}_seed{seed}.parquet"
    path = None if cache_dir is None else cache_dir / name
    if path is not None and path.exists():
        return pd.read_parquet(path)
    from medfuse.extract import CohortFeatures, extract_cohort

    frame = extract_cohort(cohort, CohortFeatures(), workers=workers, progress=False).features  # type: ignore[arg-type]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path)
    return frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="200,500,1000", help="cohort sizes, comma-separated")
    ap.add_argument("--seed", type=int, default=0,
                    help="cohort, fold and model seed (0: the reported curve; make design choices on others)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="keep the feature tables here")
    ap.add_argument("--threads", type=int, default=None, help="medfuse.set_num_threads (default: all cores)")
    ap.add_argument("--learner-threads", type=int, default=None,
                    help="medfuse.set_learner_threads: the deep model's torch threads and the classical learners' "
                         "BLAS/OpenMP threads, capped at --threads (default: medfuse's, 1)")
    args = ap.parse_args(argv)

    import medfuse
    from medfuse.data import synthetic_cohort
    from medfuse.kernels._threads import learner_threads
    from medfuse.learn import cross_validate
    from medfuse.learn.deep import DeepFusionClassifier

    if args.threads:
        medfuse.set_num_threads(args.threads)
    if args.learner_threads:
        medfuse.set_learner_threads(args.learner_threads)
    threads = medfuse.get_num_threads()
    rows = []
    fit_times: list[float] = []

    class Timed(DeepFusionClassifier):  # type: ignore[misc]
        """Records each fit's wall time in fit_times."""

        def fit(self, X: object, y: object = None) -> DeepFusionClassifier:
            t0 = time.perf_counter()
            out = super().fit(X, y)
            fit_times.append(time.perf_counter() - t0)
            return out

    for n in (int(v) for v in args.n.split(",")):
        cohort = synthetic_cohort(n, seed=args.seed, task="disease")
        frame = features(cohort, n, args.cache_dir, threads, args.seed)
        fit_times.clear()
        t0 = time.perf_counter()
        ev = cross_validate(frame, folds=5, seed=args.seed, cohort=cohort, deep=Timed(random_state=args.seed))
        total = time.perf_counter() - t0
        t = ev.table.set_index("model")
        classical = t[(t["kind"] == "fusion") & (t.index != "deep fusion")]
        best = classical["auc_mean"].idxmax()
        oracle = t[t["kind"] == "oracle"]
        deep = t.loc["deep fusion"]
        rows.append({
            "n": n, "best classical fusion": f"{best} {classical.loc[best, 'auc_mean']:.3f} ± {classical.loc[best, 'auc_std']:.3f}",
            "deep fusion": f"{deep['auc_mean']:.3f} ± {deep['auc_std']:.3f}",
            "oracle": f"{oracle['auc_mean'].iloc[0]:.3f}" if len(oracle) else "-",
            "deep - best classical": f"{deep['auc_mean'] - classical.loc[best, 'auc_mean']:+.3f}",
            "deep fit s/fold": f"{np.mean(fit_times):.1f}", "cross_validate s": f"{total:.0f}",
        })
        print(ev.format_table(), flush=True)
        print(flush=True)
    out = pd.DataFrame(rows)
    print(f"macro AUC, 5-fold CV (same folds for every model), synthetic disease cohort (4 classes), seed {args.seed}; "
          f"{cpu_name()}, {threads} kernel thread(s), {learner_threads()} learner thread(s) "
          "(torch and BLAS/OpenMP)\n")
    cols = list(out.columns)
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for _i, r in out.iterrows():
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
