"""What reports add to clinical screens through clinical.extensions (clinical never imports us):
the physician's worklist in the navigation, and a visit's reports on the visit page."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from clinical.extensions import Action, nav_link_providers, visit_action_providers
from clinical.scoping import facility_ids_for


def _worklist_link(user: Any) -> Action | None:
    # Both permission lists are cached on the user object by the inference link already.
    if facility_ids_for(user, "sign_reports") or facility_ids_for(user, "administer_facility"):
        return Action(label=_("所見一覧"), url=reverse("reports_worklist"))
    return None


def _visit_reports(visit: Any, user: Any) -> Action | None:
    from reports.models import Report

    if visit.facility_id not in facility_ids_for(user):
        return None
    report = Report.objects.filter(visit=visit).order_by("id").only("pk", "status").first()
    if report is None:
        return None
    label = _("所見を開く（%(status)s）") % {"status": report.get_status_display()}
    return Action(label=label, url=reverse("reports_review", args=[report.pk]))


def install() -> None:
    if _visit_reports not in visit_action_providers:
        visit_action_providers.append(_visit_reports)
    if _worklist_link not in nav_link_providers:
        nav_link_providers.append(_worklist_link)
