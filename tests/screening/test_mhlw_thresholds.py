"""MHLW 第4期 保健指導判定値 / 受診勧奨判定値: every boundary, from the file and from a hand table.

The hand table below is typed from /work/shared/standards/checkup-judgement.md, section A,
independently of the TOML file, so a typo in either one fails a test.
"""

from __future__ import annotations

from typing import Any

import pytest

from clinical.screening import GUIDANCE, NORMAL, REFERRAL, ItemRule, Threshold

from .helpers import mhlw, outcome_of

# key: (field, fasting, {sex: (guidance, referral)}) with thresholds as (op, value)
EXPECTED: dict[str, tuple[str, bool | None, dict[str, tuple[Any, Any]]]] = {
    "sbp": ("sbp", None, {"*": ((">=", 130), (">=", 140))}),
    "dbp": ("dbp", None, {"*": ((">=", 85), (">=", 90))}),
    "tg_fasting": ("tg", True, {"*": ((">=", 150), (">=", 300))}),
    "tg_random": ("tg", False, {"*": ((">=", 175), (">=", 300))}),
    "hdl": ("hdl", None, {"*": (("<", 40), None)}),
    "ldl": ("ldl", None, {"*": ((">=", 120), (">=", 140))}),
    "non_hdl": ("non_hdl", None, {"*": ((">=", 150), (">=", 170))}),
    "fbg": ("fbg", None, {"*": ((">=", 100), (">=", 126))}),
    "rbg": ("rbg", None, {"*": ((">=", 100), (">=", 126))}),
    "hba1c": ("hba1c", None, {"*": ((">=", 5.6), (">=", 6.5))}),
    "ast": ("ast", None, {"*": ((">=", 31), (">=", 51))}),
    "alt": ("alt", None, {"*": ((">=", 31), (">=", 51))}),
    "ggt": ("ggt", None, {"*": ((">=", 51), (">=", 101))}),
    "egfr": ("egfr", None, {"*": (("<", 60), ("<", 45))}),
    "hb": ("hb", None, {"M": (("<=", 13.0), ("<=", 12.0)), "F": (("<=", 12.0), ("<=", 11.0))}),
    "urine_protein": ("urine_protein", None, {"*": ((">=", "+-"), (">=", "1+"))}),
}

# (field, sex, fasting, value, expected outcome): at, and either side of, each boundary
PROBES: list[tuple[str, str, bool | None, Any, str]] = [
    ("sbp", "M", None, 129, NORMAL), ("sbp", "M", None, 130, GUIDANCE),
    ("sbp", "M", None, 139, GUIDANCE), ("sbp", "M", None, 140, REFERRAL),
    ("dbp", "F", None, 84, NORMAL), ("dbp", "F", None, 85, GUIDANCE),
    ("dbp", "F", None, 89, GUIDANCE), ("dbp", "F", None, 90, REFERRAL),
    ("tg", "M", True, 149, NORMAL), ("tg", "M", True, 150, GUIDANCE),
    ("tg", "M", True, 299, GUIDANCE), ("tg", "M", True, 300, REFERRAL),
    ("tg", "M", False, 174, NORMAL), ("tg", "M", False, 175, GUIDANCE),
    ("tg", "M", False, 299, GUIDANCE), ("tg", "M", False, 300, REFERRAL),
    ("tg", "F", True, 160, GUIDANCE), ("tg", "F", False, 160, NORMAL),  # same value, other sample
    ("hdl", "M", None, 40, NORMAL), ("hdl", "M", None, 39.9, GUIDANCE),
    ("hdl", "M", None, 39, GUIDANCE), ("hdl", "M", None, 15, GUIDANCE),  # no referral value at all
    ("ldl", "M", None, 119, NORMAL), ("ldl", "M", None, 120, GUIDANCE),
    ("ldl", "M", None, 139, GUIDANCE), ("ldl", "M", None, 140, REFERRAL),
    ("non_hdl", "F", None, 149, NORMAL), ("non_hdl", "F", None, 150, GUIDANCE),
    ("non_hdl", "F", None, 169, GUIDANCE), ("non_hdl", "F", None, 170, REFERRAL),
    ("fbg", "M", True, 99, NORMAL), ("fbg", "M", True, 100, GUIDANCE),
    ("fbg", "M", True, 125, GUIDANCE), ("fbg", "M", True, 126, REFERRAL),
    ("rbg", "F", False, 99, NORMAL), ("rbg", "F", False, 100, GUIDANCE),
    ("rbg", "F", False, 125, GUIDANCE), ("rbg", "F", False, 126, REFERRAL),
    ("hba1c", "M", None, 5.5, NORMAL), ("hba1c", "M", None, 5.6, GUIDANCE),
    ("hba1c", "M", None, 6.4, GUIDANCE), ("hba1c", "M", None, 6.5, REFERRAL),
    ("ast", "M", None, 30, NORMAL), ("ast", "M", None, 31, GUIDANCE),
    ("ast", "M", None, 50, GUIDANCE), ("ast", "M", None, 51, REFERRAL),
    ("alt", "F", None, 30, NORMAL), ("alt", "F", None, 31, GUIDANCE),
    ("alt", "F", None, 50, GUIDANCE), ("alt", "F", None, 51, REFERRAL),
    ("ggt", "M", None, 50, NORMAL), ("ggt", "M", None, 51, GUIDANCE),
    ("ggt", "M", None, 100, GUIDANCE), ("ggt", "M", None, 101, REFERRAL),
    ("egfr", "M", None, 60, NORMAL), ("egfr", "M", None, 59.9, GUIDANCE),
    ("egfr", "M", None, 45, GUIDANCE), ("egfr", "M", None, 44.9, REFERRAL),
    ("hb", "M", None, 13.1, NORMAL), ("hb", "M", None, 13.0, GUIDANCE),
    ("hb", "M", None, 12.1, GUIDANCE), ("hb", "M", None, 12.0, REFERRAL),
    ("hb", "F", None, 12.1, NORMAL), ("hb", "F", None, 12.0, GUIDANCE),
    ("hb", "F", None, 11.1, GUIDANCE), ("hb", "F", None, 11.0, REFERRAL),
    ("hb", "F", None, 12.5, NORMAL), ("hb", "M", None, 12.5, GUIDANCE),  # same value, other sex
    ("urine_protein", "M", None, "-", NORMAL), ("urine_protein", "M", None, "+-", GUIDANCE),
    ("urine_protein", "M", None, "1+", REFERRAL), ("urine_protein", "F", None, "4+", REFERRAL),
]  # fmt: skip


def _as_pair(th: Threshold | None) -> tuple[str, Any] | None:
    return None if th is None else (th.op, th.value)


def test_it_holds_exactly_the_items_of_the_standards_table() -> None:
    assert [r.key for r in mhlw().items] == list(EXPECTED)


@pytest.mark.parametrize("key", list(EXPECTED))
def test_it_matches_the_hand_written_table(key: str) -> None:
    field, fasting, by_sex = EXPECTED[key]
    rule = mhlw().item(key)
    assert (rule.field, rule.fasting) == (field, fasting)
    for sex in ("M", "F"):
        guidance, referral = by_sex.get(sex, by_sex.get("*"))  # type: ignore[misc]
        lr = rule.levels[sex]
        assert _as_pair(lr.guidance) == guidance, (key, sex)
        assert _as_pair(lr.referral) == referral, (key, sex)
        assert lr.guidance.label == "保健指導判定値"
        if lr.referral is not None:
            assert lr.referral.label == "受診勧奨判定値"


@pytest.mark.parametrize(("field", "sex", "fasting", "value", "expected"), PROBES)
def test_it_judges_each_boundary_from_the_hand_table(
    field: str, sex: str, fasting: bool | None, value: Any, expected: str
) -> None:
    assert outcome_of(mhlw(), field, value, sex=sex, fasting=fasting) == expected


def _neighbours(rule: ItemRule, th: Threshold) -> list[Any]:
    """The threshold value and one step either side (0.1 for numbers, one grade on a scale)."""
    if rule.scale:
        i = rule.scale.index(str(th.value))
        return [rule.scale[j] for j in (i - 1, i, i + 1) if 0 <= j < len(rule.scale)]
    v = float(th.value)
    return [round(v - 0.1, 1), v, round(v + 0.1, 1)]


def _file_cases() -> list[tuple[str, str, str]]:
    return [
        (rule.key, sex, which)
        for rule in mhlw().items
        for sex in ("M", "F")
        for which in ("guidance", "referral")
        if getattr(rule.levels[sex], which) is not None
    ]


@pytest.mark.parametrize(("key", "sex", "which"), _file_cases())
def test_it_flips_exactly_at_each_threshold_in_the_file(key: str, sex: str, which: str) -> None:
    rule = mhlw().item(key)
    lr = rule.levels[sex]
    th: Threshold = getattr(lr, which)
    fasting = rule.fasting
    below, at, above = _neighbours(rule, th)
    # Which side crosses depends only on the operator; "=" decides the value itself.
    crossing, other = (above, below) if th.op in (">=", ">") else (below, above)
    assert th.crossed_by(crossing, rule.scale)
    assert not th.crossed_by(other, rule.scale)
    assert th.crossed_by(at, rule.scale) is ("=" in th.op)
    for value in (below, at, above):
        expected = (
            REFERRAL
            if lr.referral and lr.referral.crossed_by(value, rule.scale)
            else (GUIDANCE if lr.guidance.crossed_by(value, rule.scale) else NORMAL)
        )
        assert outcome_of(mhlw(), rule.field, value, sex=sex, fasting=fasting) == expected, value


def test_it_does_not_judge_triglyceride_when_the_sample_timing_is_unknown() -> None:
    assert outcome_of(mhlw(), "tg", 400, fasting=None) is None


def test_it_judges_fasting_and_random_glucose_as_separate_items() -> None:
    from clinical.screening import judge

    from .helpers import visit

    j = judge(visit(fbg=99, rbg=130, fasting=True), mhlw())
    assert j.outcomes == {"fbg": NORMAL, "rbg": REFERRAL}


def test_it_leaves_unmeasured_items_out() -> None:
    from clinical.screening import judge

    from .helpers import visit

    j = judge(visit(sbp=120), mhlw())
    assert j.outcomes == {"sbp": NORMAL}
    assert [i.field for i in j.items] == ["sbp"]
