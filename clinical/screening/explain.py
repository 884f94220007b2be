"""Explanations: what a person reads about one item's judgement.

Built only when asked for (never on the batch path), from the rule set itself, so the
explanation names the very threshold or band the engine compared against.
"""

from __future__ import annotations

from dataclasses import dataclass

from clinical.screening import egfr as egfr_eq
from clinical.screening.model import (
    GUIDANCE,
    LEVELS,
    OP_NEGATION,
    OP_SYMBOL,
    REFERRAL,
    TREATED,
    UNGRADED,
    Band,
    ItemRule,
    RuleSet,
    Threshold,
)
from clinical.screening.visit import VisitInput

SEX_JA = {"M": "男性", "F": "女性"}
TREATMENT_JA = {"med_bp": "血圧", "med_glucose": "血糖", "med_lipid": "脂質"}
UNVERIFIED_MARK = "［判定値未検証］"
MEASURED = "measured"
COMPUTED = "computed"


@dataclass(frozen=True)
class ItemResult:
    key: str  # rule key in the rule set (tg_fasting, tg_random, hb, …)
    field: str  # VisitInput field and output key (tg, hb, …)
    name: str
    value: float | str
    unit: str
    outcome: str  # normal / guidance / referral, or A–E / ungraded
    rule_id: str
    # LEVELS: the threshold crossed; for "normal", the guidance threshold not reached.
    threshold: Threshold | None
    band: Band | None  # GRADES: the band the value fell in (None for E / ungraded)
    outcome_label: str  # Japanese: 受診勧奨判定値以上 / 判定区分 B 軽度異常 …
    ruleset_id: str
    ruleset_version: str
    source: str
    verified: bool
    origin: str  # eGFR only: "measured" or "computed"; "" for other items
    derivation: str  # eGFR only: how it was obtained, in Japanese
    reason: str


def explain_item(
    ruleset: RuleSet, rule: ItemRule, visit: VisitInput, outcome: str, egfr_computed: float | None
) -> ItemResult:
    value: float | str = getattr(visit, rule.field)
    origin = derivation = ""
    if rule.field == "egfr":
        if egfr_computed is not None:
            value, origin = egfr_computed, COMPUTED
            derivation = (
                f"血清クレアチニン {fmt(visit.creatinine or 0.0)} mg/dL・{visit.age} 歳・"
                f"{SEX_JA[visit.sex]}から{egfr_eq.EQUATION_NAME}で算出"
            )
        else:
            origin, derivation = MEASURED, "測定値"
    unit = f" {rule.unit}" if rule.unit else ""
    shown = f"{rule.name} {fmt(value)}{unit}"
    threshold: Threshold | None = None
    band: Band | None = None
    if ruleset.kind == LEVELS:
        lr = rule.levels[visit.sex]
        threshold = lr.referral if outcome == REFERRAL else lr.guidance
        assert threshold is not None
        op = threshold.op if outcome in (GUIDANCE, REFERRAL) else OP_NEGATION[threshold.op]
        who = f"（{SEX_JA[visit.sex]}）" if rule.sex_specific else ""
        reason = f"{shown} {OP_SYMBOL[op]} {threshold.label} {fmt(threshold.value)}{unit}{who}"
        if lr.referral is None:
            reason += "（受診勧奨判定値なし）"
        label = {REFERRAL: "受診勧奨判定値以上", GUIDANCE: "保健指導判定値以上"}.get(outcome, "基準範囲内")
    else:
        label = "判定区分なし" if outcome == UNGRADED else f"判定区分 {outcome} {ruleset.grade_labels[outcome]}"
        if outcome == TREATED:
            area = TREATMENT_JA.get(rule.treated_by or "", "")
            reason = f"{shown}: {label}（{area}の服薬あり）"
        elif outcome == UNGRADED:
            reason = f"{shown}: {label}（判定表に該当する区分がない）"
        else:
            band = band_of(rule, visit.sex, value)
            reason = f"{shown}: {label}（{band.written}{unit if not rule.scale else ''}）"
    if derivation:
        reason += f"（{derivation}）"
    if not rule.verified:
        reason += UNVERIFIED_MARK
    return ItemResult(
        key=rule.key,
        field=rule.field,
        name=rule.name,
        value=value,
        unit=rule.unit,
        outcome=outcome,
        rule_id=rule.rule_id,
        threshold=threshold,
        band=band,
        outcome_label=label,
        ruleset_id=ruleset.id,
        ruleset_version=ruleset.version,
        source=f"{ruleset.source} {ruleset.edition}",
        verified=rule.verified,
        origin=origin,
        derivation=derivation,
        reason=reason,
    )


def band_of(rule: ItemRule, sex: str, value: float | str) -> Band:
    x = float(rule.scale.index(value)) if rule.scale and isinstance(value, str) else float(value)
    for band in rule.bands[sex]:
        if (band.ge is None or x >= band.ge) and (band.lt is None or x < band.lt):
            return band
    raise LookupError(f"{rule.rule_id}: {value!r} is in no band")


def fmt(x: float | str) -> str:
    """Shortest faithful text for a value: 142.0 → "142", 5.6 → "5.6", "1+" → "1+"."""
    if isinstance(x, str):
        return x
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s
