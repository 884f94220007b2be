"""Reads. Every PHI read through here is audited by the caller's view (the view knows whether a
person looked at it)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from clinical.models import Facility, Patient
from clinical.scoping import facility_ids_for, scope


def patient_list(*, user: Any, query: str = "", facility_id: int | None = None) -> QuerySet[Patient]:
    qs = scope(Patient.objects.select_related("facility"), user)
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    query = query.strip()
    if query:
        qs = qs.filter(
            Q(mrn__iexact=query) | Q(family_name__contains=query) | Q(given_name__contains=query)
            | Q(family_name_kana__contains=query) | Q(given_name_kana__contains=query)
        )
    return qs


def facilities_for(*, user: Any, perm: str = "access_facility") -> QuerySet[Facility]:
    return Facility.objects.filter(id__in=facility_ids_for(user, perm))
