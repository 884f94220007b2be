"""The audit search form: GET parameters in, an `AuditQuery` out. Dates are local (Asia/Tokyo)
calendar days, inclusive at both ends, as a reviewer means them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.kinds import EventKind, Outcome
from audit.selectors import AuditQuery


class AuditSearchForm(forms.Form):
    patient_id = forms.IntegerField(label=_("受診者ID"), required=False, min_value=1)
    mrn = forms.CharField(label=_("受診者番号"), required=False, max_length=40)
    user = forms.CharField(label=_("利用者名"), required=False, max_length=150)
    user_id = forms.IntegerField(label=_("利用者ID"), required=False, min_value=1)
    kind = forms.MultipleChoiceField(label=_("種別"), required=False, choices=EventKind.choices,
                                     widget=forms.SelectMultiple(attrs={"size": 6}))
    object_type = forms.CharField(label=_("対象種別"), required=False, max_length=60)
    object_id = forms.CharField(label=_("対象ID"), required=False, max_length=64)
    outcome = forms.ChoiceField(label=_("結果"), required=False,
                                choices=[("", _("すべて")), *Outcome.choices])
    date_from = forms.DateField(label=_("開始日"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("終了日"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("終了日は開始日以降の日付にしてください。"))
        return data

    def to_query(self, *, mrn_patient_ids: tuple[int, ...] | None) -> AuditQuery:
        """`mrn_patient_ids`: the ids the MRN resolved to (the view resolves it; audit does not
        know patients). A patient id and an MRN together must both match."""
        data = self.cleaned_data
        patient_ids: tuple[int, ...] | None = None
        if data.get("patient_id"):
            patient_ids = (data["patient_id"],)
        if mrn_patient_ids is not None:
            patient_ids = (tuple(i for i in patient_ids if i in mrn_patient_ids)
                           if patient_ids is not None else mrn_patient_ids)
        return AuditQuery(
            patient_ids=patient_ids,
            user_id=data.get("user_id"),
            username=(data.get("user") or "").strip(),
            kinds=tuple(data.get("kind") or ()),
            object_type=(data.get("object_type") or "").strip(),
            object_id=(data.get("object_id") or "").strip(),
            outcome=data.get("outcome") or "",
            since=_local_midnight(data.get("date_from")),
            until=_local_midnight(data["date_to"] + dt.timedelta(days=1)) if data.get("date_to") else None,
        )


def _local_midnight(day: dt.date | None) -> dt.datetime | None:
    if day is None:
        return None
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_default_timezone())
