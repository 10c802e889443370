"""A small multi-class feature table whose Bayes-optimal class probabilities are known exactly.

Four classes (the disease cohort's names) with priors ``PRIORS``. Two image
blocks see complementary halves of the class: ``ct__*`` separates
{normal, lung_cancer} from {tuberculosis, fibrosis}, ``xray__*`` separates
{normal, tuberculosis} from {lung_cancer, fibrosis}; each alone leaves
pairs of classes confused, together they tell all four apart. Each block is
Gaussian with unit covariance around its class mean, so the posterior
p(class | ct, xray) is exact (``p_<class>`` columns of the truth table):
the oracle for the evaluation tests. Reports are short texts that name the class
for half the patients and nothing for the rest (in the posterior too).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

CLASSES = ("normal", "lung_cancer", "tuberculosis", "fibrosis")
PRIORS = np.array([0.4, 0.2, 0.2, 0.2])
# class -> (ct bit, xray bit): the two halves of the class
BITS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
SHIFT = 2.5  # mean distance along the informative direction of each block
WORDS = {"normal": "clear lungs", "lung_cancer": "spiculated mass", "tuberculosis": "upper lobe cavity",
         "fibrosis": "basal honeycombing"}


def multiclass_table(n: int = 120, seed: int = 0, *, reports: bool = True) -> tuple[pd.DataFrame, SimpleNamespace]:
    """(feature table, a stand-in cohort whose ``truth`` holds the exact posteriors), string labels."""
    rng = np.random.default_rng(seed)
    # at least 5 patients per class whatever n, then the priors
    y = np.concatenate([np.repeat(np.arange(4), 5), rng.choice(4, size=n - 20, p=PRIORS)])
    rng.shuffle(y)
    ct = rng.normal(size=(n, 3))
    xr = rng.normal(size=(n, 2))
    ct[:, 0] += SHIFT * BITS[y, 0]
    xr[:, 0] += SHIFT * BITS[y, 1]
    # exact posterior: only the informative coordinates differ between classes
    loglik = np.stack([-0.5 * (ct[:, 0] - SHIFT * BITS[c, 0]) ** 2 - 0.5 * (xr[:, 0] - SHIFT * BITS[c, 1]) ** 2
                       for c in range(4)], axis=1) + np.log(PRIORS)
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    ids = [f"P{i:03d}" for i in range(n)]
    frame = pd.DataFrame({"patient_id": ids, "label": np.array(CLASSES)[y]})
    for j in range(ct.shape[1]):
        frame[f"ct__f{j}"] = ct[:, j]
    for j in range(xr.shape[1]):
        frame[f"xray__f{j}"] = xr[:, j]
    if reports:  # half the reports name the class (then the posterior is certain), the rest say nothing
        said = rng.random(n) < 0.5
        frame["report"] = [f"chest ct report {WORDS[CLASSES[y[i]]] if said[i] else 'see images'} no acute change"
                           for i in range(n)]
        post[said] = np.eye(4)[y[said]]
    truth = pd.DataFrame({f"p_{c}": post[:, j] for j, c in enumerate(CLASSES)}, index=pd.Index(ids, name="patient_id"))
    truth["disease"] = frame["label"].to_numpy()
    return frame, SimpleNamespace(truth=truth)
