"""The generative models behind :func:`medfuse.data.synthetic_cohort`.

The lung-nodule model (``task="malignancy"``)
--------------------------------------------

Latent factors per case (the ground-truth table returned as ``cohort.truth``):

- ``diameter_mm``: nodule diameter, log-normal (median 11 mm), clipped to
  [5, 30] mm.
- ``density``: "solid" (p=0.6, +30 HU), "part-solid" (0.25, about -300 HU),
  "ground-glass" (0.15, about -600 HU); solid nodules are ``calcified``
  with p=0.2 (+350 HU, a strong benign sign).
- ``spiculation``: margin irregularity in [0, 1] (Beta(1.3, 1.3));
  ``margin`` is its tercile: smooth / lobulated / spiculated.
- ``growth``: standardised interval growth against a (fictional) prior,
  N(0, 1).
- ``lobe``: RUL, RML, RLL, LUL, LLL (upper lobes slightly more suspicious).

Malignancy: ``logit = -1.0 + 4.5 log(d/11) + 4.0 (2 s - 1) + 2.0 g
+ 3.0 [part-solid] + 1.6 [ground-glass] - 6.0 [calcified] + 0.6 [upper lobe]``
and ``label ~ Bernoulli(sigmoid(logit))`` (1 = malignant, 0 = benign).

What each modality sees (partly, noisily), so that fusion genuinely helps:

- CT (48 x 128 x 128, 3.3 x 2.8 x 2.8 mm): size and density precisely
  (nodule voxels and HU), the margin only coarsely (spicules are about a
  voxel wide), growth not at all.
- X-ray (projection of the same volume): size and calcification coarsely
  (the nodule is a faint blob over vessels and ribs; ground glass is nearly
  invisible), margin and growth not at all.
- Report: the radiologist's measured size (+-30 % noise, rounded, sometimes
  in cm), margin words that are right 65 % of the time (adjacent category
  otherwise), density (15 %) and calcification (25 %) mentioned only sometimes, growth
  statements ("increased in size" / "stable") when growth is marked, and an
  impression whose hedge ("suspicious for", "cannot exclude", "likely
  benign", "no evidence of malignancy") follows the radiologist's own noisy
  reading of the case.

The disease model (``synthetic_cohort(task="disease")``)
--------------------------------------------------------

Classes (``DISEASE_CLASSES``) with prevalence normal 0.40, lung_cancer 0.25,
tuberculosis 0.20, fibrosis 0.15. A diseased case has a severity 1-3
(p = 0.40, 0.35, 0.25); normal cases have severity 0. Given the class and
the severity, the latent findings are drawn independently:

- ``nodule`` (present: always in lung cancer, with p = 0.3 in the other
  classes as a benign confounder). Malignant nodules: diameter log-normal
  (median 12 mm x (1 + 0.25 (severity - 1)), sigma 0.35), density
  solid/part-solid/ground-glass 0.55/0.30/0.15, calcified 3 % of solid ones,
  spiculation Beta(2.5, 1.5), growth N(1, 1), lobe like today's model;
  benign: median 8 mm (sigma 0.3), 0.80/0.08/0.12, calcified 35 %,
  Beta(1.2, 2.5), N(-0.2, 0.8), any lobe alike.
- ``n_cavities`` (thick-walled, upper lobes): min(Poisson(rate), 3), rate
  0.8/1.6/2.4 by severity in tuberculosis, 0.06 in lung cancer
  (cavitating carcinoma), 0.02 fibrosis, 0.01 normal.
- ``tree_in_bud`` micronodules, ``consolidation`` (upper lobes),
  ``effusion`` (pleural), ``active_infection`` (coarse crackles only),
  ``airway_narrowing`` (a bronchus narrowed by the tumour: wheeze only):
  Bernoulli per class and severity (table ``_BERNOULLI``); e.g.
  tree-in-bud 0.35/0.6/0.8 in tuberculosis, 0.02-0.03 elsewhere.
- ``n_granulomas`` (calcified): min(Poisson(1.2 TB, 0.3 others), 3).
- ``fibrosis`` extent, the fraction of the lower zones' lung that is
  fibrotic (basal, subpleural, reaching higher and deeper as it grows):
  Beta(5, 15) / Beta(9, 11) / Beta(13, 7) by severity in the fibrosis
  class; elsewhere 0, or mild Beta(2, 14) with p = 0.12 (age-related
  interstitial change). ``honeycombing`` and ``traction_bronchiectasis``
  (only where there is fibrosis): 0.25/0.55/0.85 and 0.3/0.5/0.75 in the
  fibrosis class, 0.05 and 0.1 elsewhere. ``volume_loss`` = 0.15 x extent
  (the diaphragm rises; the lungs are shorter).

Oracle. ``p_<class>`` in the truth table is P(class | all the latent
findings above) by Bayes' rule, summing over the unseen severity: what a
perfect observer of every lesion would say; no model of the images, the
reports and the sounds can do better on average.

What each modality sees:

- CT: cavities (air inside a soft-tissue ring), consolidation, calcified
  granulomas, effusion (dependent fluid), the nodule, fibrotic reticulation
  and honeycombing at the bases and the lost volume; tree-in-bud
  micronodules (2-3 mm) only faintly at 2.8 mm voxels; nothing of infection
  activity or airway narrowing.
- X-ray (projection): large opacities, effusion and volume loss coarsely.
- Report: each present finding mentioned with a sensitivity (cavity 0.9,
  tree-in-bud 0.75, effusion 0.85, reticulation rising with the extent,
  honeycombing 0.8 ...), sometimes hedged ("possible", "可能"), absent key
  findings often negated ("No pleural effusion", "未见空洞"), a few false
  mentions, and an impression from the radiologist's noisy reading: vague
  ("clinical correlation recommended") in 12 % of reports, and the class
  named replaced by a random one in 7 % (so some impressions are wrong).
- Lung sounds: fine "velcro" crackles with the fibrosis extent, coarse
  crackles with active infection, wheezes with airway narrowing, diminished
  breath sounds with effusion (:mod:`medfuse.data.auscultation`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LOBES = ("RUL", "RML", "RLL", "LUL", "LLL")
DENSITIES = ("solid", "part-solid", "ground-glass")
MARGINS = ("smooth", "lobulated", "spiculated")
DENSITY_HU = {"solid": 30.0, "part-solid": -300.0, "ground-glass": -600.0}
CALCIFIED_HU = 350.0


@dataclass(frozen=True)
class Case:
    patient_id: str
    label: int
    diameter_mm: float
    density: str
    calcified: bool
    nodule_hu: float
    spiculation: float
    margin: str
    growth: float
    lobe: str
    lang: str
    malignancy_logit: float
    seed: int


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def draw_cases(n: int, seed: int, lang: str) -> list[Case]:
    """Draw n cases' latent factors and labels (deterministic in seed)."""
    rng = np.random.default_rng([seed, 1])
    width = max(3, len(str(n)))
    cases = []
    for i in range(n):
        d = float(np.clip(11.0 * np.exp(rng.normal(0.0, 0.45)), 5.0, 30.0))
        density = str(rng.choice(DENSITIES, p=[0.6, 0.25, 0.15]))
        calcified = density == "solid" and rng.random() < 0.2
        if calcified:
            hu = CALCIFIED_HU + rng.normal(0.0, 60.0)
        else:
            hu = DENSITY_HU[density] + rng.normal(0.0, 40.0)
        s = float(rng.beta(1.3, 1.3))
        margin = MARGINS[min(2, int(s * 3))]
        g = float(rng.normal())
        lobe = str(rng.choice(LOBES, p=[0.3, 0.1, 0.2, 0.25, 0.15]))
        logit = (
            -1.0
            + 4.5 * np.log(d / 11.0)
            + 4.0 * (2 * s - 1)
            + 2.0 * g
            + 3.0 * (density == "part-solid")
            + 1.6 * (density == "ground-glass")
            - 6.0 * calcified
            + 0.6 * (lobe in ("RUL", "LUL"))
        )
        label = int(rng.random() < _sigmoid(float(logit)))
        case_lang = lang if lang in ("en", "zh") else ("en" if rng.random() < 0.5 else "zh")
        cases.append(
            Case(
                patient_id=f"P{i:0{width}d}",
                label=label,
                diameter_mm=round(d, 2),
                density=density,
                calcified=bool(calcified),
                nodule_hu=round(float(hu), 1),
                spiculation=round(s, 4),
                margin=margin,
                growth=round(g, 4),
                lobe=lobe,
                lang=case_lang,
                malignancy_logit=round(float(logit), 4),
                seed=int(rng.integers(0, 2**31 - 1)),
            )
        )
    return cases


# ---------------------------------------------------------------------- reports

_LOBE_EN = {
    "RUL": "right upper lobe",
    "RML": "right middle lobe",
    "RLL": "right lower lobe",
    "LUL": "left upper lobe",
    "LLL": "left lower lobe",
}
_LOBE_ZH = {"RUL": "右肺上叶", "RML": "右肺中叶", "RLL": "右肺下叶", "LUL": "左肺上叶", "LLL": "左肺下叶"}
_MARGIN_EN = {
    "smooth": ["smooth", "well-defined smooth", "well-circumscribed"],
    "lobulated": ["lobulated", "mildly lobulated", "lobulated"],
    "spiculated": ["spiculated", "spiculated", "irregular spiculated"],
}
_MARGIN_ZH = {
    "smooth": ["边缘光滑", "边界清楚，边缘光整", "边缘光滑"],
    "lobulated": ["呈分叶状", "边缘浅分叶", "可见分叶"],
    "spiculated": ["边缘可见毛刺", "可见毛刺征", "边缘毛糙，见短毛刺"],
}
_DENSITY_EN = {"solid": "solid", "part-solid": "part-solid", "ground-glass": "ground-glass"}
_DENSITY_ZH = {"solid": "实性", "part-solid": "部分实性", "ground-glass": "磨玻璃"}


def _article(next_word: str) -> str:
    """'An' before words read with a leading vowel sound (8, 11, 18, 80-89)."""
    number = next_word.split()[0].split(".")[0]
    return "An" if number.startswith("8") or number in ("11", "18") else "A"


def _picker(rng: np.random.Generator) -> Callable[[Sequence[str]], str]:
    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    return pick


def _reported_margin(case: Case, rng: np.random.Generator) -> str:
    k = MARGINS.index(case.margin)
    if rng.random() < 0.35:
        k = int(np.clip(k + (1 if rng.random() < 0.5 else -1), 0, 2))
    return MARGINS[k]


def _impression_level(case: Case, reported_size: float, margin: str, rng: np.random.Generator) -> int:
    """The radiologist's noisy reading: 0 benign .. 3 suspicious."""
    score = (
        1.6 * np.log(reported_size / 11.0)
        + 1.2 * (MARGINS.index(margin) - 1)
        + 0.6 * case.growth
        - 2.0 * case.calcified
        + rng.normal(0.0, 1.0)
    )
    return int(np.digitize(score, [-1.0, 0.0, 1.0]))


def _size_text(size_mm: float, rng: np.random.Generator, lang: str) -> str:
    if size_mm >= 10 and rng.random() < 0.25:
        return f"{size_mm / 10:.1f} cm" if lang == "en" else f"{size_mm / 10:.1f}cm"
    return f"{size_mm:.0f} mm" if lang == "en" else f"{size_mm:.0f}mm"


def write_report(case: Case) -> str:
    """A free-text report from what the radiologist perceives of the case."""
    rng = np.random.default_rng([case.seed, 7])
    size = max(2.0, case.diameter_mm * (1.0 + rng.normal(0.0, 0.3)))
    margin = _reported_margin(case, rng)
    level = _impression_level(case, size, margin, rng)
    size_txt = _size_text(size, rng, case.lang)
    mention_density = rng.random() < 0.15
    mention_calc = case.calcified and rng.random() < 0.25
    growth_txt = None
    if case.growth > 0.8 and rng.random() < 0.75:
        growth_txt = "grew"
    elif case.growth < -0.5 and rng.random() < 0.6:
        growth_txt = "stable"
    if case.lang == "zh":
        return _report_zh(case, rng, size_txt, margin, level, mention_density, mention_calc, growth_txt)
    return _report_en(case, rng, size_txt, margin, level, mention_density, mention_calc, growth_txt)


def _report_en(
    case: Case,
    rng: np.random.Generator,
    size_txt: str,
    margin: str,
    level: int,
    mention_density: bool,
    mention_calc: bool,
    growth_txt: str | None,
) -> str:
    pick = _picker(rng)
    lobe = _LOBE_EN[case.lobe]
    margin_word = pick(_MARGIN_EN[margin])
    dens = f"{_DENSITY_EN[case.density]} " if mention_density else ""
    finding = pick(
        [
            f"{_article(size_txt)} {size_txt} {margin_word} {dens}nodule is seen in the {lobe}.",
            f"There is a {dens}nodule in the {lobe} measuring {size_txt}, with {margin_word} margins.",
            f"{lobe.capitalize()}: {dens}pulmonary nodule, {size_txt}, margins {margin_word}.",
        ]
    )
    parts = [pick(["CT chest without contrast.", "Chest CT.", "Low-dose CT of the chest."]), finding]
    if mention_calc:
        parts.append(pick(["Dense central calcification is present.", "The nodule is calcified."]))
    if growth_txt == "grew":
        parts.append(pick(["It has increased in size compared with the prior study.", "Interval growth since the prior exam."]))
    elif growth_txt == "stable":
        parts.append(pick(["It is unchanged from the prior study.", "Stable compared with prior imaging."]))
    parts.append(
        pick(
            [
                "No pleural effusion. No mediastinal lymphadenopathy.",
                "No pleural effusion or pneumothorax.",
                "The airways are patent, without endobronchial lesion.",
                "No enlarged lymph nodes, but mild emphysema is noted.",
            ]
        )
    )
    impression = {
        3: ["Impression: findings are suspicious for malignancy.", "Impression: highly suspicious for primary lung cancer; tissue sampling recommended."],
        2: ["Impression: malignancy cannot be excluded; short-term follow-up CT advised.", "Impression: indeterminate nodule, cannot exclude malignancy."],
        1: ["Impression: probably benign nodule; follow-up in 12 months.", "Impression: likely benign, although follow-up is suggested."],
        0: ["Impression: no evidence of malignancy; benign-appearing nodule.", "Impression: benign nodule, no suspicious features."],
    }[level]
    parts.append(pick(impression))
    return " ".join(parts)


def _report_zh(
    case: Case,
    rng: np.random.Generator,
    size_txt: str,
    margin: str,
    level: int,
    mention_density: bool,
    mention_calc: bool,
    growth_txt: str | None,
) -> str:
    pick = _picker(rng)
    lobe = _LOBE_ZH[case.lobe]
    margin_word = pick(_MARGIN_ZH[margin])
    dens = _DENSITY_ZH[case.density] if mention_density else ""
    finding = pick(
        [
            f"{lobe}见一{dens}结节，大小约{size_txt}，{margin_word}。",
            f"{lobe}可见{dens}结节影，直径约{size_txt}，{margin_word}。",
        ]
    )
    parts = [pick(["胸部CT平扫：", "胸部低剂量CT："]), finding]
    if mention_calc:
        parts.append(pick(["结节内见钙化。", "病灶内可见致密钙化灶。"]))
    if growth_txt == "grew":
        parts.append(pick(["较前片增大。", "与前片比较，结节增大。"]))
    elif growth_txt == "stable":
        parts.append(pick(["与前片比较无明显变化。", "较前片大致相仿。"]))
    parts.append(pick(["双侧胸腔未见积液。", "纵隔内未见肿大淋巴结。", "气管支气管通畅，未见狭窄。"]))
    impression = {
        3: ["诊断意见：考虑恶性肿瘤可能性大，建议穿刺活检。", "诊断意见：考虑肺癌。"],
        2: ["诊断意见：不除外恶性，建议短期复查。", "诊断意见：性质待定，不能排除恶性。"],
        1: ["诊断意见：考虑良性结节可能，建议年度随访。", "诊断意见：倾向良性，建议随访。"],
        0: ["诊断意见：未见明显恶性征象，考虑良性病变。", "诊断意见：良性结节，无恶性征象。"],
    }[level]
    parts.append(pick(impression))
    return "".join(parts)


# =====================================================================
# The disease model (task="disease"): normal, lung cancer, tuberculosis,
# fibrosis. Documented in DISEASE_MODEL_DOC (appended to the module doc).
# =====================================================================

DISEASE_CLASSES = ("normal", "lung_cancer", "tuberculosis", "fibrosis")
#: Class prevalence (prior), in DISEASE_CLASSES order.
DISEASE_PREVALENCE = (0.40, 0.25, 0.20, 0.15)
#: P(severity = 1, 2, 3 | diseased class); normal has severity 0.
SEVERITY_P = (0.40, 0.35, 0.25)
MAX_COUNT = 3  # cavity and granuloma counts are Poisson draws capped at 3

# Per-class finding probabilities: a tuple is indexed by severity - 1 (the
# diseased classes), a float holds for every severity.
_BERNOULLI: dict[str, dict[str, Any]] = {
    "nodule": {"normal": 0.30, "lung_cancer": 1.0, "tuberculosis": 0.30, "fibrosis": 0.30},
    "tree_in_bud": {"normal": 0.02, "lung_cancer": 0.03, "tuberculosis": (0.35, 0.6, 0.8), "fibrosis": 0.03},
    "consolidation": {"normal": 0.03, "lung_cancer": 0.08, "tuberculosis": (0.25, 0.45, 0.65), "fibrosis": 0.04},
    "effusion": {"normal": 0.02, "lung_cancer": (0.05, 0.15, 0.3), "tuberculosis": (0.1, 0.2, 0.35), "fibrosis": 0.03},
    "active_infection": {"normal": 0.05, "lung_cancer": 0.10, "tuberculosis": (0.5, 0.7, 0.9), "fibrosis": 0.08},
    "airway_narrowing": {"normal": 0.02, "lung_cancer": (0.25, 0.45, 0.65), "tuberculosis": 0.08, "fibrosis": 0.02},
    # only possible when there is fibrosis (extent > 0)
    "honeycombing": {"normal": 0.05, "lung_cancer": 0.05, "tuberculosis": 0.05, "fibrosis": (0.25, 0.55, 0.85)},
    "traction_bronchiectasis": {"normal": 0.1, "lung_cancer": 0.1, "tuberculosis": 0.1, "fibrosis": (0.3, 0.5, 0.75)},
}
_POISSON: dict[str, dict[str, Any]] = {
    "n_cavities": {"normal": 0.01, "lung_cancer": 0.06, "tuberculosis": (0.8, 1.6, 2.4), "fibrosis": 0.02},
    "n_granulomas": {"normal": 0.3, "lung_cancer": 0.3, "tuberculosis": 1.2, "fibrosis": 0.3},
}
# Fibrosis extent (fraction of the lower zones' lung): Beta(a, b) per severity
# in the fibrosis class; elsewhere 0 with p = 0.88, else mild Beta(2, 14).
_FIBROSIS_BETA = ((5.0, 15.0), (9.0, 11.0), (13.0, 7.0))
_MILD_FIBROSIS_P = 0.12
_MILD_FIBROSIS_BETA = (2.0, 14.0)
# Nodules: malignant (lung cancer) vs benign (the confounder in every class).
_NODULE_LOG_D = {"malignant": (math.log(12.0), 0.35), "benign": (math.log(8.0), 0.30)}
_NODULE_DENSITY_P = {"malignant": (0.55, 0.30, 0.15), "benign": (0.80, 0.08, 0.12)}
_NODULE_CALCIFIED_P = {"malignant": 0.03, "benign": 0.35}  # solid nodules only
_NODULE_SPICULATION_BETA = {"malignant": (2.5, 1.5), "benign": (1.2, 2.5)}
_NODULE_GROWTH = {"malignant": (1.0, 1.0), "benign": (-0.2, 0.8)}
_NODULE_LOBE_P = {"malignant": (0.3, 0.1, 0.2, 0.25, 0.15), "benign": (0.2, 0.2, 0.2, 0.2, 0.2)}



@dataclass(frozen=True)
class DiseaseCase:
    """One case of the disease model: class, severity, latent findings, oracle."""

    patient_id: str
    disease: str
    severity: int
    nodule: bool
    nodule_type: str  # "malignant", "benign" or "" (no nodule)
    diameter_mm: float  # 0 without a nodule
    density: str
    calcified: bool
    nodule_hu: float
    spiculation: float
    margin: str
    growth: float
    lobe: str
    n_cavities: int
    tree_in_bud: bool
    consolidation: bool
    n_granulomas: int
    effusion: bool
    active_infection: bool
    airway_narrowing: bool
    fibrosis: float  # extent in [0, 1]
    honeycombing: bool
    traction_bronchiectasis: bool
    volume_loss: float
    oracle: tuple[float, float, float, float]
    lang: str
    seed: int

    @property
    def label(self) -> str:
        return self.disease


def _param(table: dict[str, Any], cls: str, severity: int) -> float:
    v = table[cls]
    return float(v[severity - 1]) if isinstance(v, tuple) else float(v)


def _poisson_capped_pmf(k: int, rate: float) -> float:
    if k < MAX_COUNT:
        return math.exp(-rate) * rate**k / math.factorial(k)
    return 1.0 - sum(math.exp(-rate) * rate**j / math.factorial(j) for j in range(MAX_COUNT))


def _log_beta_pdf(x: float, a: float, b: float) -> float:
    x = min(max(x, 1e-9), 1 - 1e-9)
    return (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


def _log_normal_pdf(x: float, mu: float, sd: float) -> float:
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))


def _nodule_loglik(kind: str, severity: int, f: dict[str, Any]) -> float:
    """log density of the nodule's attributes under a malignant/benign nodule."""
    mu, sd = _NODULE_LOG_D[kind]
    if kind == "malignant":
        mu += math.log(1.0 + 0.25 * (severity - 1))
    d = float(f["diameter_mm"])
    ll = _log_normal_pdf(math.log(d), mu, sd) - math.log(d)
    ll += math.log(_NODULE_DENSITY_P[kind][DENSITIES.index(f["density"])])
    if f["density"] == "solid":
        pc = _NODULE_CALCIFIED_P[kind]
        ll += math.log(pc if f["calcified"] else 1 - pc)
    ll += _log_beta_pdf(float(f["spiculation"]), *_NODULE_SPICULATION_BETA[kind])
    ll += _log_normal_pdf(float(f["growth"]), *_NODULE_GROWTH[kind])
    ll += math.log(_NODULE_LOBE_P[kind][LOBES.index(f["lobe"])])
    return ll


def _findings_loglik(cls: str, severity: int, f: dict[str, Any]) -> float:
    """log P(latent findings | class, severity) under the disease model."""
    ll = 0.0
    for name in ("nodule", "tree_in_bud", "consolidation", "effusion", "active_infection", "airway_narrowing"):
        p = _param(_BERNOULLI[name], cls, severity)
        q = p if f[name] else 1.0 - p
        if q <= 0.0:
            return -math.inf
        ll += math.log(q)
    if f["nodule"]:
        ll += _nodule_loglik("malignant" if cls == "lung_cancer" else "benign", severity, f)
    for name in ("n_cavities", "n_granulomas"):
        ll += math.log(_poisson_capped_pmf(int(f[name]), _param(_POISSON[name], cls, severity)))
    ext = float(f["fibrosis"])
    if cls == "fibrosis":
        if ext <= 0.0:
            return -math.inf
        ll += _log_beta_pdf(ext, *_FIBROSIS_BETA[severity - 1])
    elif ext <= 0.0:
        ll += math.log(1.0 - _MILD_FIBROSIS_P)
    else:
        ll += math.log(_MILD_FIBROSIS_P) + _log_beta_pdf(ext, *_MILD_FIBROSIS_BETA)
    if ext > 0.0:
        for name in ("honeycombing", "traction_bronchiectasis"):
            p = _param(_BERNOULLI[name], cls, severity)
            ll += math.log(p if f[name] else 1.0 - p)
    return ll


def oracle_probabilities(findings: dict[str, Any]) -> tuple[float, float, float, float]:
    """Bayes-optimal P(class | latent findings), in DISEASE_CLASSES order.

    ``findings``: a mapping with the latent finding fields of
    :class:`DiseaseCase` (a truth-table row works). The severity is unseen
    and summed over.
    """
    logs = []
    for cls, prior in zip(DISEASE_CLASSES, DISEASE_PREVALENCE):
        if cls == "normal":
            terms = [_findings_loglik(cls, 1, findings)]  # normal's parameters do not depend on severity
        else:
            terms = [math.log(ps) + _findings_loglik(cls, s, findings) for s, ps in zip((1, 2, 3), SEVERITY_P)]
        m = max(terms)
        logs.append(math.log(prior) + (m if m == -math.inf else m + math.log(sum(math.exp(t - m) for t in terms))))
    top = max(logs)
    w = [math.exp(v - top) for v in logs]
    total = sum(w)
    p0, p1, p2, p3 = (x / total for x in w)
    return (p0, p1, p2, p3)


def _draw_findings(cls: str, severity: int, rng: np.random.Generator) -> dict[str, Any]:
    s = max(severity, 1)
    f: dict[str, Any] = {}
    for name in ("nodule", "tree_in_bud", "consolidation", "effusion", "active_infection", "airway_narrowing"):
        f[name] = bool(rng.random() < _param(_BERNOULLI[name], cls, s))
    for name in ("n_cavities", "n_granulomas"):
        f[name] = int(min(rng.poisson(_param(_POISSON[name], cls, s)), MAX_COUNT))
    if cls == "fibrosis":
        ext = float(rng.beta(*_FIBROSIS_BETA[s - 1]))
    elif rng.random() < _MILD_FIBROSIS_P:
        ext = float(rng.beta(*_MILD_FIBROSIS_BETA))
    else:
        ext = 0.0
    f["fibrosis"] = ext
    for name in ("honeycombing", "traction_bronchiectasis"):
        f[name] = bool(ext > 0.0 and rng.random() < _param(_BERNOULLI[name], cls, s))
    f["volume_loss"] = 0.15 * ext
    kind = "malignant" if cls == "lung_cancer" else "benign"
    f["nodule_type"] = kind if f["nodule"] else ""
    # nodule attributes are drawn either way (keeps the streams aligned), kept only with a nodule
    mu, sd = _NODULE_LOG_D[kind]
    if kind == "malignant":
        mu += math.log(1.0 + 0.25 * (s - 1))
    d = float(math.exp(rng.normal(mu, sd)))
    density = DENSITIES[int(rng.choice(3, p=_NODULE_DENSITY_P[kind]))]
    calcified = bool(density == "solid" and rng.random() < _NODULE_CALCIFIED_P[kind])
    hu = CALCIFIED_HU + rng.normal(0.0, 60.0) if calcified else DENSITY_HU[density] + rng.normal(0.0, 40.0)
    spic = float(rng.beta(*_NODULE_SPICULATION_BETA[kind]))
    growth = float(rng.normal(*_NODULE_GROWTH[kind]))
    lobe = LOBES[int(rng.choice(5, p=_NODULE_LOBE_P[kind]))]
    if f["nodule"]:
        f.update(diameter_mm=d, density=density, calcified=calcified, nodule_hu=round(float(hu), 1),
                 spiculation=spic, margin=MARGINS[min(2, int(spic * 3))], growth=growth, lobe=lobe)
    else:
        f.update(diameter_mm=0.0, density="", calcified=False, nodule_hu=0.0, spiculation=0.0, margin="",
                 growth=0.0, lobe="")
    return f


def draw_disease_cases(n: int, seed: int, lang: str) -> list[DiseaseCase]:
    """Draw n cases of the disease model (deterministic in seed)."""
    rng = np.random.default_rng([seed, 101])
    width = max(3, len(str(n)))
    cases = []
    for i in range(n):
        cls = DISEASE_CLASSES[int(rng.choice(4, p=DISEASE_PREVALENCE))]
        severity = 0 if cls == "normal" else 1 + int(rng.choice(3, p=SEVERITY_P))
        f = _draw_findings(cls, severity, rng)
        case_lang = lang if lang in ("en", "zh") else ("en" if rng.random() < 0.5 else "zh")
        case_seed = int(rng.integers(0, 2**31 - 1))
        # exact values (not the rounded ones stored) go into the oracle
        oracle = oracle_probabilities(f)
        cases.append(
            DiseaseCase(
                patient_id=f"P{i:0{width}d}",
                disease=cls,
                severity=severity,
                nodule=f["nodule"],
                nodule_type=f["nodule_type"],
                diameter_mm=float(f["diameter_mm"]),
                density=f["density"],
                calcified=f["calcified"],
                nodule_hu=f["nodule_hu"],
                spiculation=float(f["spiculation"]),
                margin=f["margin"],
                growth=float(f["growth"]),
                lobe=f["lobe"],
                n_cavities=f["n_cavities"],
                tree_in_bud=f["tree_in_bud"],
                consolidation=f["consolidation"],
                n_granulomas=f["n_granulomas"],
                effusion=f["effusion"],
                active_infection=f["active_infection"],
                airway_narrowing=f["airway_narrowing"],
                fibrosis=float(f["fibrosis"]),
                honeycombing=f["honeycombing"],
                traction_bronchiectasis=f["traction_bronchiectasis"],
                volume_loss=float(f["volume_loss"]),
                oracle=oracle,
                lang=case_lang,
                seed=case_seed,
            )
        )
    return cases


# ------------------------------------------------------------ disease reports

_VAGUE_EN = ["Impression: nonspecific findings; clinical correlation recommended.",
             "Impression: indeterminate appearance, correlate clinically and consider follow-up."]
_VAGUE_ZH = ["诊断意见：请结合临床。", "诊断意见：性质待定，建议随访复查。"]


def _perceive(case: DiseaseCase, rng: np.random.Generator) -> dict[str, float]:
    """What the radiologist perceives: 1 seen, 0 not seen, 0.5 seen but unsure (hedged)."""
    def seen(present: bool, sens: float, fp: float = 0.02) -> float:
        hit = rng.random() < (sens if present else fp)
        return 0.0 if not hit else (0.5 if rng.random() < (0.15 if present else 0.7) else 1.0)

    fib_sens = 0.0 if case.fibrosis <= 0 else min(0.95, 0.4 + 2.0 * case.fibrosis)
    return {
        "nodule": seen(case.nodule and case.diameter_mm >= 5.0, 0.9, 0.02),
        "cavity": seen(case.n_cavities > 0, 0.9),
        "tree_in_bud": seen(case.tree_in_bud, 0.75),
        "consolidation": seen(case.consolidation, 0.85),
        "granuloma": seen(case.n_granulomas > 0, 0.5),
        "effusion": seen(case.effusion, 0.85),
        "reticulation": seen(case.fibrosis > 0, fib_sens, 0.03),
        "honeycombing": seen(case.honeycombing, 0.8, 0.01),
        "traction": seen(case.traction_bronchiectasis, 0.6, 0.01),
        "volume_loss": seen(case.volume_loss > 0.05, 0.6, 0.01),
    }


def _radiologist_diagnosis(case: DiseaseCase, seen: dict[str, float], rng: np.random.Generator) -> str | None:
    """The impression's class (None = vague): a noisy reading of what was seen."""
    if rng.random() < 0.12:
        return None
    score = {
        "normal": 1.0,
        "lung_cancer": 2.2 * seen["nodule"] * (0.3 + case.spiculation + 0.3 * (case.diameter_mm > 15)) + 0.3 * seen["effusion"],
        "tuberculosis": 2.0 * seen["cavity"] + 1.3 * seen["tree_in_bud"] + 0.8 * seen["consolidation"]
        + 0.4 * seen["granuloma"],
        "fibrosis": 1.5 * seen["reticulation"] + 1.5 * seen["honeycombing"] + 0.7 * seen["traction"]
        + 0.5 * seen["volume_loss"],
    }
    noisy = {k: v + rng.normal(0.0, 0.35) for k, v in score.items()}
    best = max(noisy, key=lambda k: noisy[k])
    if rng.random() < 0.07:  # a wrong impression, as real reports sometimes are
        best = DISEASE_CLASSES[int(rng.integers(4))]
    return best


def _side_en(rng: np.random.Generator) -> str:
    return ["right", "left", "bilateral"][int(rng.integers(3))]


#: Findings (named as in :mod:`medfuse.data.annotate`) a disease report can state, and so the columns of
#: :func:`disease_report`'s stated labels.
STATED_FINDINGS = (
    "nodule", "lung_lesion", "mass", "cavity", "tree_in_bud", "consolidation", "calcified_granuloma",
    "reticulation", "honeycombing", "traction_bronchiectasis", "pleural_effusion", "pneumothorax",
    "tuberculosis", "fibrosis", "pneumonia",
)
_STATED_RANK = {1.0: 3, -1.0: 2, 0.0: 1}  # CheXpert's report-level rule: present > uncertain > absent

# Each impression template with what it states (finding -> 1 present, -1 hedged), per class and language.
_LESION_SUSPECTED = {"mass": -1.0, "lung_lesion": -1.0}  # a suspected (hedged) tumour
_IMPRESSIONS: dict[str, dict[str, list[tuple[str, dict[str, float]]]]] = {
    "normal": {
        "en": [("Impression: no acute cardiopulmonary abnormality.", {}), ("Impression: normal chest CT.", {})],
        "zh": [("诊断意见：双肺未见明显异常。", {}), ("诊断意见：胸部CT未见明显异常。", {})],
    },
    "lung_cancer": {
        "en": [("Impression: findings are suspicious for primary lung cancer; tissue sampling recommended.",
                _LESION_SUSPECTED),
               ("Impression: highly suspicious for bronchogenic carcinoma.", _LESION_SUSPECTED)],
        "zh": [("诊断意见：考虑肺癌，建议穿刺活检。", _LESION_SUSPECTED),
               ("诊断意见：考虑恶性肿瘤可能性大。", _LESION_SUSPECTED)],
    },
    "tuberculosis": {
        "en": [("Impression: findings consistent with pulmonary tuberculosis, likely active.", {"tuberculosis": 1.0}),
               ("Impression: post-primary tuberculosis is the leading consideration.", {"tuberculosis": -1.0})],
        "zh": [("诊断意见：考虑继发性肺结核，活动期可能。", {"tuberculosis": -1.0}),
               ("诊断意见：符合肺结核表现。", {"tuberculosis": 1.0})],
    },
    "fibrosis": {
        "en": [("Impression: pulmonary fibrosis in a usual interstitial pneumonia (UIP) pattern.", {"fibrosis": 1.0}),
               ("Impression: fibrotic interstitial lung disease, probable UIP.", {"fibrosis": 1.0})],
        "zh": [("诊断意见：考虑特发性肺纤维化（UIP型）。", {"fibrosis": -1.0}),
               ("诊断意见：双肺间质性改变，符合肺纤维化。", {"fibrosis": 1.0})],
    },
}


def write_disease_report(case: DiseaseCase) -> str:
    """A free-text CT report (English or Chinese) of a disease-model case."""
    return disease_report(case)[0]


def disease_report(case: DiseaseCase) -> tuple[str, dict[str, float]]:
    """A disease-model case's report and what it *states* per finding.

    The stated labels follow the CheXpert convention, per finding of
    :data:`STATED_FINDINGS`: 1 stated present, 0 stated absent (negated),
    -1 stated uncertain (hedged), NaN not mentioned; over several mentions
    present > uncertain > absent. They are what a reader of the text must
    find, so they are the target of a report labeler
    (:func:`medfuse.annotate.label_reports`); the latent findings of the case
    differ from them on purpose (the radiologist misses findings, mentions a
    few that are not there, and hedges). Each sentence template carries the
    findings it states, written with the template (the labeler's rules are
    not used); e.g. "Centrilobular nodules with a tree-in-bud pattern"
    states tree_in_bud and nodule (and lung_lesion, CheXpert's parent of
    nodule and mass), and an impression "suspicious for primary lung
    cancer" states mass and lung_lesion as uncertain.
    """
    rng = np.random.default_rng([case.seed, 7])
    seen = _perceive(case, rng)
    diagnosis = _radiologist_diagnosis(case, seen, rng)
    pick = _picker(rng)
    zh = case.lang == "zh"
    parts: list[str] = [pick(["胸部CT平扫：", "胸部高分辨率CT："] if zh else ["CT chest without contrast.", "High-resolution CT of the chest.", "Chest CT."])]
    stated: dict[str, float] = {}

    def state(value: float, *findings: str) -> None:
        for f in findings:
            old = stated.get(f)
            if old is None or _STATED_RANK[value] > _STATED_RANK[old]:
                stated[f] = value

    def hedge(level: float, text_en: str, text_zh: str, *findings: str, zh_hedged: str | None = None) -> None:
        """A finding sentence: sure (level 1) or hedged (0.5); Chinese hedges put 可疑 before the finding."""
        if level == 0.0:
            return
        state(1.0 if level == 1.0 else -1.0, *findings)
        if zh:
            parts.append(text_zh if level == 1.0 else (zh_hedged if zh_hedged is not None else "可疑" + text_zh))
        else:
            if level == 0.5:
                body = re.sub(r"^(A|An|There is) ", "", text_en)
                text_en = pick(["Possible ", "Questionable "]) + body[0].lower() + body[1:]
            parts.append(text_en)

    def negate(text: str, *findings: str) -> None:
        state(0.0, *findings)
        parts.append(text)

    if seen["nodule"] and case.nodule:
        size = max(2.0, case.diameter_mm * (1.0 + rng.normal(0.0, 0.3)))
        size_txt = _size_text(size, rng, case.lang)
        margin = _reported_margin(case, rng)  # type: ignore[arg-type]
        if zh:
            lobe_zh, margin_zh = _LOBE_ZH[case.lobe], pick(_MARGIN_ZH[margin])
            hedge(seen["nodule"], "", f"{lobe_zh}见一结节，大小约{size_txt}，{margin_zh}。", "nodule", "lung_lesion",
                  zh_hedged=f"{lobe_zh}见可疑结节，大小约{size_txt}，{margin_zh}。")
        else:
            hedge(seen["nodule"], f"A {margin} nodule measuring {size_txt} is seen in the {_LOBE_EN[case.lobe]}.", "",
                  "nodule", "lung_lesion")
        if case.growth > 0.8 and rng.random() < 0.6:
            parts.append("较前片增大。" if zh else "It has increased in size since the prior study.")
    elif seen["nodule"]:
        hedge(0.5, "Tiny nodular opacity in the right lower lobe.", "右肺下叶小结节影。", "nodule", "lung_lesion",
              zh_hedged="右肺下叶可疑小结节影。")
    upper = pick(["双肺上叶", "右肺上叶", "左肺上叶"]) if zh else pick(["both upper lobes", "the right upper lobe", "the left upper lobe"])
    if seen["cavity"]:
        many = case.n_cavities > 1
        hedge(seen["cavity"], f"{'Multiple thick-walled cavities are' if many else 'A thick-walled cavity is'} seen in {upper}.",
              f"{upper}见{'多发' if many else ''}厚壁空洞。", "cavity",
              zh_hedged=f"{upper}见可疑{'多发' if many else ''}厚壁空洞。")
    elif rng.random() < 0.3:
        negate("未见空洞。" if zh else "No cavitation.", "cavity")
    hedge(seen["tree_in_bud"], f"Centrilobular nodules with a tree-in-bud pattern in {upper}.", f"{upper}见小叶中心结节，呈树芽征。",
          "tree_in_bud", "nodule", "lung_lesion", zh_hedged=f"{upper}可疑小叶中心结节及树芽征。")
    hedge(seen["consolidation"], f"Patchy consolidation in {upper}.", f"{upper}见斑片状实变影。", "consolidation",
          zh_hedged=f"{upper}见可疑斑片状实变影。")
    hedge(seen["granuloma"], "Scattered calcified granulomas.", "双肺散在钙化肉芽肿。", "calcified_granuloma",
          zh_hedged="双肺散在可疑钙化肉芽肿。")
    if seen["reticulation"]:
        hedge(seen["reticulation"], "Basal-predominant subpleural reticulation.", "双肺下叶胸膜下网格影。", "reticulation",
              zh_hedged="双肺下叶胸膜下可疑网格影。")
        hedge(seen["honeycombing"], "Honeycombing is present at the lung bases.", "双肺下叶可见蜂窝影。", "honeycombing",
              zh_hedged="双肺下叶可疑蜂窝影。")
        hedge(seen["traction"], "There is traction bronchiectasis.", "伴牵拉性支气管扩张。", "traction_bronchiectasis",
              zh_hedged="可疑牵拉性支气管扩张。")
        hedge(seen["volume_loss"], "Lung volumes are reduced.", "肺容积减小。", zh_hedged="肺容积可疑减小。")
    elif rng.random() < 0.25:
        negate("未见网格影及蜂窝影。" if zh else "No reticulation or honeycombing.", "reticulation", "honeycombing")
    if seen["effusion"]:
        side = _side_en(rng)
        side_zh = {"right": "右侧", "left": "左侧", "bilateral": "双侧"}[side]
        hedge(seen["effusion"], f"{'Small' if rng.random() < 0.6 else 'Moderate'} {side} pleural effusion.", f"{side_zh}胸腔少量积液。",
              "pleural_effusion", zh_hedged=f"{side_zh}胸腔可疑少量积液。")
    elif rng.random() < 0.5:
        if zh:
            negate(pick(["双侧胸腔未见积液。", "未见胸腔积液。"]), "pleural_effusion")
        else:
            text = pick(["No pleural effusion.", "No pleural effusion or pneumothorax."])
            negate(text, "pleural_effusion", *(("pneumothorax",) if "pneumothorax" in text else ()))
    if rng.random() < 0.3:
        parts.append("纵隔内未见肿大淋巴结。" if zh else "No mediastinal lymphadenopathy.")
    if diagnosis is None:
        parts.append(pick(_VAGUE_ZH if zh else _VAGUE_EN))
    else:
        options = _IMPRESSIONS[diagnosis]["zh" if zh else "en"]
        impression, states = options[int(rng.integers(len(options)))]  # the draw pick() makes
        parts.append(impression)
        for f, v in states.items():
            state(v, f)
    return ("" if zh else " ").join(parts), stated


def disease_sound_factors(case: DiseaseCase) -> dict[str, float]:
    """The auscultation factors of a case (see :mod:`medfuse.data.auscultation`)."""
    return {
        "fibrosis": min(1.0, 1.6 * case.fibrosis) if case.fibrosis > 0 else 0.0,
        "infection": (0.5 + 0.15 * case.severity) if case.active_infection else 0.0,
        "airway_narrowing": 0.7 if case.airway_narrowing else 0.0,
        "effusion": 0.8 if case.effusion else 0.0,
    }


def disease_phantom(case: DiseaseCase, shape: tuple[int, int, int] = (48, 128, 128)) -> Any:
    """The CT phantom (:class:`medfuse.data.phantoms.DiseasePhantom`) of a disease-model case.

    What ``synthetic_cohort(task="disease")`` writes for the case, with its
    lesion truth (cavities, fibrosis and effusion masks, lungs).
    """
    from . import phantoms

    nodule = None
    if case.nodule:
        nodule = {
            "diameter_mm": case.diameter_mm,
            "nodule_hu": case.nodule_hu,
            "spiculation": case.spiculation if case.margin == "spiculated" else 0.0,
            "lobulation": min(1.0, 2 * case.spiculation) if case.margin != "smooth" else 0.0,
            "lobe": case.lobe,
            "offset_mm": tuple(np.random.default_rng([case.seed, 3]).uniform(-8.0, 8.0, 3)),
        }
    return phantoms.disease_ct_phantom(
        shape,
        seed=case.seed,
        nodule=nodule,
        n_cavities=case.n_cavities,
        tree_in_bud=case.tree_in_bud,
        consolidation=case.consolidation,
        n_granulomas=case.n_granulomas,
        effusion=case.effusion,
        fibrosis=case.fibrosis,
        honeycombing=case.honeycombing,
        traction_bronchiectasis=case.traction_bronchiectasis,
        volume_loss=case.volume_loss,
    )
