"""Reads of reports, always scoped to the user's facilities (outside them: 404, audited)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from clinical.scoping import get_scoped_or_404, scope
from reports.models import Report, ReportRevision, ReportStatus, SignOff

SIGNED = (ReportStatus.SIGNED, ReportStatus.AMENDED)


def reports_for(user: Any) -> QuerySet[Report]:
    return scope(Report.objects.all(), user)


def report_for(user: Any, pk: int) -> Report:
    """One report the user may see (any role with access to its facility), or 404."""
    qs = Report.objects.select_related("facility", "patient", "visit", "study", "assigned_physician")
    return get_scoped_or_404(qs, user, pk=pk)


def head_revision(report: Report) -> ReportRevision:
    return report.revisions.select_related("author_user", "author_model_version").order_by("-number")[0]


def latest_signoff(report: Report) -> SignOff | None:
    return (SignOff.objects.filter(report=report).select_related("revision", "physician")
            .order_by("-signed_at").first())


def signed_report_for(user: Any, pk: int) -> tuple[Report, SignOff]:
    """A signed report and its latest sign-off; outputs (letters, FHIR) come from these only."""
    report = report_for(user, pk)
    signoff = latest_signoff(report)
    if report.status not in SIGNED or signoff is None:
        from django.http import Http404

        raise Http404("report is not signed")
    return report, signoff
