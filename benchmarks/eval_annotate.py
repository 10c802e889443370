"""Report labeler evaluation: per-finding precision, recall and F1 of "present".

    python benchmarks/eval_annotate.py --n 1000 --seed 0 -o annotate.md

Two sources of truth, each in English and in Chinese:

1. ``medfuse.data.synthetic_cohort(n, seed, lang)``: ``cohort.truth``
   mapped to findings by ``medfuse.annotate.synthetic_truth`` (today's
   lung-nodule model: a nodule in every case, never an effusion or a
   pneumothorax; findings its truth table does not record are not scored).
2. A templated corpus (:func:`labelled_corpus`, this file): reports of 2-6
   statements, each a finding asserted present, absent or hedged with the
   phrasings below, the truth aggregated as CheXpert does (present >
   uncertain > absent). The phrasings were written for this evaluation
   by the author of the dictionaries, so it measures whether the rules
   hold together (scopes across lists, several sentences, "no new" vs
   "stable"), not how they generalise to real reports.

Real English reports with human annotations: ``--open-i NLMCXR_reports.tgz``
scores the labeler against the Open-I/IU MeSH <major> tags
(``medfuse.annotate.mesh_truth``; a finding not tagged counts as absent),
only the findings the tags name.

Beside each score: the keyword baseline (a phrase seen = present; no
negation, no hedges) on the same reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from medfuse.annotate import (
    keyword_labels,
    label_reports,
    mesh_truth,
    score_assertions,
    score_labels,
    synthetic_truth,
)
from medfuse.data import synthetic

# finding -> (English forms, Chinese forms)
FORMS: dict[str, tuple[list[str], list[str]]] = {
    "pleural_effusion": (["pleural effusion", "effusion", "pleural fluid"], ["胸腔积液", "积液", "胸水"]),
    "pneumothorax": (["pneumothorax"], ["气胸"]),
    "consolidation": (["consolidation", "airspace consolidation"], ["实变", "实变影"]),
    "atelectasis": (["atelectasis", "subsegmental atelectasis"], ["肺不张", "膨胀不全"]),
    "edema": (["pulmonary edema", "interstitial edema"], ["肺水肿"]),
    "cardiomegaly": (["cardiomegaly", "cardiac enlargement"], ["心影增大", "心脏增大"]),
    "pneumonia": (["pneumonia", "bronchopneumonia"], ["肺炎"]),
    "nodule": (["nodule", "pulmonary nodule", "micronodule"], ["结节", "小结节"]),
    "mass": (["mass", "tumor"], ["肿块", "占位"]),
    "cavity": (["cavity", "cavitation", "thick-walled cavity"], ["空洞", "厚壁空洞"]),
    "tree_in_bud": (["tree-in-bud opacities", "tree-in-bud nodularity"], ["树芽征", "树芽状改变"]),
    "calcified_granuloma": (["calcified granuloma", "granuloma"], ["钙化肉芽肿"]),
    "reticulation": (["reticulation", "reticular opacities"], ["网格影", "网状影"]),
    "honeycombing": (["honeycombing", "honeycomb change"], ["蜂窝影", "蜂窝状改变"]),
    "traction_bronchiectasis": (["traction bronchiectasis"], ["牵拉性支气管扩张"]),
    "fracture": (["rib fracture", "fracture"], ["肋骨骨折", "骨折"]),
    "emphysema": (["emphysema", "centrilobular emphysema"], ["肺气肿"]),
}
LOC_EN = ["right upper lobe", "left lower lobe", "right lung base", "left apex", "lingula", "both lower lobes"]
LOC_ZH = ["右肺上叶", "左肺下叶", "右肺下叶", "左肺尖", "双肺下叶", "右肺中叶"]
EN = {
    1: ["{X} in the {loc}.", "There is {X} in the {loc}.", "{Loc}: {X}.", "Stable {X} in the {loc}.",
        "Redemonstrated {X}.", "{X} is present in the {loc}, unchanged from the prior study.",
        "No interval change in the {X}.", "Small {X} is noted."],
    0: ["No {X}.", "There is no {X}.", "No evidence of {X}.", "{X} is not seen.", "Without {X}.",
        "No new {X}.", "The previously seen {X} has resolved.", "Negative for {X}."],
    -1: ["Possible {X} in the {loc}.", "{X} cannot be excluded.", "Findings may represent {X}.",
         "Suspicious for {X}.", "Questionable {X} in the {loc}.", "Cannot exclude {X}.", "Probable {X}."],
}
ZH = {
    1: ["{loc}见{X}。", "{loc}可见{X}。", "{loc}{X}。", "{loc}{X}，较前相仿。", "{X}，与前片比较无明显变化。"],
    0: ["未见{X}。", "{loc}未见明显{X}。", "无{X}。", "{X}已吸收。", "未见新发{X}。"],
    -1: ["{loc}{X}可能。", "考虑{X}。", "不除外{X}。", "疑似{X}。", "{loc}可疑{X}。"],
}


def labelled_corpus(n: int, seed: int, lang: str) -> tuple[list[str], pd.DataFrame]:
    """n templated reports and their truth (1 / 0 / -1 / NaN per finding)."""
    rng = np.random.default_rng([seed, 23, 0 if lang == "en" else 1])
    names = list(FORMS)
    texts, rows = [], []
    for _ in range(n):
        k = int(rng.integers(2, 7))
        chosen = rng.choice(len(names), size=k, replace=False)
        parts, row = [], {}
        for j in chosen:
            f = names[int(j)]
            status = int(rng.choice([1, 0, -1], p=[0.45, 0.4, 0.15]))
            forms = FORMS[f][0 if lang == "en" else 1]
            x = forms[int(rng.integers(len(forms)))]
            templates = (EN if lang == "en" else ZH)[status]
            t = templates[int(rng.integers(len(templates)))]
            locs = LOC_EN if lang == "en" else LOC_ZH
            loc = locs[int(rng.integers(len(locs)))]
            s = t.format(X=x, loc=loc, Loc=loc.capitalize())
            parts.append(s[0].upper() + s[1:] if lang == "en" else s)
            row[f] = status
        if lang == "en" and rng.random() < 0.3:  # a negated list: "No A, B or C."
            neg = [f for f in names if f not in row][:3]
            picks = [FORMS[f][0][0] for f in neg]
            parts.append(f"No {picks[0]}, {picks[1]} or {picks[2]}.")
            row.update({f: 0 for f in neg})
        if lang == "zh" and rng.random() < 0.3:
            neg = [f for f in names if f not in row][:3]
            parts.append("未见" + "、".join(FORMS[f][1][0] for f in neg) + "。")
            row.update({f: 0 for f in neg})
        texts.append((" " if lang == "en" else "").join(parts))
        rows.append(row)
    truth = pd.DataFrame(rows, columns=names).astype(float)
    return texts, truth


def _cohort_reports(n: int, seed: int, lang: str) -> tuple[list[str], pd.DataFrame]:
    cases = synthetic.draw_cases(n, seed, lang)
    truth = pd.DataFrame([{"diameter_mm": c.diameter_mm} for c in cases])
    return [synthetic.write_report(c) for c in cases], synthetic_truth(truth)


def _table(title: str, texts: list[str], truth: pd.DataFrame, *, exact: bool = True) -> list[str]:
    ours = score_labels(label_reports(texts), truth)
    base = score_labels(keyword_labels(texts), truth)
    lines = [f"### {title}", "",
             "| finding | reports | present | precision | recall | F1 | keyword P | keyword R | keyword F1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(v: float) -> str:
        return "–" if np.isnan(v) else f"{v:.3f}"

    for f in ours.index:
        o, b = ours.loc[f], base.loc[f]
        note = "" if o["positives"] else f" (no positives; FP {int(o['fp'])} vs keyword {int(b['fp'])})"
        lines.append(f"| {f}{note} | {int(o['n'])} | {int(o['positives'])} | {fmt(o['precision'])} | "
                     f"{fmt(o['recall'])} | {fmt(o['f1'])} | {fmt(b['precision'])} | {fmt(b['recall'])} | "
                     f"{fmt(b['f1'])} |")
    scored = ours[ours["positives"] > 0]
    if len(scored):
        lines.append(f"| **macro (findings with positives)** | | | {scored['precision'].mean():.3f} | "
                     f"{scored['recall'].mean():.3f} | {scored['f1'].mean():.3f} | "
                     f"{base.loc[scored.index, 'precision'].mean():.3f} | "
                     f"{base.loc[scored.index, 'recall'].mean():.3f} | {base.loc[scored.index, 'f1'].mean():.3f} |")
    lines.append("")
    if exact:  # the templates know what each report states; the cohort truth knows the patient only
        pred = label_reports(texts)[truth.columns]
        known = truth.notna().to_numpy()
        agree = float((pred.to_numpy()[known] == truth.to_numpy()[known]).mean())
        lines += [f"Exact agreement on the stated value (1 / 0 / -1) of every finding a report mentions: "
                  f"{agree:.3f} ({int(known.sum())} report-finding pairs).", ""]
    return lines


def _stated_table(n: int, seed: int, lang: str) -> list[str]:
    """Disease-model reports against what each one states (recorded by the generator, sentence by sentence)."""
    cases = synthetic.draw_disease_cases(n, seed, lang)
    written = [synthetic.disease_report(c) for c in cases]
    texts = [t for t, _ in written]
    findings = list(synthetic.STATED_FINDINGS)
    stated = pd.DataFrame([{f: s.get(f, np.nan) for f in findings} for _, s in written], columns=findings)
    ours = score_assertions(label_reports(texts, findings, lang=lang), stated)
    base = score_assertions(keyword_labels(texts, findings), stated)

    def fmt(v: float) -> str:
        return "–" if np.isnan(v) else f"{v:.3f}"

    present = stated == 1
    latent = synthetic_truth(pd.DataFrame([c.__dict__ for c in cases]).assign(
        cavity=[c.n_cavities > 0 for c in cases], calcified_granuloma=[c.n_granulomas > 0 for c in cases],
        reticulation=[c.fibrosis > 0 for c in cases], pleural_effusion=[c.effusion for c in cases]))
    lines = [f"### Disease-model reports, {lang}: against what each report states", "",
             "Stated labels: 1 present / 0 negated / -1 hedged / NaN not mentioned, recorded per sentence by "
             "`synthetic.disease_report` (the labeler's rules are not used). F1 of each value as a class; "
             "agreement = exact match of 1/0/-1/NaN; the keyword baseline can only say 1 or NaN. "
             "'stated ≠ latent' counts reports whose stated-present value differs from the case's latent finding "
             "(missed, invented or hedged by the simulated radiologist).", "",
             "| finding | present | absent | uncertain | F1 present | F1 absent | F1 uncertain | agreement | "
             "keyword F1 present | keyword agreement | stated ≠ latent |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in findings:
        o, b = ours.loc[f], base.loc[f]
        diff = int((present[f].to_numpy() != (latent[f] == 1).to_numpy()).sum()) if f in latent.columns else None
        lines.append(f"| {f} | {int(o['present'])} | {int(o['absent'])} | {int(o['uncertain'])} | "
                     f"{fmt(o['f1_present'])} | {fmt(o['f1_absent'])} | {fmt(o['f1_uncertain'])} | "
                     f"{o['agreement']:.3f} | {fmt(b['f1_present'])} | {b['agreement']:.3f} | "
                     f"{'–' if diff is None else diff} |")
    lines.append("")
    return lines


def open_i_table(path: Path) -> list[str]:
    """The labeler and the keyword baseline on the real Open-I/IU reports against their MeSH <major> tags."""
    from medfuse.data.datasets import open_i

    frame = open_i(path, unlabelled="drop").frame
    frame = frame[frame["report"].notna()].reset_index(drop=True)
    truth = mesh_truth(frame)
    keep = truth.notna().all(axis=1)
    frame, truth = frame[keep].reset_index(drop=True), truth[keep].reset_index(drop=True)
    findings = [f for f in truth.columns if truth[f].sum() > 0]
    return _table(f"Open-I/IU reports, en ({len(frame)} with MeSH tags; truth: MeSH <major> headings)",
                  list(frame["report"]), truth[findings], exact=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, default=None)
    ap.add_argument("--open-i", type=Path, default=None,
                    help="NLMCXR_reports.tgz (or its folder): also score real English reports against their MeSH tags")
    ap.add_argument("--real-only", action="store_true", help="with --open-i: skip the synthetic tables")
    args = ap.parse_args(argv)
    lines = [f"## Report labeling (medfuse.annotate, n={args.n} per table, seed={args.seed})", "",
             "Generated by `benchmarks/eval_annotate.py`; precision/recall/F1 of *present* (1) per finding "
             "(uncertain and not mentioned count as not present). The templated corpus was written by the author of the dictionaries: "
             "it checks that the rules hold together (scopes over lists, several sentences, \"no new\" vs "
             "\"stable\", hedges), not how they generalise to real reports.", ""]
    if args.open_i is not None:
        lines += open_i_table(args.open_i)
    for lang in (() if args.real_only else ("en", "zh")):
        texts, truth = _cohort_reports(args.n, args.seed, lang)
        lines += _table(f"Synthetic cohort reports, {lang} (truth: `cohort.truth`)", texts, truth, exact=False)
    for lang in (() if args.real_only else ("en", "zh")):
        lines += _stated_table(args.n, args.seed, lang)
    for lang in (() if args.real_only else ("en", "zh")):
        texts, truth = labelled_corpus(args.n, args.seed, lang)
        lines += _table(f"Templated labelled corpus, {lang} (truth: the templates)", texts, truth)
    text = "\n".join(lines) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
