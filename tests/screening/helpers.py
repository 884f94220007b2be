"""Small builders shared by the screening tests (no fixtures: plain functions)."""

from __future__ import annotations

from typing import Any

from clinical.screening import Judgement, RuleSet, VisitInput, judge, load_ruleset


def mhlw() -> RuleSet:
    return load_ruleset("mhlw-2024")


def dock() -> RuleSet:
    return load_ruleset("ningen-dock")


def visit(sex: str = "M", age: int = 50, **values: Any) -> VisitInput:
    return VisitInput(visit_id="T1", sex=sex, age=age, **values)


def outcome_of(ruleset: RuleSet, field: str, value: Any, *, sex: str = "M", **extra: Any) -> str | None:
    """Judge a visit carrying only ``field`` (plus ``extra``) and return that item's outcome."""
    j: Judgement = judge(visit(sex=sex, **{field: value}, **extra), ruleset)
    return j.outcomes.get(field)
