"""Judging stored visits with the pure rule engine and storing the results (ScreeningResult).

The engine (`clinical.screening`) knows nothing of the ORM; this module turns observations into
`VisitInput`s and the engine's answers into rows, in bulk."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from django.db import transaction

from clinical.models import CheckupVisit, Course, Observation, ScreeningResult, VisitStatus
from clinical.screening import REFERRAL, RuleSet, VisitInput, judge_many, load_ruleset

DEFAULT_RULESETS: dict[str, tuple[str, ...]] = {
    Course.TOKUTEI: ("mhlw-2024",),
    Course.TEIKI: ("mhlw-2024",),
    Course.DOCK: ("mhlw-2024", "ningen-dock"),
}
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


@transaction.atomic
def visits_screen(*, visit_ids: Iterable[int], chunk: int = 5000) -> int:
    """(Re-)judge visits with the rule sets of their course and store one result per rule set.
    Returns the number of visits judged. Safe to run twice: results are upserted."""
    ids = list(visit_ids)
    cache: dict[str, RuleSet] = {}
    judged = 0
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        visits = list(CheckupVisit.objects.filter(id__in=part).values_list(
            "id", "course", "fasting", "exam_date", "patient__sex", "patient__birth_date"))
        values: dict[int, dict[str, tuple[Decimal | None, str]]] = defaultdict(dict)
        for vid, item, num, text in Observation.objects.filter(visit_id__in=part).values_list(
                "visit_id", "item", "value_num", "value_text"):
            values[vid][item] = (num, text)
        by_ruleset: dict[str, list[VisitInput]] = defaultdict(list)
        for vid, course, fasting, exam_date, sex, birth in visits:
            vi = visit_input(vid, sex, age_on(birth, exam_date), fasting, values[vid])
            for name in DEFAULT_RULESETS[course]:
                by_ruleset[name].append(vi)
        rows: list[ScreeningResult] = []
        follow_up: dict[int, bool] = {vid: False for vid, *_ in visits}
        for name, inputs in by_ruleset.items():
            ruleset = _ruleset(name, cache)
            for j in judge_many(inputs, ruleset):
                vid = int(j.visit.visit_id)
                outcomes = j.outcomes
                flagged = any(o == REFERRAL for o in outcomes.values()) if name == "mhlw-2024" else j.follow_up
                if name == "mhlw-2024":
                    follow_up[vid] = flagged
                rows.append(ScreeningResult(
                    visit_id=vid, ruleset=ruleset.id, ruleset_version=ruleset.version, items=outcomes,
                    follow_up=flagged, reasons=list(j.reasons) if flagged else [], hierarchy=j.hierarchy or ""))
        ScreeningResult.objects.bulk_create(
            rows, batch_size=2000, update_conflicts=True, unique_fields=["visit", "ruleset"],
            update_fields=["ruleset_version", "items", "follow_up", "reasons", "hierarchy", "judged_at"])
        flagged_ids = [vid for vid, f in follow_up.items() if f]
        CheckupVisit.objects.filter(id__in=part).update(status=VisitStatus.SCREENED, follow_up=False)
        if flagged_ids:
            CheckupVisit.objects.filter(id__in=flagged_ids).update(follow_up=True)
        judged += len(visits)
    return judged
