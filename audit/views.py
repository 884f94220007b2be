"""Audit review for administrators and auditors (read-only): search, a patient's access history,
exports (CSV, FHIR AuditEvent), the integrity check. Every look at the log is itself audited.

Scope: events of the facilities where the reviewer holds `review_audit`, plus events without a
facility (logins, failed logins). Audit knows no other app: the facility ids come through the
`AUDIT_SCOPE_RESOLVER` hook and MRNs resolve through `AUDIT_PATIENT_MODEL` (settings), never
through an import of clinical code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from audit.exports import csv_stream, fhir_bundle_stream
from audit.forms import AuditSearchForm
from audit.kinds import EventKind, Outcome
from audit.selectors import (
    AuditQuery,
    audit_iter,
    audit_search,
    patient_access_history,
    reviewable_facility_ids,
)
from audit.services import audit_record
from audit.verify import verify_chain

EXPORT_MAX_ROWS_DEFAULT = 100_000


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused form post is audited and explained; nothing else happens."""
    audit_record(
        kind=EventKind.CSRF_REJECTED,
        outcome=Outcome.DENIED,
        object_type="request",
        object_id=request.path[:64],
        details={"reason": reason, "method": request.method},
    )
    return render(request, "errors/csrf_failure.html", {"reason": reason}, status=403)


def _review_scope(request: HttpRequest) -> list[int]:
    ids = reviewable_facility_ids(request.user)
    if not ids:
        audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="audit.auditevent",
                     object_id=request.path[:64], details={"perm": "review_audit"})
        raise PermissionDenied
    return ids


def _own_facility(ids: Sequence[int]) -> int | None:
    # A reviewer of one facility: their look at the log belongs to that facility's trail.
    return ids[0] if len(ids) == 1 else None


def _patient_ids_for_mrn(mrn: str, facility_ids: Sequence[int]) -> tuple[int, ...]:
    """MRN → patient ids, within the reviewer's facilities only (an MRN is unique per facility)."""
    label = getattr(settings, "AUDIT_PATIENT_MODEL", "")
    if not label:
        return ()
    model = apps.get_model(label)
    qs = model._default_manager.filter(mrn=mrn, facility_id__in=list(facility_ids))
    return tuple(sorted(qs.values_list("pk", flat=True)))


def _patient_in_scope(patient_id: int, facility_ids: Sequence[int]) -> bool:
    """Whether the patient belongs to one of the reviewer's facilities. Another facility's patient
    is answered 404 like everywhere else (an empty history would still confirm the id is asked
    about, and breaks the one rule)."""
    label = getattr(settings, "AUDIT_PATIENT_MODEL", "")
    if not label:
        return True  # no patient model to ask: the history is filtered by facility anyway
    model = apps.get_model(label)
    return model._default_manager.filter(pk=patient_id, facility_id__in=list(facility_ids)).exists()


def _query(request: HttpRequest, ids: Sequence[int]) -> tuple[AuditSearchForm, AuditQuery | None]:
    form = AuditSearchForm(request.GET or None)
    if not request.GET:
        return form, AuditQuery()
    if not form.is_valid():
        return form, None
    mrn = (form.cleaned_data.get("mrn") or "").strip()
    return form, form.to_query(mrn_patient_ids=_patient_ids_for_mrn(mrn, ids) if mrn else None)


def _before(request: HttpRequest) -> int | None:
    raw = request.GET.get("before", "")
    return int(raw) if raw.isdigit() else None


@login_required
@require_http_methods(["GET"])
def audit_list(request: HttpRequest) -> HttpResponse:
    ids = _review_scope(request)
    form, query = _query(request, ids)
    page = None
    next_url = ""
    if query is not None:
        before = _before(request)
        page = audit_search(facility_ids=ids, query=query, before=before)
        audit_record(kind=EventKind.PHI_SEARCH, facility_id=_own_facility(ids), object_type="audit.auditevent",
                     details={"filters": query.as_details(), "before": before, "results": len(page.events)})
        if page.next_before is not None:
            params = request.GET.copy()
            params["before"] = str(page.next_before)
            next_url = request.path + "?" + params.urlencode()
    export_params = request.GET.copy()
    export_params.pop("before", None)
    return render(request, "audit/list.html", {
        "form": form, "page": page, "next_url": next_url, "export_query": export_params.urlencode(),
        "kind_labels": dict(EventKind.choices), "outcome_labels": dict(Outcome.choices),
    })


@login_required
@require_http_methods(["GET"])
def audit_patient(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Who looked at this person: all events naming the patient, grouped by user."""
    ids = _review_scope(request)
    if not _patient_in_scope(patient_id, ids):
        audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="audit.patient_history",
                     object_id=patient_id, details={"perm": "review_audit"})
        raise Http404
    history = patient_access_history(facility_ids=ids, patient_ids=[patient_id])
    audit_record(kind=EventKind.PHI_SEARCH, facility_id=_own_facility(ids), object_type="audit.patient_history",
                 object_id=patient_id, patient_id=patient_id,
                 details={"users": len(history.by_user), "events": len(history.events)})
    return render(request, "audit/patient.html", {
        "patient_id": patient_id, "history": history,
        "kind_labels": dict(EventKind.choices), "outcome_labels": dict(Outcome.choices),
    })


def _export(request: HttpRequest, fmt: str) -> StreamingHttpResponse | HttpResponse:
    ids = _review_scope(request)
    form, query = _query(request, ids)
    if query is None:
        return render(request, "audit/list.html", {"form": form, "page": None}, status=400)
    max_rows = int(getattr(settings, "AUDIT_EXPORT_MAX_ROWS", EXPORT_MAX_ROWS_DEFAULT))
    # Recorded before the first byte leaves: an export that is cut off half way was still made.
    audit_record(kind=EventKind.EXPORT, facility_id=_own_facility(ids), object_type="audit.auditevent",
                 details={"format": fmt, "filters": query.as_details(), "max_rows": max_rows})
    events = audit_iter(facility_ids=ids, query=query, max_rows=max_rows)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        response = StreamingHttpResponse(csv_stream(events), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    else:
        response = StreamingHttpResponse(fhir_bundle_stream(events), content_type="application/fhir+json")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.fhir.json"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET"])
def audit_export_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    return _export(request, "csv")


@login_required
@require_http_methods(["GET"])
def audit_export_fhir(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    return _export(request, "fhir")


@login_required
@require_http_methods(["GET", "POST"])
def audit_verify(request: HttpRequest) -> HttpResponse:
    """The integrity check: walks the whole chain (verify_chain) on a button press (POST)."""
    ids = _review_scope(request)
    context: dict[str, Any] = {"result": None}
    if request.method == "POST":
        started = timezone.now()
        result = verify_chain()
        elapsed = (timezone.now() - started).total_seconds()
        brk = result.first_break
        audit_record(
            kind=EventKind.AUDIT_VERIFY,
            outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
            facility_id=_own_facility(ids),
            object_type="audit.auditevent",
            details={"checked": result.checked, "ok": result.ok, "seconds": round(elapsed, 3),
                     **({"break_seq": brk.seq, "reason": brk.reason} if brk else {})},
        )
        context.update(result=result, elapsed=elapsed)
    return render(request, "audit/verify.html", context)
