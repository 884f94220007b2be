"""Judging: rule sets compiled once into plain tuples, then a tight loop per visit.

The hot path produces only ``(rule number, outcome)`` pairs, a follow-up flag, the 階層化
risk bits and level; everything a person reads (reason strings, thresholds, citations) is
built lazily by :class:`~clinical.screening.judgement.Judgement` when asked for.

Every comparison is rewritten to the one form ``sign * value >= t`` when compiling:
``v > x`` becomes ``v >= nextafter(x, +inf)`` (no float lies between), and ``v < x`` /
``v <= x`` become comparisons of ``-v``. The loop then needs no per-operator branches.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from clinical.screening import egfr as egfr_eq
from clinical.screening.hierarchy import make_decider
from clinical.screening.judgement import Judgement
from clinical.screening.model import (
    GUIDANCE,
    LEVELS,
    NORMAL,
    REFERRAL,
    TREATED,
    UNGRADED,
    ItemRule,
    RuleSet,
    Threshold,
)
from clinical.screening.visit import FIELD_INDEX, SEX_INDEX, VisitInput

_INF = math.inf
_I_EGFR = FIELD_INDEX["egfr"]
# (sex, fasting) → position in the per-runner list of tables built in that order below.
_TABLE_OF = {(sex, f): i for i, (sex, f) in enumerate((s, f) for s in "MF" for f in (True, False, None))}

# results, follow_up, 階層化 risk bits, 階層化 level, eGFR computed from creatinine (or None)
RunResult = tuple[list[tuple[int, str]], bool, int, str | None, float | None]


class Screened(NamedTuple):
    """The compact per-visit answer the bulk CSV interface prints."""

    visit_id: str
    items: dict[str, str]  # output key (VisitInput field name) → outcome
    follow_up: bool
    hierarchy: str | None


class Compiled:
    """A rule set in the shape the loop wants. Built once per rule set (cached on it)."""

    __slots__ = ("egfr_rule_no", "keys", "ruleset", "run")

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.keys: tuple[str, ...] = tuple(r.field for r in ruleset.items)
        self.egfr_rule_no = next((n for n, r in enumerate(ruleset.items) if r.field == "egfr"), None)
        self.run: Callable[[VisitInput], RunResult] = (
            _levels_runner(ruleset, self.egfr_rule_no)
            if ruleset.kind == LEVELS
            else _grades_runner(ruleset, self.egfr_rule_no)
        )


def compiled(ruleset: RuleSet) -> Compiled:
    c: Compiled | None = ruleset._engine
    if c is None:
        c = Compiled(ruleset)
        object.__setattr__(ruleset, "_engine", c)  # frozen dataclass: a one-time cache slot
    return c


def judge(visit: VisitInput, ruleset: RuleSet) -> Judgement:
    """Judge one visit; the result explains itself (``.items``, ``.reasons``, ``.hierarchy_detail``)."""
    c = ruleset._engine or compiled(ruleset)
    try:
        results, follow_up, bits, level, egfr_value = c.run(visit)
    except KeyError as exc:
        raise _bad_visit(visit, exc) from exc
    return Judgement(visit, ruleset, results, follow_up, bits, level, egfr_value)


def judge_many(visits: Iterable[VisitInput], ruleset: RuleSet) -> list[Judgement]:
    c = compiled(ruleset)
    run = c.run
    out: list[Judgement] = []
    append = out.append
    for visit in visits:
        try:
            results, follow_up, bits, level, egfr_value = run(visit)
        except KeyError as exc:
            raise _bad_visit(visit, exc) from exc
        append(Judgement(visit, ruleset, results, follow_up, bits, level, egfr_value))
    return out


def screen(visits: Iterable[VisitInput], ruleset: RuleSet) -> Iterator[Screened]:
    """The fast batch path: outcomes only, no explanation objects."""
    c = compiled(ruleset)
    run, keys = c.run, c.keys
    for visit in visits:
        try:
            results, follow_up, _bits, level, _egfr = run(visit)
        except KeyError as exc:
            raise _bad_visit(visit, exc) from exc
        yield Screened(visit[0], {keys[no]: o for no, o in results}, follow_up, level)


def _bad_visit(visit: VisitInput, exc: KeyError) -> ValueError:
    if visit.sex not in SEX_INDEX:
        why = f"sex {visit.sex!r} is not 'M' or 'F'"
    elif visit.fasting not in (True, False, None):
        why = f"fasting {visit.fasting!r} is not True, False or None"
    else:
        why = f"{exc.args[0]!r} is not a canonical qualitative value (-, +-, 1+ … 4+)"
    return ValueError(f"visit {visit.visit_id!r}: {why}")


def _common(rule: ItemRule) -> tuple[int, bool | None, dict[str, int] | None]:
    conv = {s: i for i, s in enumerate(rule.scale)} if rule.scale else None
    return FIELD_INDEX[rule.field], rule.fasting, conv


def _upward(th: Threshold, scale: tuple[str, ...]) -> tuple[int, float]:
    """(sign, t) such that ``value <op> threshold`` ⇔ ``sign * value >= t``."""
    x = float(scale.index(th.value)) if scale and isinstance(th.value, str) else float(th.value)
    if th.op == ">=":
        return 1, x
    if th.op == ">":
        return 1, math.nextafter(x, _INF)
    if th.op == "<=":
        return -1, -x
    return -1, math.nextafter(-x, _INF)


def _levels_runner(ruleset: RuleSet, egfr_no: int | None) -> Callable[[VisitInput], RunResult]:
    risk_bit = {}
    if ruleset.hierarchy is not None:
        risk_bit = {rid: 1 << i for i, (rid, _) in enumerate(ruleset.hierarchy.risk_groups)}
    # One table per (sex, fasting state) so the loop never tests either.
    tables: list[tuple[tuple[Any, ...], ...]] = []
    for sex in ("M", "F"):
        for fasting_state in (True, False, None):
            entries = []
            for no, rule in enumerate(ruleset.items):
                if rule.fasting is not None and rule.fasting is not fasting_state:
                    continue
                idx, _, conv = _common(rule)
                lr = rule.levels[sex]
                sign, g = _upward(lr.guidance, rule.scale)
                r = _upward(lr.referral, rule.scale)[1] if lr.referral is not None else _INF
                # The result pairs are built here once, so the loop appends without allocating.
                outcomes = ((no, NORMAL), (no, GUIDANCE), (no, REFERRAL))
                entries.append((idx, conv, sign < 0, g, r, risk_bit.get(rule.risk or "", 0), *outcomes))
            tables.append(tuple(entries))
    table_of = _TABLE_OF
    rank = {NORMAL: 0, GUIDANCE: 1, REFERRAL: 2}
    follow_min = min(rank[o] for o in ruleset.follow_up)
    decide = make_decider(ruleset.hierarchy) if ruleset.hierarchy is not None else None
    sex_index = SEX_INDEX
    fill_egfr = _egfr_filler()
    i_egfr = _I_EGFR if egfr_no is not None else -1

    def run(v: VisitInput) -> RunResult:
        table = tables[table_of[v[1], v[3]]]
        egfr_value = None
        out: list[tuple[int, str]] = []
        append = out.append
        bits = 0
        worst = 0
        for idx, conv, down, g, r, bit, is_normal, is_guidance, is_referral in table:
            x: Any = v[idx]
            if x is None:
                if idx != i_egfr:
                    continue
                x = egfr_value = fill_egfr(v)
                if x is None:
                    continue
            elif conv is not None:
                x = conv[x]
            if down:
                x = -x
            if x >= r:
                append(is_referral)
                bits |= bit
                worst = 2
            elif x >= g:
                append(is_guidance)
                bits |= bit
                if not worst:
                    worst = 1
            else:
                append(is_normal)
        level = decide(v, bits, sex_index[v[1]])[0] if decide is not None else None
        return out, worst >= follow_min, bits, level, egfr_value

    return run


def _egfr_filler() -> Callable[[VisitInput], float | None]:
    min_age, compute, round_ = egfr_eq.MIN_AGE, egfr_eq.egfr_jsn, egfr_eq.round_egfr

    def fill(v: VisitInput) -> float | None:
        """eGFR from creatinine when it was not given (a given eGFR always wins)."""
        cr = v.creatinine
        if cr is None or not cr > 0 or v.age < min_age:
            return None
        return round_(compute(cr, v.age, v.sex))

    return fill


def _grades_runner(ruleset: RuleSet, egfr_no: int | None) -> Callable[[VisitInput], RunResult]:
    tables: list[tuple[tuple[Any, ...], ...]] = []
    for sex in ("M", "F"):
        for fasting_state in (True, False, None):
            entries = []
            for no, rule in enumerate(ruleset.items):
                if rule.fasting is not None and rule.fasting is not fasting_state:
                    continue
                idx, _, conv = _common(rule)
                cuts, grades = _cuts(rule, sex)
                med = FIELD_INDEX[rule.treated_by] if rule.treated_by else None
                graded = tuple((no, grade) for grade in grades)
                entries.append((idx, conv, cuts, graded, (no, TREATED) if med is not None else None, med))
            tables.append(tuple(entries))
    table_of = _TABLE_OF
    follow = ruleset.follow_up
    fill_egfr = _egfr_filler()
    i_egfr = _I_EGFR if egfr_no is not None else -1

    def run(v: VisitInput) -> RunResult:
        table = tables[table_of[v[1], v[3]]]
        egfr_value = None
        out: list[tuple[int, str]] = []
        append = out.append
        follow_up = False
        for idx, conv, cuts, graded, treated, med in table:
            x: Any = v[idx]
            if x is None:
                if idx != i_egfr:
                    continue
                x = egfr_value = fill_egfr(v)
                if x is None:
                    continue
            elif conv is not None:
                x = conv[x]  # validates the value even when the grade is E
            pair = treated if med is not None and v[med] else graded[bisect_right(cuts, x)]
            if pair[1] in follow:
                follow_up = True
            append(pair)
        return out, follow_up, 0, None, egfr_value

    return run


def _cuts(rule: ItemRule, sex: str) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Band edges and the grade of each interval between them (UNGRADED for gaps)."""
    bands = rule.bands[sex]
    cuts: list[float] = []
    grades: list[str] = []
    prev_lt: Any = None
    for i, band in enumerate(bands):
        if i == 0:
            if band.ge is not None:
                grades.append(UNGRADED)
                cuts.append(band.ge)
        elif band.ge is not None and prev_lt is not None and band.ge > prev_lt:
            cuts.append(prev_lt)
            grades.append(UNGRADED)
        if i > 0 and band.ge is not None:
            cuts.append(band.ge)
        grades.append(band.grade)
        prev_lt = band.lt
    if prev_lt is not None:
        cuts.append(prev_lt)
        grades.append(UNGRADED)
    return tuple(cuts), tuple(grades)
