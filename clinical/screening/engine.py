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
            _levels_runner(ruleset, self.egfr_rule_no is not None)
            if ruleset.kind == LEVELS
            else _grades_runner(ruleset, self.egfr_rule_no is not None)
        )


def compiled(ruleset: RuleSet) -> Compiled:
    c = ruleset._engine
    if c is None:
        c = Compiled(ruleset)
        object.__setattr__(ruleset, "_engine", c)  # frozen dataclass: a one-time cache slot
    return c  # type: ignore[no-any-return]


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
    return ValueError(
        f"visit {visit.visit_id!r}: {exc.args[0]!r} is not a valid sex (M/F) or qualitative value"
    )


def _with_egfr(v: VisitInput) -> tuple[VisitInput, float | None]:
    """Fill in eGFR from creatinine when it was not given (the given value always wins)."""
    if v[_I_EGFR] is None and egfr_eq.computable(v.creatinine, v.age):
        assert v.creatinine is not None
        value = egfr_eq.round_egfr(egfr_eq.egfr_jsn(v.creatinine, v.age, v.sex))
        return v._replace(egfr=value), value
    return v, None


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


def _levels_runner(ruleset: RuleSet, has_egfr: bool) -> Callable[[VisitInput], RunResult]:
    risk_bit = {}
    if ruleset.hierarchy is not None:
        risk_bit = {rid: 1 << i for i, (rid, _) in enumerate(ruleset.hierarchy.risk_groups)}
    entries = []
    for no, rule in enumerate(ruleset.items):
        idx, fasting, conv = _common(rule)
        by_sex = []
        for sex in ("M", "F"):
            lr = rule.levels[sex]
            sign, g = _upward(lr.guidance, rule.scale)
            r = _upward(lr.referral, rule.scale)[1] if lr.referral is not None else _INF
            by_sex.append((sign, g, r))
        entries.append((no, idx, fasting, conv, tuple(by_sex), risk_bit.get(rule.risk or "", 0)))
    table = tuple(entries)
    rank = {NORMAL: 0, GUIDANCE: 1, REFERRAL: 2}
    follow_min = min(rank[o] for o in ruleset.follow_up)
    decide = make_decider(ruleset.hierarchy) if ruleset.hierarchy is not None else None
    sex_index = SEX_INDEX

    def run(v: VisitInput) -> RunResult:
        si = sex_index[v[1]]
        egfr_value = None
        if has_egfr:
            v, egfr_value = _with_egfr(v)
        fasting = v[3]
        out: list[tuple[int, str]] = []
        append = out.append
        bits = 0
        worst = 0
        for no, idx, need_fasting, conv, by_sex, bit in table:
            x = v[idx]
            if x is None or (need_fasting is not None and need_fasting is not fasting):
                continue
            if conv is not None:
                x = conv[x]
            sign, g, r = by_sex[si]
            x = x * sign
            if x >= r:
                append((no, REFERRAL))
                bits |= bit
                worst = 2
            elif x >= g:
                append((no, GUIDANCE))
                bits |= bit
                if not worst:
                    worst = 1
            else:
                append((no, NORMAL))
        level = decide(v, bits, si)[0] if decide is not None else None
        return out, worst >= follow_min, bits, level, egfr_value

    return run


def _grades_runner(ruleset: RuleSet, has_egfr: bool) -> Callable[[VisitInput], RunResult]:
    entries = []
    for no, rule in enumerate(ruleset.items):
        idx, fasting, conv = _common(rule)
        cuts, grades = zip(*(_cuts(rule, sex) for sex in ("M", "F")), strict=True)
        med = FIELD_INDEX[rule.treated_by] if rule.treated_by else None
        entries.append((no, idx, fasting, conv, cuts, grades, med))
    table = tuple(entries)
    follow = ruleset.follow_up
    sex_index = SEX_INDEX

    def run(v: VisitInput) -> RunResult:
        si = sex_index[v[1]]
        egfr_value = None
        if has_egfr:
            v, egfr_value = _with_egfr(v)
        fasting = v[3]
        out: list[tuple[int, str]] = []
        append = out.append
        follow_up = False
        for no, idx, need_fasting, conv, cuts, grades, med in table:
            x = v[idx]
            if x is None or (need_fasting is not None and need_fasting is not fasting):
                continue
            if conv is not None:
                x = conv[x]  # validates the value even when the grade is E
            if med is not None and v[med]:
                o = TREATED
            else:
                o = grades[si][bisect_right(cuts[si], x)]
            if o in follow:
                follow_up = True
            append((no, o))
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
