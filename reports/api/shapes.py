"""The dicts the API's output serializers render: one function per shape."""

from __future__ import annotations

from typing import Any

from clinical.scoping import facility_ids_for
from reports import presenting, selectors
from reports.models import Report, ReportRevision, SignOff
from reports.services import ReportRefused, RevisionConflict


def revision(rev: ReportRevision) -> dict[str, Any]:
    return {"number": rev.number, "kind": rev.kind, "kind_label": str(rev.get_kind_display()), "text": rev.text,
            "author": presenting.author(rev), "created_at": rev.created_at, "amendment_reason": rev.amendment_reason,
            "issues": presenting.issues(rev)}


def signoff(so: SignOff) -> dict[str, Any]:
    return {"revision_number": so.revision.number, "physician": so.physician.get_username(),
            "physician_name": str(getattr(so.physician, "display_name", "") or so.physician.get_username()),
            "signed_at": so.signed_at, "method": so.method, "content_sha256": so.content_sha256,
            "amends": so.amends_id is not None, "reason": so.reason}


def report(rep: Report, user: Any) -> dict[str, Any]:
    can_sign = rep.facility_id in facility_ids_for(user, "sign_reports")
    signed = rep.status in selectors.SIGNED
    latest = selectors.latest_signoff(rep)
    patient = rep.patient
    return {
        "id": rep.pk, "kind": rep.kind, "kind_label": presenting.kind_label(rep.kind), "status": rep.status,
        "status_label": str(rep.get_status_display()), "priority": rep.priority,
        "priority_label": str(rep.get_priority_display()), "facility": rep.facility.code,
        "patient": None if patient is None else {"id": patient.pk, "mrn": patient.mrn, "name": patient.full_name},
        "visit_id": rep.visit_id, "study_id": rep.study_id,
        "assigned_physician": rep.assigned_physician.get_username() if rep.assigned_physician else None,
        "signed_at": rep.signed_at, "can_edit": can_sign and not signed, "can_sign": can_sign and not signed,
        "can_amend": can_sign and signed, "head": revision(selectors.head_revision(rep)),
        "signoff": signoff(latest) if latest else None,
    }


def conflict(exc: RevisionConflict) -> dict[str, Any]:
    current = exc.current
    return {"error": exc.message, "code": exc.code, "yours": exc.yours,
            "current": {"number": current.number, "text": current.text, "author": presenting.author(current),
                        "created_at": current.created_at}}


def refusal(exc: ReportRefused, sources: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.message, "code": exc.code}
    unconfirmed = getattr(exc, "unconfirmed", None)
    if unconfirmed:
        body["code"] = "unconfirmed_numbers"
        body["unconfirmed"] = presenting.describe(unconfirmed, sources or {})
    elif exc.code == "sign_refused":
        body["code"] = "reauth_failed"
    return body
