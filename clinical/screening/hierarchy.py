"""特定保健指導の階層化: which support level a visit gets (standards file, section A).

One decision function serves both the hot path (which keeps only the level) and the
explanation (which keeps the detail), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clinical.screening.model import HierarchyRule
from clinical.screening.visit import FIELD_INDEX, SEX_INDEX, VisitInput

ACTIVE = "active"  # 積極的支援
MOTIVATIONAL = "motivational"  # 動機付け支援
INFORMATION = "information"  # 情報提供
EXCLUDED = "excluded"  # 服薬中: 特定保健指導の対象外
LEVEL_JA: dict[str, str] = {
    ACTIVE: "積極的支援",
    MOTIVATIONAL: "動機付け支援",
    INFORMATION: "情報提供",
    EXCLUDED: "対象外（服薬中）",
}
MEDICATION_JA: dict[str, str] = {"med_bp": "血圧", "med_glucose": "血糖", "med_lipid": "脂質"}

# (level, obesity group 0/1/2, risk count incl. smoking, smoking counted, 65–74 downgrade)
Decision = tuple[str, int, int, bool, bool]
Decider = Callable[[VisitInput, int, int], Decision]

_POPCOUNT = tuple(bin(i).count("1") for i in range(8))


def make_decider(rule: HierarchyRule) -> Decider:
    """Compile the rule into a closure over plain locals: ``decide(visit, risk_bits, sex_index)``."""
    waist_by_sex = (rule.waist_cm["M"], rule.waist_cm["F"])
    bmi_min = rule.bmi
    g1, g2 = rule.group1_active_min, rule.group2_active_min
    senior_lo, senior_hi = rule.senior_ages
    med_idx = tuple(FIELD_INDEX[f] for f in rule.exclude_on)

    def decide(v: VisitInput, risk_bits: int, si: int) -> Decision:
        for i in med_idx:
            if v[i]:
                return (EXCLUDED, 0, 0, False, False)
        waist = v.waist_cm
        if waist is not None and waist >= waist_by_sex[si]:
            group = 1
        else:
            bmi = v.bmi
            if bmi is not None and bmi >= bmi_min:
                group = 2
            else:
                return (INFORMATION, 0, 0, False, False)
        n = _POPCOUNT[risk_bits]
        smoking = bool(n and v.smoking)  # ④ counts only alongside one of ①–③
        if smoking:
            n += 1
        if n >= (g1 if group == 1 else g2):
            if senior_lo <= v.age <= senior_hi:
                return (MOTIVATIONAL, group, n, smoking, True)
            return (ACTIVE, group, n, smoking, False)
        return (MOTIVATIONAL if n else INFORMATION, group, n, smoking, False)

    return decide


@dataclass(frozen=True)
class HierarchyResult:
    level: str  # active / motivational / information / excluded
    obesity_group: int  # 1: waist, 2: BMI, 0: not obese (or excluded)
    risks: tuple[str, ...]  # labels of the risks counted, ④ included when it counted
    senior_downgrade: bool  # 積極的支援 → 動機付け支援 for ages 65–74
    excluded_by: tuple[str, ...]  # medication fields that excluded the visit
    reason: str

    @property
    def level_ja(self) -> str:
        return LEVEL_JA[self.level]


def explain_hierarchy(rule: HierarchyRule, visit: VisitInput, risk_bits: int) -> HierarchyResult:
    si = SEX_INDEX[visit.sex]
    level, group, n, smoking, senior = make_decider(rule)(visit, risk_bits, si)
    if level == EXCLUDED:
        meds = tuple(f for f in rule.exclude_on if getattr(visit, f))
        names = "・".join(MEDICATION_JA.get(f, f) for f in meds)
        reason = f"服薬中（{names}）のため特定保健指導の対象外"
        return HierarchyResult(level, 0, (), False, meds, reason)
    sex_ja = "男性" if visit.sex == "M" else "女性"
    waist_min = _fmt(rule.waist_cm[visit.sex])
    waist = "腹囲未測定" if visit.waist_cm is None else f"腹囲 {_fmt(visit.waist_cm)} cm"
    bmi = "BMI未測定" if visit.bmi is None else f"BMI {_fmt(visit.bmi)}"
    if group == 0:
        reason = (
            f"{waist}（{sex_ja}の基準 {waist_min} cm 以上に該当せず）,"
            f" {bmi}（{_fmt(rule.bmi)} 以上に該当せず）→ 非肥満 → {LEVEL_JA[INFORMATION]}"
        )
        return HierarchyResult(level, 0, (), False, (), reason)
    risks = [label for bit, (_, label) in enumerate(rule.risk_groups) if risk_bits >> bit & 1]
    if smoking:
        risks.append(rule.smoking_label)
    if group == 1:
        basis = f"{waist} ≥ {waist_min} cm（{sex_ja}）→ 腹囲による肥満"
        need = rule.group1_active_min
    else:
        basis = f"{bmi} ≥ {_fmt(rule.bmi)}（腹囲は基準未満）→ BMI による肥満"
        need = rule.group2_active_min
    counted = "・".join(risks) if risks else "なし"
    reason = f"{basis}; 追加リスク {counted}（{n} 個, 積極的支援は {need} 個以上）"
    if senior:
        lo, hi = rule.senior_ages
        reason += f" → {LEVEL_JA[ACTIVE]}; {visit.age} 歳（{lo}–{hi} 歳）のため {LEVEL_JA[MOTIVATIONAL]}"
    else:
        reason += f" → {LEVEL_JA[level]}"
    if not smoking and visit.smoking:
        reason += "（喫煙は ①–③ のリスクがないため数えない）"
    return HierarchyResult(level, group, tuple(risks), senior, (), reason)


def _fmt(x: float) -> str:
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s
