"""Writes of reports. For now: turning a finished model draft into a report revision."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max

from audit.kinds import EventKind
from audit.services import audit_record
from inference.models import InferenceJob
from reports.models import Report, ReportRevision, ReportStatus


def revision_create_from_draft(*, job: InferenceJob) -> ReportRevision | None:
    """Store a SUCCEEDED job's draft as the next revision of its report (the first for a new one).
    Runs inside the transaction that marks the job SUCCEEDED. Idempotent per job (the revision's
    unique `source_job`); a report already past DRAFT is left alone (a physician owns it now)."""
    with transaction.atomic():
        existing = ReportRevision.objects.filter(source_job=job).first()
        if existing is not None:
            return existing
        lookup: dict[str, Any] = {"visit_id": job.visit_id} if job.visit_id else {"study_id": job.study_id}
        report, _created = Report.objects.select_for_update().get_or_create(
            kind=job.task, **lookup, defaults={"facility_id": job.facility_id, "patient_id": job.patient_id})
        if report.status != ReportStatus.DRAFT:
            return None
        number = (report.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
        mv = job.model_version
        revision = ReportRevision.objects.create(
            report=report, number=number, text=job.report_text, findings=job.findings,
            reference_data=job.reference_data, grounding=job.grounding, inputs=job.inputs,
            prompt_version=job.prompt_version, author_model_version=mv,
            author_model_label=f"{mv.name} {mv.version} ({mv.engine})", source_job=job,
        )
        audit_record(kind=EventKind.CREATE, facility_id=job.facility_id, object_type="reports.reportrevision",
                     object_id=revision.pk, patient_id=job.patient_id,
                     details={"report": report.pk, "number": number, "job": job.pk, "model": str(mv),
                              "grounding_issues": len((job.grounding or {}).get("issues", []))})
    return revision
