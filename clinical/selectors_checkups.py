"""Reads for checkup screens: scoped, paged, with a constant number of queries per page."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet

from clinical.models import CheckupVisit, Observation, Patient, ScreeningResult
from clinical.scoping import scope


@dataclass(frozen=True)
class VisitFilters:
    date_from: date | None = None
    date_to: date | None = None
    facility_id: int | None = None
    follow_up: bool | None = None
    item: str = ""  # e.g. "sbp"
    outcome: str = ""  # e.g. "referral"
    query: str = ""


def visit_worklist(*, user: Any, filters: VisitFilters) -> QuerySet[CheckupVisit]:
    qs = scope(CheckupVisit.objects.select_related("patient", "facility"), user)
    if filters.date_from:
        qs = qs.filter(exam_date__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(exam_date__lte=filters.date_to)
    if filters.facility_id:
        qs = qs.filter(facility_id=filters.facility_id)
    if filters.follow_up is not None:
        qs = qs.filter(follow_up=filters.follow_up)
    if filters.query:
        qs = qs.filter(patient__mrn=filters.query) | qs.filter(patient__family_name_kana__startswith=filters.query)
    if filters.item and filters.outcome:
        qs = qs.filter(screenings__ruleset="mhlw-2024", **{f"screenings__items__{filters.item}": filters.outcome})
    return qs.prefetch_related(
        Prefetch("screenings", queryset=ScreeningResult.objects.filter(ruleset="mhlw-2024"), to_attr="mhlw")
    ).order_by("-exam_date", "id")


def visit_detail(*, visit: CheckupVisit) -> dict[str, Any]:
    observations = {o.item: o for o in visit.observations.all()}
    screenings = {s.ruleset: s for s in visit.screenings.all()}
    return {"observations": observations, "screenings": screenings}


def patient_trends(*, patient: Patient) -> dict[str, list[tuple[date, Decimal]]]:
    """Item → [(exam date, value)] over all of the patient's visits, oldest first (経年変化)."""
    series: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    rows = Observation.objects.filter(visit__patient=patient, value_num__isnull=False).order_by(
        "visit__exam_date").values_list("item", "visit__exam_date", "value_num")
    for item, day, value in rows:
        if value is not None:  # filtered in SQL; this tells the type checker
            series[item].append((day, value))
    return dict(series)
