"""Test ordering on the synthetic cohort: learned policies vs fixed ones, held out; agent training times.

    python benchmarks/eval_acquire.py --n 500 --cache features500.parquet --agents q,pg,dqn

Writes (or reads back, with --cache) the extracted feature table of
``synthetic_cohort(n, task="disease", seed=0)`` (4 classes), runs
``evaluate_acquisition`` (5 folds, the default costs of the table's
modalities: audio 0.5, X-ray 1, CT 5, report 20; λ in --lams), prints the
table as Markdown, the targets (a learned policy within 0.01 of the
all-tests AUC at <= 60 % of its mean cost; at every λ, each agent's point
against the fixed policies' cost-accuracy front and its held-out reward
against the best fixed policy's), and the time to train each agent on all
n patients.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def features(n: int, cache: Path | None, task: str = "disease") -> pd.DataFrame:
    if cache is not None and cache.exists():
        return pd.read_parquet(cache)
    from medfuse.data import Cohort, synthetic_cohort
    from medfuse.extract import CohortFeatures, extract_cohort

    with tempfile.TemporaryDirectory() as tmp:
        synthetic_cohort(n, task=task, seed=0, out_dir=Path(tmp) / "cohort")
        cohort = Cohort.from_csv(Path(tmp) / "cohort" / "manifest.csv", cache_size=0)
        frame = extract_cohort(cohort, CohortFeatures(), workers=1, progress=False).features
    if cache is not None:
        frame.to_parquet(cache)
    return frame


def front_accuracy(front: pd.DataFrame, cost: float) -> float:
    """Best accuracy a fixed policy reaches at a mean cost <= cost."""
    ok = front[front["mean_cost"] <= cost + 1e-9]
    return float(ok["accuracy"].max()) if len(ok) else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--agents", default="q,pg,dqn")
    ap.add_argument("--lams", default=None, help="default: evaluate_acquisition's")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--task", default="disease", choices=("disease", "malignancy"))
    args = ap.parse_args()
    from medfuse.learn.acquire import AcquisitionEnv, evaluate_acquisition, make_agent, subset_probabilities
    from medfuse.learn.acquire.evaluate import DEFAULT_LAMS
    from medfuse.learn.acquire.problem import DEFAULT_COSTS, table_modalities

    frame = features(args.n, args.cache, args.task)
    costs = {m: DEFAULT_COSTS[m] for m in table_modalities(frame) if m in DEFAULT_COSTS}
    agents = [a for a in args.agents.split(",") if a]
    lams = [float(x) for x in args.lams.split(",")] if args.lams else list(DEFAULT_LAMS)
    t0 = time.perf_counter()
    ev = evaluate_acquisition(frame, costs, lams=lams, agents=agents, agent_params={"dqn": {"n_threads": 1}},
                              folds=args.folds, seed=0)
    total = time.perf_counter() - t0
    t = ev.table
    print(f"{len(frame)} patients (task {args.task}), {args.folds} folds, costs {costs}, {total:.0f} s in all\n")
    print("| policy | λ | AUC | accuracy | mean cost | reward | tests | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in t.itertuples():
        fit = "" if not np.isfinite(r.fit_seconds) else f"{r.fit_seconds:.1f}"
        print(f"| {r.policy} | {r.lam:g} | {r.auc:.3f} | {r.accuracy:.3f} | {r.mean_cost:.2f} | {r.reward:.3f} | "
              f"{r.n_tests:.2f} | {fit} |")
    allt = t[t["policy"] == "all tests"].iloc[0]
    print(f"\nall tests: AUC {allt['auc']:.3f}, mean cost {allt['mean_cost']:.2f}")
    learned = t[t["kind"] == "agent"]
    hits = learned[(learned["auc"] >= allt["auc"] - 0.01) & (learned["mean_cost"] <= 0.6 * allt["mean_cost"])]
    print(f"learned policies within 0.01 AUC at <= 60% cost: {len(hits)} of {len(learned)}: "
          + ", ".join(f"{r.policy} λ={r.lam:g} (AUC {r.auc:.3f}, cost {r.mean_cost:.2f})" for r in hits.itertuples()))
    print("\n| agent | λ | reward | best fixed (as evaluated) | reward | threshold rule (tuned on train) | "
          "accuracy vs fixed front at its cost |")
    print("|---|---|---|---|---|---|---|")
    for r in learned.itertuples():
        name, best = ev.best_fixed(r.lam)
        thr = t[(t["policy"] == "threshold rule") & (t["lam"] == r.lam)]
        thr_r = float(thr["reward"].iloc[0]) if len(thr) else float("nan")
        fa = front_accuracy(ev.front, r.mean_cost)
        print(f"| {r.policy} | {r.lam:g} | {r.reward:.3f} | {name} | {best:.3f} | {thr_r:.3f} | {r.accuracy:.3f} vs {fa:.3f} |")
    for name in agents:
        a = learned[learned["policy"] == name]
        below = [f"{r.lam:g}" for r in a.itertuples() if r.accuracy < front_accuracy(ev.front, r.mean_cost)]
        print(f"{name}: on or above the fixed policies' front at every λ: {'yes' if not below else 'no (λ ' + ', '.join(below) + ')'}")
    lam_fit = max(lams)
    print(f"\ntraining on all {len(frame)} patients (one fit, λ = {lam_fit:g}, expected reward):")
    train, _ = subset_probabilities(frame, modalities=list(costs), seed=0)
    for name in agents:
        env = AcquisitionEnv(train, costs, lam_fit, reward="expected")
        t1 = time.perf_counter()
        make_agent(name, seed=0, **({"n_threads": 1} if name == "dqn" else {})).fit(env)
        print(f"  {name}: {time.perf_counter() - t1:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
