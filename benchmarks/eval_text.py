"""Report text features: which ReportVectorizer configuration classifies reports best (AUC, 5-fold).

    python benchmarks/eval_text.py [--n 600] [--seed 0] [--open-i NLMCXR_reports.tgz] [-o text.md]

Every configuration feeds the same classifier, scikit-learn's
``LogisticRegression(max_iter=5000)``, in a ``Pipeline`` refitted on each
training fold (the vocabulary, IDF and word vectors never see the test
fold); folds are ``StratifiedKFold(5, shuffle=True, random_state=seed)``.
The baseline is plain scikit-learn ``TfidfVectorizer()`` on the raw text.

Corpora:

1. ``synthetic``: the reports of :func:`medfuse.data.synthetic` cases
   (English, Chinese, mixed), label = malignant.
2. ``templated``: the templated multi-finding corpus of
   ``benchmarks/eval_annotate.py`` (each finding present, absent or hedged;
   "No A, B or C." lists), label = one finding present; negation decides it.
3. ``open-i`` (only with ``--open-i``): the Open-I / Indiana University
   reports (:func:`medfuse.data.open_i`, unlabelled reports dropped),
   label = abnormal (MeSH major terms other than "normal").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def configurations(seed: int) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from medfuse.features import ReportVectorizer

    def rv(**kw: Any) -> Any:
        return ReportVectorizer(seed=seed, **kw)

    return {
        "plain TF-IDF (sklearn defaults)": TfidfVectorizer(),
        "sklearn TF-IDF, 1-2 grams, sublinear": TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        "RV word2vec only (old default)": rv(tfidf=False),
        "RV w2v + TF-IDF 1-gram, 100 terms (old evaluate)": rv(ngram_range=(1, 1), sublinear_tf=False, max_features=100),
        "RV w2v + TF-IDF 1-gram, raw tf": rv(ngram_range=(1, 1), sublinear_tf=False),
        "RV w2v + TF-IDF 1-gram, sublinear (new default)": rv(),
        "RV w2v + TF-IDF 1-2 gram, sublinear": rv(ngram_range=(1, 2)),
        "RV w2v + TF-IDF 1-3 gram, sublinear": rv(ngram_range=(1, 3)),
        "RV new default, no negation marks": rv(negation=False),
    }


def corpora(n: int, seed: int, open_i: Path | None) -> dict[str, tuple[list[str], np.ndarray]]:
    from medfuse.data import synthetic

    out = {}
    for lang in ("en", "zh", "mixed"):
        cases = synthetic.draw_cases(n, seed, lang)
        out[f"synthetic {lang}"] = ([synthetic.write_report(c) for c in cases], np.array([c.label for c in cases]))
    sys.path.insert(0, str(HERE))
    from eval_annotate import labelled_corpus

    for lang in ("en", "zh"):
        texts, truth = labelled_corpus(n, seed, lang)
        rates = {f: float((truth[f] == 1).mean()) for f in truth.columns}
        finding = min(rates, key=lambda f: abs(rates[f] - 0.3))
        out[f"templated {lang} ({finding})"] = (texts, (truth[finding] == 1).to_numpy().astype(int))
    if open_i is not None:
        from medfuse.data import open_i as load

        cohort = load(open_i, unlabelled="drop")
        has = cohort.has("report")
        texts = [cohort[p].report for p in cohort.patient_ids if has[p]]
        labels = cohort.labels[has.to_numpy()].to_numpy().astype(int)
        out[f"Open-I ({len(texts)} reports)"] = (texts, labels)
    return out


def evaluate(n: int, seed: int, open_i: Path | None) -> list[dict[str, Any]]:
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rows = []
    for cname, (texts, y) in corpora(n, seed, open_i).items():
        folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
        for name, vec in configurations(seed).items():
            t0 = time.perf_counter()
            aucs = []
            for tr, te in folds:
                v = clone(vec)
                Xtr = v.fit_transform([texts[i] for i in tr])
                clf = LogisticRegression(max_iter=5000).fit(Xtr, y[tr])
                p = clf.predict_proba(v.transform([texts[i] for i in te]))[:, 1]
                aucs.append(roc_auc_score(y[te], p))
            rows.append({"corpus": cname, "configuration": name, "auc": float(np.mean(aucs)),
                         "std": float(np.std(aucs)), "seconds": time.perf_counter() - t0})
            print(f"{cname:32s} {name:52s} AUC {np.mean(aucs):.4f} ± {np.std(aucs):.4f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="reports per synthetic/templated corpus")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--open-i", type=Path, default=None, help="NLMCXR_reports.tgz or its folder")
    ap.add_argument("-o", "--output", type=Path, default=None, help="write the table as Markdown")
    args = ap.parse_args(argv)
    rows = evaluate(args.n, args.seed, args.open_i)
    lines = ["| corpus | configuration | AUC (5-fold mean ± sd) |", "|---|---|---|"]
    lines += [f"| {r['corpus']} | {r['configuration']} | {r['auc']:.4f} ± {r['std']:.4f} |" for r in rows]
    if args.output is not None:
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
