"""特定保健指導の階層化, every branch of the standards file's section A."""

from __future__ import annotations

from typing import Any

import pytest

from clinical.screening import ACTIVE, EXCLUDED, INFORMATION, MOTIVATIONAL, judge

from .helpers import dock, mhlw, visit

BP: dict[str, Any] = {"sbp": 130}  # ① at the guidance value
LIPID: dict[str, Any] = {"tg": 150, "fasting": True}  # ② fasting TG at 150
GLUCOSE: dict[str, Any] = {"hba1c": 5.6}  # ③
WAIST_M: dict[str, Any] = {"waist_cm": 85}  # group (1), man
BMI_ONLY: dict[str, Any] = {"waist_cm": 84.9, "bmi": 25}  # group (2)


def level(**values: Any) -> str | None:
    return judge(visit(**values), mhlw()).hierarchy


@pytest.mark.parametrize(
    ("risks", "expected"),
    [({}, INFORMATION), (BP, MOTIVATIONAL), ({**BP, **GLUCOSE}, ACTIVE), ({**BP, **LIPID, **GLUCOSE}, ACTIVE)],
)
def test_it_grades_group_1_by_waist_with_0_1_2_risks(risks: dict[str, Any], expected: str) -> None:
    assert level(**WAIST_M, **risks) == expected


@pytest.mark.parametrize(
    ("risks", "expected"),
    [
        ({}, INFORMATION),
        (BP, MOTIVATIONAL),
        ({**BP, **GLUCOSE}, MOTIVATIONAL),
        ({**BP, **LIPID, **GLUCOSE}, ACTIVE),
    ],
)
def test_it_grades_group_2_by_bmi_with_0_1_2_3_risks(risks: dict[str, Any], expected: str) -> None:
    assert level(**BMI_ONLY, **risks) == expected


def test_it_uses_the_womans_waist_threshold_of_90() -> None:
    assert level(sex="F", waist_cm=89.9, **BP) == INFORMATION  # BMI not measured: not obese
    assert level(sex="F", waist_cm=90, **BP) == MOTIVATIONAL
    assert level(sex="M", waist_cm=89.9, **BP) == MOTIVATIONAL


def test_it_falls_back_to_bmi_when_waist_is_not_measured() -> None:
    assert level(bmi=25, **BP) == MOTIVATIONAL
    assert level(bmi=24.9, **BP) == INFORMATION


def test_it_gives_information_to_the_not_obese_whatever_their_risks() -> None:
    assert level(waist_cm=80, bmi=22, smoking=True, **BP, **LIPID, **GLUCOSE) == INFORMATION


def test_it_does_not_count_smoking_alone() -> None:
    assert level(**WAIST_M, smoking=True) == INFORMATION
    assert level(**BMI_ONLY, smoking=True) == INFORMATION


def test_it_counts_smoking_alongside_one_risk() -> None:
    assert level(**WAIST_M, smoking=True, **BP) == ACTIVE  # 1 + ④ = 2
    assert level(**BMI_ONLY, smoking=True, **BP, **GLUCOSE) == ACTIVE  # 2 + ④ = 3
    assert level(**BMI_ONLY, smoking=True, **BP) == MOTIVATIONAL  # 1 + ④ = 2


@pytest.mark.parametrize(
    ("risk", "below", "at"),
    [
        ("sbp", 129, 130),
        ("dbp", 84, 85),
        ("hdl", 40, 39.9),
        ("fbg", 99, 100),
        ("rbg", 99, 100),
        ("hba1c", 5.5, 5.6),
    ],
)
def test_it_counts_each_risk_from_its_threshold(risk: str, below: float, at: float) -> None:
    assert level(**WAIST_M, **{risk: below}) == INFORMATION
    assert level(**WAIST_M, **{risk: at}) == MOTIVATIONAL


def test_it_counts_random_triglyceride_from_175() -> None:
    assert level(**WAIST_M, tg=174, fasting=False) == INFORMATION
    assert level(**WAIST_M, tg=175, fasting=False) == MOTIVATIONAL
    assert level(**WAIST_M, tg=150, fasting=True) == MOTIVATIONAL


def test_it_counts_several_values_of_one_group_as_one_risk() -> None:
    assert level(**WAIST_M, sbp=150, dbp=95) == MOTIVATIONAL
    assert level(**WAIST_M, hba1c=6.0, fbg=110, rbg=110) == MOTIVATIONAL


@pytest.mark.parametrize("med", ["med_bp", "med_glucose", "med_lipid"])
def test_it_excludes_anyone_on_medication(med: str) -> None:
    assert level(**{med: True}, **WAIST_M, **BP, **GLUCOSE) == EXCLUDED
    assert level(**{med: True}) == EXCLUDED  # even when not obese


@pytest.mark.parametrize(("age", "expected"), [(64, ACTIVE), (65, MOTIVATIONAL), (74, MOTIVATIONAL), (75, ACTIVE)])
def test_it_turns_active_support_into_motivational_for_ages_65_to_74(age: int, expected: str) -> None:
    assert level(age=age, **WAIST_M, **BP, **GLUCOSE) == expected


def test_it_leaves_motivational_support_alone_at_65_to_74() -> None:
    assert level(age=70, **WAIST_M, **BP) == MOTIVATIONAL


def test_it_explains_the_decision() -> None:
    j = judge(visit(age=70, smoking=True, **WAIST_M, **BP, **GLUCOSE), mhlw())
    d = j.hierarchy_detail
    assert d is not None
    assert (d.level, d.obesity_group, d.senior_downgrade) == (MOTIVATIONAL, 1, True)
    assert d.risks == ("① 血圧", "③ 血糖", "④ 喫煙")
    assert "腹囲 85 cm ≥ 85 cm（男性）" in d.reason
    assert "積極的支援" in d.reason and "70 歳" in d.reason and d.reason.endswith("動機付け支援")
    assert d.level_ja == "動機付け支援"


def test_it_explains_exclusion_and_uncounted_smoking() -> None:
    d = judge(visit(med_bp=True, med_lipid=True), mhlw()).hierarchy_detail
    assert d is not None and d.excluded_by == ("med_bp", "med_lipid")
    assert d.reason == "服薬中（血圧・脂質）のため特定保健指導の対象外"
    d = judge(visit(smoking=True, **WAIST_M), mhlw()).hierarchy_detail
    assert d is not None and "喫煙は ①–③ のリスクがないため数えない" in d.reason


def test_it_has_no_hierarchy_in_ningen_dock() -> None:
    j = judge(visit(**WAIST_M, **BP), dock())
    assert j.hierarchy is None and j.hierarchy_detail is None
