"""Disease findings on the synthetic disease model: cavity detection and fibrosis extent.

    python benchmarks/eval_diseases.py --n 300 --seed 9000 -o /work/bench/diseases.md

Per case of ``medfuse.data.synthetic.draw_disease_cases(n, seed)`` its CT
(:func:`medfuse.data.synthetic.disease_phantom`, 48x128x128 at 3.3 x 2.8 x
2.8 mm, exactly what ``synthetic_cohort(task="disease")`` writes) goes
through ``medfuse.segment.lung_mask`` -> ``cavity_candidates`` and
``fibrosis_mask`` / ``fibrosis_extent`` with default parameters.

Criteria. A cavity is found when a candidate's centre lies within its outer
radius (in mm); every other candidate is a false positive (FP/scan over all
scans and over the scans with honeycombing). Fibrosis: Dice of the detected
mask against the painted fibrotic region, on the fibrosis-class scans, and
the absolute error of the fibrotic fraction of the lung (in % of the lung)
per zone and overall on every scan with fibrosis.

The detectors were tuned on ``draw_disease_cases(.., seed=1000)`` (80 and
120 cases); evaluate on other seeds.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np


def evaluate(n: int, seed: int) -> dict[str, float]:
    from medfuse import segment
    from medfuse.data import synthetic

    cases = synthetic.draw_disease_cases(n, seed, "en")
    tp = fn = fp = fp_honey = n_honey = 0
    dices: list[float] = []
    zone_err: list[float] = []
    total_err: list[float] = []
    t_detect = 0.0
    for c in cases:
        ph = synthetic.disease_phantom(c)
        t0 = time.perf_counter()
        lung = segment.lung_mask(ph.volume, spacing=ph.spacing) > 0
        cands = segment.cavity_candidates(ph.volume, lung, spacing=ph.spacing)
        fib = segment.fibrosis_mask(ph.volume, lung, spacing=ph.spacing)
        t_detect += time.perf_counter() - t0
        used: set[int] = set()
        for cav in ph.cavities:
            hits = [i for i, k in enumerate(cands)
                    if np.linalg.norm(np.subtract(k.center_voxel, cav.center) * ph.spacing) <= cav.outer_radius_mm]
            tp += bool(hits)
            fn += not hits
            used.update(hits[:1])
        extra = len(cands) - len(used)
        fp += extra
        if c.honeycombing:
            n_honey += 1
            fp_honey += extra
        if c.fibrosis > 0:
            truth = ph.fibrosis_mask
            if c.disease == "fibrosis":
                dices.append(2 * np.count_nonzero(truth & fib) / (truth.sum() + fib.sum()))
            det = segment.zone_fractions(fib, lung)
            ref = segment.zone_fractions(truth, lung)
            zone_err += [100 * abs(det[z] - ref[z]) for z in segment.ZONES]
            total_err.append(100 * abs(fib[lung].mean() - truth[lung].mean()))
    return {
        "scans": len(cases), "cavities": tp + fn, "sensitivity": tp / max(1, tp + fn), "fp_per_scan": fp / len(cases),
        "honeycomb_scans": n_honey, "fp_per_honeycomb_scan": fp_honey / max(1, n_honey),
        "fibrosis_scans": len(dices), "dice_mean": float(np.mean(dices)), "dice_min": float(np.min(dices)),
        "zone_abs_err_pct": float(np.mean(zone_err)), "total_abs_err_pct": float(np.mean(total_err)),
        "detect_s_per_scan": t_detect / len(cases),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=9000)
    ap.add_argument("-o", "--out", type=Path, default=None)
    args = ap.parse_args(argv)
    r = evaluate(args.n, args.seed)
    lines = [
        f"## Disease findings (seed {args.seed}, {r['scans']} scans; {platform.processor() or platform.machine()})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| cavity sensitivity | {r['sensitivity']:.3f} ({r['cavities']} cavities) |",
        f"| cavity FP/scan (all scans) | {r['fp_per_scan']:.2f} |",
        f"| cavity FP/scan (scans with honeycombing, {r['honeycomb_scans']}) | {r['fp_per_honeycomb_scan']:.2f} |",
        f"| fibrosis Dice, fibrosis class ({r['fibrosis_scans']} scans) | mean {r['dice_mean']:.3f}, min {r['dice_min']:.3f} |",
        f"| fibrosis extent abs. error, per zone / whole lung | {r['zone_abs_err_pct']:.2f} % / {r['total_abs_err_pct']:.2f} % |",
        f"| detection time per scan (lungs + cavities + fibrosis) | {r['detect_s_per_scan']:.3f} s |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
