"""人間ドック 判定区分 A–E: each band edge from a hand table (standards file, section B)."""

from __future__ import annotations

from typing import Any

import pytest

from clinical.screening import TREATED, UNGRADED, judge

from .helpers import dock, outcome_of, visit

# field: [(value, grade)] — each band's first and last value as the standards table writes them
BANDS: dict[str, list[tuple[Any, str]]] = {
    "sbp": [(129, "A"), (130, "B"), (139, "B"), (140, "C"), (159, "C"), (160, "D")],
    "dbp": [(84, "A"), (85, "B"), (89, "B"), (90, "C"), (99, "C"), (100, "D")],
    "hba1c": [(5.5, "A"), (5.6, "B"), (5.9, "B"), (6.0, "C"), (6.4, "C"), (6.5, "D")],
    "fbg": [(99, "A"), (100, "B"), (109, "B"), (110, "C"), (125, "C"), (126, "D")],
    "ast": [(30, "A"), (31, "B"), (35, "B"), (36, "C"), (50, "C"), (51, "D")],
    "alt": [(30, "A"), (31, "B"), (40, "B"), (41, "C"), (50, "C"), (51, "D")],
    "ggt": [(50, "A"), (51, "B"), (80, "B"), (81, "C"), (100, "C"), (101, "D")],
    "ldl": [(59, "D"), (60, "A"), (119, "A"), (120, "B"), (139, "B"), (140, "C"), (179, "C"), (180, "D")],
    "non_hdl": [(89, "D"), (90, "A"), (149, "A"), (150, "B"), (169, "B"), (170, "C"), (209, "C"), (210, "D")],
    "tg": [(29, "D"), (30, "A"), (149, "A"), (150, "B"), (299, "B"), (300, "C"), (499, "C"), (500, "D")],
    "uric_acid": [(2.0, UNGRADED), (2.1, "A"), (7.0, "A"), (7.1, "C"), (8.9, "C"), (9.0, "D")],
    "urine_protein": [("-", "A"), ("+-", "B"), ("1+", "C"), ("2+", "D"), ("4+", "D")],
}
CASES = [(f, v, g) for f, probes in BANDS.items() for v, g in probes]


@pytest.mark.parametrize(("field", "value", "grade"), CASES)
def test_it_grades_each_band_edge(field: str, value: Any, grade: str) -> None:
    for sex in ("M", "F"):
        assert outcome_of(dock(), field, value, sex=sex, fasting=True) == grade


def test_it_covers_exactly_the_items_of_the_hand_table() -> None:
    assert {r.field for r in dock().items} == set(BANDS)


def test_it_keeps_the_sources_own_band_text() -> None:
    written = [b.written for b in dock().item("ldl").bands["M"]]
    assert written == ["≤59", "60–119", "120–139", "140–179", "≥180"]


@pytest.mark.parametrize(
    ("med", "fields"),
    [
        ("med_bp", ["sbp", "dbp"]),
        ("med_glucose", ["hba1c", "fbg"]),
        ("med_lipid", ["ldl", "non_hdl", "tg"]),
    ],
)
def test_it_grades_e_for_items_under_treatment(med: str, fields: list[str]) -> None:
    values: dict[str, Any] = {"sbp": 120, "dbp": 70, "hba1c": 5.0, "fbg": 90, "ldl": 100, "non_hdl": 120, "tg": 100}
    values[med] = True
    j = judge(visit(fasting=True, **values), dock())
    treated = {f for f, g in j.outcomes.items() if g == TREATED}
    assert treated == set(fields)
    assert all(g == "A" for f, g in j.outcomes.items() if f not in fields)


def test_it_does_not_grade_e_for_unrelated_items_or_unmeasured_ones() -> None:
    j = judge(visit(ast=60, med_bp=True, med_glucose=True, med_lipid=True), dock())
    assert j.outcomes == {"ast": "D"}


def test_it_does_not_grade_random_triglyceride_or_random_glucose() -> None:
    j = judge(visit(tg=200, fasting=False, rbg=150), dock())
    assert j.outcomes == {}


def test_it_flags_follow_up_on_grade_d_only() -> None:
    assert judge(visit(sbp=159), dock()).follow_up is False
    j = judge(visit(sbp=160, dbp=80), dock())
    assert j.follow_up is True
    assert j.reasons == ("収縮期血圧 160 mmHg: 判定区分 D 要精密検査・治療（≥160 mmHg）［判定値未検証］",)
