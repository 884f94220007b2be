"""Reads of reports, always scoped to the user's facilities (outside them: 404, audited)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F, JSONField, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.scoping import facility_ids_for, get_scoped_or_404, scope
from inference.models import InferenceJob, JobStatus
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


# --- the physician's worklist and the review screen ----------------------------------------------

WORKLIST_STATUSES = (ReportStatus.DRAFT, ReportStatus.IN_REVIEW)
# The most urgent first page: a physician works from the top (filters reach the rest). 200 rows took
# ≈100 ms to render under load; 50 keep the page well inside 150 ms p95 (bench/web_load.py).
WORKLIST_SIZE = 50


@dataclass(frozen=True)
class WorklistFilters:
    status: str = ""  # one of WORKLIST_STATUSES, CORRECTED, or "" for all
    kind: str = ""
    priority: int | None = None
    mine: bool = False  # only reports assigned to the user


def worklist_facility_ids(user: Any) -> list[int]:
    """Facilities whose worklist the user may open: where they sign, and where they administer
    (administrators watch the queue; they cannot sign)."""
    return sorted(set(facility_ids_for(user, "sign_reports")) | set(facility_ids_for(user, "administer_facility")))


# Signed reports whose values an import corrected after the latest signature: back on the worklist
# (要修正（データ訂正）) until an amendment is signed, so a wrong letter is not forgotten.
CORRECTED = "corrected"
CORRECTED_AFTER_SIGNING = Q(status__in=SIGNED, source_changed_at__gt=F("signed_at"))


def _worklist_base(user: Any, filters: WorklistFilters) -> QuerySet[Report]:
    qs = Report.objects.filter(Q(status__in=WORKLIST_STATUSES) | CORRECTED_AFTER_SIGNING,
                               facility_id__in=worklist_facility_ids(user))
    if filters.status in WORKLIST_STATUSES:
        qs = qs.filter(status=filters.status)
    elif filters.status == CORRECTED:
        qs = qs.filter(CORRECTED_AFTER_SIGNING)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.priority is not None:
        qs = qs.filter(priority=filters.priority)
    if filters.mine:
        qs = qs.filter(assigned_physician=user)
    # Urgent first (critical AI findings, then follow-up flags); within a priority, whoever has
    # waited longest. Served by the report_worklist index.
    return qs.order_by("-priority", "created_at", "id")


def report_worklist(user: Any, filters: WorklistFilters) -> QuerySet[Report]:
    """The worklist rows with what each shows (patient, target, assignee, the head revision's number
    and grounding flags) in one query, whatever the number of rows."""
    head = ReportRevision.objects.filter(report=OuterRef("pk")).order_by("-number")
    return (_worklist_base(user, filters)
            .select_related("patient", "facility", "visit", "study", "assigned_physician")
            .annotate(head_number=Subquery(head.values("number")[:1]),
                      head_created_at=Subquery(head.values("created_at")[:1]),
                      head_grounding=Subquery(head.values("grounding")[:1], output_field=JSONField()))
            [:WORKLIST_SIZE])


def worklist_neighbours(user: Any, report: Report) -> tuple[int | None, int | None]:
    """The previous and next report in the user's (unfiltered) worklist order, for the review
    screen's next/previous shortcuts. A report no longer in the list (signed) goes on to the first."""
    if not worklist_facility_ids(user):
        return None, None
    ids = list(_worklist_base(user, WorklistFilters()).values_list("pk", flat=True)[:WORKLIST_SIZE])
    if report.pk not in ids:
        return None, (ids[0] if ids else None)
    i = ids.index(report.pk)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)


def drafts_in_progress(user: Any, limit: int = 20) -> list[InferenceJob]:
    """Drafts being generated for the user's worklist facilities (shadow models are never shown)."""
    return list(InferenceJob.objects
                .filter(facility_id__in=worklist_facility_ids(user), status__in=(JobStatus.QUEUED, JobStatus.RUNNING),
                        model_version__shadow=False)
                .select_related("patient").order_by("queued_at", "id")[:limit])


def report_for_reading(user: Any, pk: int) -> Report:
    """A report for the review screen: anyone who may see its facility's records, and auditors of
    the facility (they check what was signed). Outside that, 404, audited like every scoped read."""
    ids = set(facility_ids_for(user)) | set(facility_ids_for(user, "review_audit"))
    qs = Report.objects.select_related("facility", "patient", "visit", "study", "assigned_physician")
    report = qs.filter(pk=pk, facility_id__in=ids).first()
    if report is None:
        audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="reports.report",
                     object_id=str(pk), details={"lookup": {"pk": str(pk)}, "perm": "access_facility|review_audit"})
        raise Http404
    return report


def revisions_of(report: Report) -> list[ReportRevision]:
    return list(report.revisions.select_related("author_user").order_by("number"))


def signoffs_of(report: Report) -> list[SignOff]:
    return list(SignOff.objects.filter(report=report).select_related("physician", "revision").order_by("signed_at"))


def prior_signed_reports(report: Report, limit: int = 5) -> list[tuple[Report, SignOff]]:
    """The same patient's earlier signed reports with their latest signature, newest first."""
    if report.patient_id is None:
        return []
    reports = list(Report.objects.filter(patient_id=report.patient_id, facility_id=report.facility_id,
                                         status__in=SIGNED).exclude(pk=report.pk)
                   .select_related("visit", "study").order_by("-signed_at")[:limit])
    latest: dict[int, SignOff] = {}
    for signoff in (SignOff.objects.filter(report__in=reports).select_related("revision", "physician")
                    .order_by("report_id", "-signed_at")):
        latest.setdefault(signoff.report_id, signoff)
    return [(r, latest[r.pk]) for r in reports if r.pk in latest]
