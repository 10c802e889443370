"""The generative model behind :func:`medfuse.data.synthetic_cohort`.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
