"""Every judgement explains itself: item, value, unit, rule, threshold or band, source, reason."""

from __future__ import annotations

from clinical.screening import REFERRAL, judge

from .helpers import dock, mhlw, visit


def test_it_explains_a_referral_with_the_threshold_crossed() -> None:
    j = judge(visit(sbp=142), mhlw())
    item = j.item("sbp")
    assert item.reason == "収縮期血圧 142 mmHg ≥ 受診勧奨判定値 140 mmHg"
    assert (item.key, item.field, item.name, item.value, item.unit) == ("sbp", "sbp", "収縮期血圧", 142, "mmHg")
    assert item.outcome == REFERRAL and item.outcome_label == "受診勧奨判定値以上"
    assert item.rule_id == "mhlw-2024/sbp"
    assert item.threshold is not None and (item.threshold.op, item.threshold.value) == (">=", 140)
    assert (item.ruleset_id, item.ruleset_version) == ("mhlw-2024", "2024.1")
    assert "標準的な健診・保健指導プログラム（令和6年度版）" in item.source
    assert item.verified is True


def test_it_explains_guidance_and_normal_values() -> None:
    j = judge(visit(sbp=135, dbp=80, ldl=119.5), mhlw())
    assert j.item("sbp").reason == "収縮期血圧 135 mmHg ≥ 保健指導判定値 130 mmHg"
    assert j.item("dbp").reason == "拡張期血圧 80 mmHg < 保健指導判定値 85 mmHg"
    assert j.item("ldl").reason == "LDLコレステロール 119.5 mg/dL < 保健指導判定値 120 mg/dL"


def test_it_says_when_there_is_no_referral_value() -> None:
    reason = judge(visit(hdl=38), mhlw()).item("hdl").reason
    assert reason == "HDLコレステロール 38 mg/dL < 保健指導判定値 40 mg/dL（受診勧奨判定値なし）"


def test_it_names_the_triglyceride_rule_used() -> None:
    j = judge(visit(tg=180, fasting=False), mhlw())
    item = j.item("tg")
    assert (item.key, item.rule_id) == ("tg_random", "mhlw-2024/tg_random")
    assert item.reason == "中性脂肪（随時） 180 mg/dL ≥ 保健指導判定値 175 mg/dL"


def test_it_marks_unverified_values_and_sex_specific_thresholds() -> None:
    j = judge(visit(sex="F", hb=11.0, urine_protein="+-"), mhlw())
    assert j.item("hb").reason == "血色素量 11 g/dL ≤ 受診勧奨判定値 11 g/dL（女性）［判定値未検証］"
    assert j.item("hb").verified is False
    assert j.item("urine_protein").reason == "尿蛋白 +- ≥ 保健指導判定値 +-［判定値未検証］"


def test_it_lists_the_reasons_for_follow_up() -> None:
    j = judge(visit(sbp=142, dbp=92, ldl=125), mhlw())
    assert j.follow_up is True
    assert j.reasons == (
        "収縮期血圧 142 mmHg ≥ 受診勧奨判定値 140 mmHg",
        "拡張期血圧 92 mmHg ≥ 受診勧奨判定値 90 mmHg",
    )
    quiet = judge(visit(ldl=125), mhlw())
    assert (quiet.follow_up, quiet.reasons) == (False, ())


def test_it_explains_a_ningen_dock_band_treatment_and_a_gap() -> None:
    j = judge(visit(ast=33, sbp=150, med_bp=True, uric_acid=1.5, urine_protein="+-"), dock())
    assert j.item("ast").reason == "AST（GOT） 33 U/L: 判定区分 B 軽度異常（31–35 U/L）［判定値未検証］"
    assert j.item("ast").band is not None and j.item("ast").band.written == "31–35"  # type: ignore[union-attr]
    assert j.item("sbp").reason == "収縮期血圧 150 mmHg: 判定区分 E 治療中（血圧の服薬あり）［判定値未検証］"
    assert j.item("uric_acid").reason == "尿酸 1.5 mg/dL: 判定区分なし（判定表に該当する区分がない）［判定値未検証］"
    assert j.item("urine_protein").reason == "尿蛋白 +-: 判定区分 B 軽度異常（±）［判定値未検証］"
    assert j.item("ast").ruleset_id == "ningen-dock"


def test_it_builds_explanations_only_when_asked() -> None:
    j = judge(visit(sbp=142), mhlw())
    assert j._items is None
    first = j.items
    assert j.items is first
