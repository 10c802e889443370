"""NegEx-style negation scopes in English and Chinese reports."""

from __future__ import annotations

import pytest

pytest.importorskip("jieba")
pytest.importorskip("sklearn")

from medfuse.features.text import mark_negation, tokenize

# (sentence, tokens that must be negated, tokens that must stay positive)
EN_CASES = [
    ("No nodule, but a mass is seen.", ["nodule"], ["mass"]),
    ("No evidence of malignancy.", ["malignancy"], []),
    ("There is no pleural effusion.", ["pleural", "effusion"], []),
    ("Negative for pneumothorax; small effusion on the left.", ["pneumothorax"], ["effusion", "left"]),
    ("Lungs are free of consolidation.", ["consolidation"], ["lungs"]),
    ("Absence of lymphadenopathy.", ["lymphadenopathy"], []),
    ("Without calcification.", ["calcification"], []),
    ("Not enlarged, however the node is necrotic.", ["enlarged"], ["node", "necrotic"]),
    ("Malignancy was ruled out.", ["malignancy"], []),
    ("Metastasis is unlikely.", ["metastasis"], []),
    ("The nodule is not seen on this study.", ["nodule"], []),
    ("Malignancy cannot be excluded.", [], ["malignancy"]),
    ("We cannot exclude malignancy.", [], ["malignancy"]),
    ("Infection is not ruled out.", [], ["infection"]),
    ("No change in the spiculated nodule.", [], ["spiculated", "nodule"]),
    ("No effusion. Spiculated nodule in the right upper lobe.", ["effusion"], ["spiculated", "nodule", "right"]),
    ("No emphysema although there is fibrosis.", ["emphysema"], ["fibrosis"]),
    ("No pleural effusion or pneumothorax.", ["effusion", "pneumothorax"], []),
    ("No suspicious nodule except a calcified granuloma.", ["nodule"], ["calcified", "granuloma"]),
    ("Patient denies smoking: cough is present.", ["smoking"], ["cough"]),
    ("Mild emphysema without bronchiectasis.", ["bronchiectasis"], ["mild", "emphysema"]),
    ("No nodule; the mass is lobulated.", ["nodule"], ["mass", "lobulated"]),
    ("Lymphadenopathy is absent, effusion present.", ["lymphadenopathy"], ["effusion"]),
]

ZH_CASES = [
    ("未见结节，但可见肿块", ["结节"], ["肿块"]),
    ("未见明显恶性征象", ["恶性征象"], []),
    ("双侧胸腔未见积液。", ["积液"], []),
    ("无发热、咳嗽，伴胸痛", ["发热", "咳嗽"], ["胸痛"]),
    ("否认吸烟史。", ["吸烟史"], []),
    ("排除恶性肿瘤。", ["恶性肿瘤"], []),
    ("没有胸腔积液", ["胸腔积液"], []),
    ("不伴淋巴结肿大", ["淋巴结肿大"], []),
    ("不除外恶性", [], ["恶性"]),
    ("不能排除恶性，建议复查", [], ["恶性"]),
    ("右肺上叶见磨玻璃结节，边缘可见毛刺", [], ["磨玻璃结节", "毛刺"]),
    ("未见钙化；结节呈分叶状", ["钙化"], ["结节", "分叶状"]),
    ("纵隔内未见肿大淋巴结，右肺见实性结节", ["淋巴结"], ["实性", "结节"]),
    ("无胸膜凹陷，然而可见毛刺", ["胸膜凹陷"], ["毛刺"]),
    ("恶性可能性不大", ["恶性"], []),
    ("未发现钙化灶", ["钙化灶"], []),
    ("诊断意见：良性结节，无恶性征象。", ["恶性征象"], ["良性", "结节"]),
    ("气管支气管通畅，未见狭窄。", ["狭窄"], ["通畅"]),
    ("未见空洞但是可见空泡征", ["空洞"], ["空泡征"]),
    ("无明显肺气肿。右肺下叶见结节", ["肺气肿"], ["右肺下叶", "结节"]),
    ("考虑恶性肿瘤可能性大", [], ["恶性肿瘤"]),
    ("未见实变，不除外炎症", ["实变"], ["炎症"]),
]


@pytest.mark.parametrize(("text", "negated", "positive"), EN_CASES + ZH_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_negation_scope(text, negated, positive):
    toks = tokenize(text)
    for t in negated:
        assert f"NEG_{t}" in toks, (text, toks)
        assert t not in toks, (text, toks)
    for t in positive:
        assert t in toks, (text, toks)
        assert f"NEG_{t}" not in toks, (text, toks)


def test_case_counts():
    assert len(EN_CASES) >= 20 and len(ZH_CASES) >= 20


def test_negation_window_is_bounded():
    toks = tokenize("No " + " ".join(f"term{c}" for c in "abcdefghijkl"), stop_words=False)
    assert toks[0] == "NEG_terma" and toks[-1] == "terml"


def test_measurements_never_negated():
    assert tokenize("No 2.5 cm nodule.") == ["2.5", "cm", "NEG_nodule"]
    assert tokenize("未见2.5cm结节影") == ["2.5", "cm", "NEG_结节影"]


def test_negation_off_and_stopwords_off():
    assert tokenize("No nodule.", negation=False) == ["no", "nodule"]
    assert "the" in tokenize("The nodule.", stop_words=False)


def test_mark_negation_keeps_punctuation_and_drops_triggers():
    assert mark_negation(["no", "nodule", ",", "mass"]) == ["NEG_nodule", ",", "mass"]
    assert mark_negation(["cannot", "exclude", "malignancy"]) == ["cannot_exclude", "malignancy"]


def test_tokenize_refuses_non_text():
    with pytest.raises(TypeError, match="text"):
        tokenize(None)  # type: ignore[arg-type]
