"""Judging stored visits with the pure rule engine and storing the results (ScreeningResult).

The engine (`clinical.screening`) knows nothing of the ORM; this module turns observations into
`VisitInput`s and the engine's answers into rows, in bulk."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from clinical.bulk import copy_rows, is_postgresql
from clinical.models import CheckupVisit, Course, FacilityRuleSet, Observation, ScreeningResult, VisitStatus
from clinical.screening import REFERRAL, RuleSet, VisitInput, judge_many, load_ruleset
from clinical.screening.model import LEVELS

DEFAULT_RULESETS: dict[str, tuple[str, ...]] = {
    Course.TOKUTEI: ("mhlw-2024",),
    Course.TEIKI: ("mhlw-2024",),
    Course.DOCK: ("mhlw-2024", "ningen-dock"),
}
CourseRuleSets = Mapping[str, Sequence[str]]  # course → rule-set ids
FLAGS = ("med_bp", "med_glucose", "med_lipid", "smoking")
NUMBERS = ("waist_cm", "bmi", "sbp", "dbp", "tg", "hdl", "ldl", "non_hdl", "fbg", "rbg", "hba1c", "ast", "alt",
           "ggt", "egfr", "creatinine", "hb", "uric_acid")


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def visit_input(visit_id: int, sex: str, age: int, fasting: bool | None,
                values: dict[str, tuple[Decimal | None, str]]) -> VisitInput:
    def num(key: str) -> float | None:
        v = values.get(key)
        return float(v[0]) if v is not None and v[0] is not None else None

    bmi = num("bmi")
    height, weight = num("height_cm"), num("weight_kg")
    if bmi is None and height and weight:
        bmi = round(weight / (height / 100) ** 2, 1)  # as printed on the 結果票: one decimal
    protein = values.get("urine_protein")
    kwargs = {key: num(key) for key in NUMBERS}
    kwargs["bmi"] = bmi
    return VisitInput(
        str(visit_id), sex, age, fasting, **kwargs,  # type: ignore[arg-type]
        urine_protein=(protein[1] or None) if protein else None,
        **{flag: bool(num(flag)) for flag in FLAGS},
    )


def _ruleset(name: str, cache: dict[str, RuleSet]) -> RuleSet:
    if name not in cache:
        cache[name] = load_ruleset(name)
    return cache[name]


VisitMeta = tuple[int, str, bool | None, date, str, date]  # id, course, fasting, exam date, sex, birth


def rulesets_in_force(facility_ids: Iterable[int]) -> dict[int, dict[str, tuple[str, ...]]]:
    """Per facility, the rule sets that judge each course: the facility's choice
    (FacilityRuleSet), else DEFAULT_RULESETS. One query for any number of facilities."""
    ids = list(facility_ids)
    chosen: dict[int, dict[str, tuple[str, ...]]] = {fid: dict(DEFAULT_RULESETS) for fid in ids}
    for fid, course, names in FacilityRuleSet.objects.filter(facility_id__in=ids).values_list(
            "facility_id", "course", "rulesets"):
        if names:  # an empty choice would silently judge nothing: the default stays in force
            chosen[fid][course] = tuple(names)
    return chosen


@transaction.atomic
def visits_screen(*, visit_ids: Iterable[int], chunk: int = 5000) -> int:
    """(Re-)judge stored visits with the rule sets their facility has in force for their course.
    Safe to run twice (upserts)."""
    ids = list(visit_ids)
    judged = 0
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        by_facility: dict[int, list[VisitMeta]] = defaultdict(list)
        for fid, vid, course, fasting, exam_date, sex, birth in CheckupVisit.objects.filter(id__in=part).values_list(
                "facility_id", "id", "course", "fasting", "exam_date", "patient__sex", "patient__birth_date"):
            by_facility[fid].append((vid, course, fasting, exam_date, sex, birth))
        values: dict[int, dict[str, tuple[Decimal | None, str]]] = defaultdict(dict)
        for vid, item, num, text in Observation.objects.filter(visit_id__in=part).values_list(
                "visit_id", "item", "value_num", "value_text"):
            values[vid][item] = (num, text)
        in_force = rulesets_in_force(by_facility)
        for fid, visits in by_facility.items():
            judged += visits_screen_values(visits=visits, values=values, rulesets=in_force[fid])
    return judged


@dataclass(frozen=True)
class Judged:
    """One visit's judgements, ready to store: (ruleset id, version, items, follow_up, reasons, hierarchy)."""

    visit_id: int
    follow_up: bool
    rows: tuple[tuple[str, str, dict[str, str], bool, list[str], str], ...]


def judge_visits(visits: list[VisitMeta], values: dict[int, dict[str, tuple[Decimal | None, str]]], *,
                 rulesets: CourseRuleSets | None = None) -> list[Judged]:
    """Judge visits whose values the caller already holds, with `rulesets` (course → ids: the
    facility's choice from `rulesets_in_force`), else the defaults. No DB.

    The visit's follow-up flag (受診勧奨) comes from the 判定値 (LEVELS) rule sets when its course
    is judged by one; a course judged only by graded sets takes their follow-up outcomes instead, so
    no choice of rule sets leaves a visit that needs a doctor unflagged."""
    chosen = rulesets if rulesets is not None else DEFAULT_RULESETS
    cache: dict[str, RuleSet] = {}
    by_ruleset: dict[str, list[VisitInput]] = defaultdict(list)
    for vid, course, fasting, exam_date, sex, birth in visits:
        vi = visit_input(vid, sex, age_on(birth, exam_date), fasting, values.get(vid, {}))
        for name in chosen.get(course) or DEFAULT_RULESETS[course]:
            by_ruleset[name].append(vi)
    rows: dict[int, list[tuple[str, str, dict[str, str], bool, list[str], str]]] = defaultdict(list)
    by_levels: dict[int, bool] = {}
    by_others: dict[int, bool] = {v[0]: False for v in visits}
    for name, inputs in by_ruleset.items():
        ruleset = _ruleset(name, cache)
        levels = ruleset.kind == LEVELS
        for j in judge_many(inputs, ruleset):
            vid = int(j.visit.visit_id)
            outcomes = j.outcomes
            flagged = any(o == REFERRAL for o in outcomes.values()) if levels else j.follow_up
            if levels:
                by_levels[vid] = by_levels.get(vid, False) or flagged
            else:
                by_others[vid] = by_others[vid] or flagged
            rows[vid].append((ruleset.id, ruleset.version, outcomes, flagged,
                              list(j.reasons) if flagged else [], j.hierarchy or ""))
    return [Judged(vid, by_levels.get(vid, other), tuple(rows[vid])) for vid, other in by_others.items()]


def store_judgements(judged: list[Judged], *, fresh: bool = False) -> None:
    """Store results. `fresh`: the visits were created in this transaction and have no results yet,
    so on PostgreSQL the rows go in by COPY (their visits already carry status and follow-up)."""
    if fresh and is_postgresql():
        now = timezone.now()
        copy_rows(ScreeningResult, ("visit_id", "ruleset", "ruleset_version", "items", "follow_up", "reasons",
                                    "hierarchy", "judged_at"),
                  ((j.visit_id, r[0], r[1], Jsonb(r[2]), r[3], Jsonb(r[4]), r[5], now) for j in judged for r in j.rows))
        return
    _drop_results_no_longer_judged(judged)
    ScreeningResult.objects.bulk_create(
        [ScreeningResult(visit_id=j.visit_id, ruleset=r[0], ruleset_version=r[1], items=r[2], follow_up=r[3],
                         reasons=r[4], hierarchy=r[5]) for j in judged for r in j.rows],
        batch_size=5000, update_conflicts=True, unique_fields=["visit", "ruleset"],
        update_fields=["ruleset_version", "items", "follow_up", "reasons", "hierarchy", "judged_at"])
    for flag in (True, False):
        ids = [j.visit_id for j in judged if j.follow_up == flag]
        for start in range(0, len(ids), 5000):
            CheckupVisit.objects.filter(id__in=ids[start:start + 5000]).update(status=VisitStatus.SCREENED,
                                                                                follow_up=flag)


def _drop_results_no_longer_judged(judged: list[Judged]) -> None:
    # A re-judged visit shows the judgements of the rule sets in force now: a result left by a rule
    # set the facility has since dropped would read as current.
    by_set: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for j in judged:
        by_set[tuple(sorted(r[0] for r in j.rows))].append(j.visit_id)
    for names, ids in by_set.items():
        for start in range(0, len(ids), 5000):
            ScreeningResult.objects.filter(visit_id__in=ids[start:start + 5000]).exclude(ruleset__in=names).delete()


def visits_screen_values(*, visits: list[VisitMeta], values: dict[int, dict[str, tuple[Decimal | None, str]]],
                         rulesets: CourseRuleSets | None = None) -> int:
    store_judgements(judge_visits(visits, values, rulesets=rulesets))
    return len(visits)
