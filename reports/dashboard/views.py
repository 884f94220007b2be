"""The AI quality dashboard (issue 7): per model version and task, what physicians did with the
drafts, over time, and shadow versions against the version in force. For facility administrators,
over the facilities they administer. Aggregates only: no patient is named on the page."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.models import Facility
from clinical.scoping import facility_ids_for
from reports.dashboard import selectors
from reports.dashboard.charts import weekly_svg


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _aware(day: date | None) -> datetime | None:
    return timezone.make_aware(datetime.combine(day, time.min)) if day else None


@login_required
@require_GET
def quality_dashboard(request: HttpRequest) -> HttpResponse:
    allowed = facility_ids_for(request.user, "administer_facility")
    if not allowed:
        raise PermissionDenied
    errors: list[str] = []
    facility_param = request.GET.get("facility", "")
    facility_ids = allowed
    if facility_param:
        if not facility_param.isdigit() or int(facility_param) not in allowed:
            errors.append(_("選択できない施設です。"))
        else:
            facility_ids = [int(facility_param)]
    until_day = _day(request.GET.get("until")) or timezone.localdate() + timedelta(days=1)
    since_day = _day(request.GET.get("since")) or until_day - timedelta(days=182)
    if request.GET.get("since") and _day(request.GET.get("since")) is None:
        errors.append(_("開始日は YYYY-MM-DD 形式で入力してください。"))
    if since_day >= until_day:
        errors.append(_("開始日は終了日より前にしてください。"))
        since_day = until_day - timedelta(days=182)
    since, until = _aware(since_day), _aware(until_day)
    rows = selectors.model_rows(facility_ids, since=since, until=until)
    series = selectors.weekly(facility_ids, since=since, until=until)
    charts = []
    for task in sorted({row.task for row in rows}):
        lines = [(f"{row.model_version.name} {row.model_version.version}", series.get((row.model_version.pk, task), []))
                 for row in rows if row.task == task]
        lines = [(label, points) for label, points in lines if points]
        if not lines:
            continue
        charts.append({
            "task": task,
            # weekly_svg escapes every label it draws.
            "distance": mark_safe(weekly_svg(_("平均編集距離（文字）"),  # noqa: S308
                                             [(label, [(p.week, p.mean_edit_distance) for p in pts])
                                              for label, pts in lines])),
            "unedited": mark_safe(weekly_svg(_("修正なしで署名された割合"),  # noqa: S308
                                             [(label, [(p.week, p.unedited_share) for p in pts])
                                              for label, pts in lines], percent=True)),
            "signed": mark_safe(weekly_svg(_("署名数（週）"),  # noqa: S308
                                           [(label, [(p.week, float(p.signed)) for p in pts])
                                            for label, pts in lines])),
        })
    shadows = selectors.shadow_rows(facility_ids)
    audit_record(kind=EventKind.PHI_SEARCH, object_type="reports.quality_dashboard",
                 details={"facilities": facility_ids, "since": since_day.isoformat(), "until": until_day.isoformat(),
                          "rows": len(rows)})
    context: dict[str, Any] = {
        "rows": rows, "charts": charts, "shadows": shadows, "errors": errors,
        "facilities": Facility.objects.filter(pk__in=allowed).order_by("code"), "facility": facility_param,
        "since": since_day, "until": until_day,
    }
    return render(request, "reports/quality_dashboard.html", context)
