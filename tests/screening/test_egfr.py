"""eGFR: the Japanese equation (Matsuo 2009), computed only when not measured, and said so."""

from __future__ import annotations

import math

import pytest

from clinical.screening import GUIDANCE, NORMAL, REFERRAL, judge
from clinical.screening.egfr import egfr_jsn, round_egfr

from .helpers import dock, mhlw, visit


def test_it_computes_the_worked_example_for_a_man_of_50_with_creatinine_1() -> None:
    # 194 × 1.0^−1.094 × 50^−0.287, worked independently: exp(−0.287 × ln 50) = 0.32538…
    expected = 194 * math.exp(-0.287 * math.log(50))
    assert expected == pytest.approx(63.12, abs=0.01)
    assert egfr_jsn(1.0, 50, "M") == pytest.approx(expected, rel=1e-12)


def test_it_applies_the_female_factor() -> None:
    assert egfr_jsn(0.8, 60, "F") == pytest.approx(194 * 0.8**-1.094 * 60**-0.287 * 0.739, rel=1e-12)
    assert egfr_jsn(0.8, 60, "F") / egfr_jsn(0.8, 60, "M") == pytest.approx(0.739)


@pytest.mark.parametrize(("cr", "age", "sex"), [(0.0, 50, "M"), (-1.0, 50, "M"), (1.0, 17, "F"), (1.0, 50, "X")])
def test_it_refuses_inputs_outside_the_equation(cr: float, age: int, sex: str) -> None:
    with pytest.raises(ValueError):
        egfr_jsn(cr, age, sex)


def test_it_rounds_half_up_to_one_decimal() -> None:
    assert round_egfr(63.1234) == 63.1
    assert round_egfr(59.95) == 60.0
    assert round_egfr(44.94) == 44.9


def test_it_reports_egfr_computed_from_creatinine_and_says_so() -> None:
    j = judge(visit(sex="M", age=50, creatinine=1.0), mhlw())
    assert j.outcomes == {"egfr": NORMAL}
    item = j.item("egfr")
    assert item.value == 63.1
    assert item.origin == "computed"
    assert j.egfr_computed == 63.1
    assert "血清クレアチニン 1 mg/dL" in item.reason and "算出" in item.reason
    assert "日本腎臓学会" in item.derivation and "50 歳" in item.derivation and "男性" in item.derivation


def test_it_uses_a_given_egfr_over_creatinine_and_says_it_was_measured() -> None:
    j = judge(visit(egfr=44.0, creatinine=1.0), mhlw())
    item = j.item("egfr")
    assert (item.value, item.outcome, item.origin) == (44.0, REFERRAL, "measured")
    assert j.egfr_computed is None
    assert "測定値" in item.reason


def test_it_judges_a_computed_egfr_against_the_thresholds() -> None:
    # woman of 70 with creatinine 1.0: 194 × 70^−0.287 × 0.739 ≈ 42.0 → below 45
    j = judge(visit(sex="F", age=70, creatinine=1.0), mhlw())
    assert j.item("egfr").value == pytest.approx(round(194 * 70**-0.287 * 0.739, 1))
    assert j.outcomes["egfr"] == REFERRAL
    j = judge(visit(sex="M", age=70, creatinine=1.2), mhlw())
    assert j.outcomes["egfr"] == GUIDANCE  # ≈ 47.1


def test_it_does_not_compute_egfr_under_18() -> None:
    assert "egfr" not in judge(visit(age=17, creatinine=1.0), mhlw()).outcomes
    assert "egfr" in judge(visit(age=18, creatinine=1.0), mhlw()).outcomes


def test_it_does_not_grade_egfr_in_ningen_dock() -> None:
    assert "egfr" not in judge(visit(creatinine=1.0, egfr=50.0), dock()).outcomes
