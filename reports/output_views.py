"""Outputs of signed reports: the result letter (PDF), the FHIR R4 bundle, and the batch print of a
day's letters. Thin: scope, refuse what is not signed (409, saying why), render, audit the export."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.models import Facility
from clinical.scoping import facility_ids_for, get_scoped_or_404, role_at, scope
from reports import printing
from reports.fhir import report_bundle
from reports.letters.context import NotSigned, letter_for, signed_for_output
from reports.letters.pdf import RendererUnavailable, letter_pdf
from reports.models import PrintBatch, Report, SignOff

FHIR_JSON = "application/fhir+json"


def _audit_export(request: HttpRequest, report: Report, signoff: SignOff, fmt: str, size: int) -> None:
    audit_record(kind=EventKind.EXPORT, role=role_at(request.user, report.facility_id),
                 facility_id=report.facility_id, object_type="reports.report", object_id=report.pk,
                 patient_id=report.patient_id,
                 details={"format": fmt, "revision": signoff.revision.number, "sha256": signoff.content_sha256,
                          "amended": signoff.amends_id is not None, "bytes": size})


def _refuse_unsigned(request: HttpRequest, exc: NotSigned, fmt: str) -> HttpResponse:
    """409: the report is in the user's scope but has no signature that may go out (none yet, or
    one older than a correction of its values); say so, and record the try."""
    report = exc.report
    audit_record(kind=EventKind.EXPORT, outcome=Outcome.FAILURE, role=role_at(request.user, report.facility_id),
                 facility_id=report.facility_id, object_type="reports.report", object_id=report.pk,
                 patient_id=report.patient_id, details={"format": fmt, "reason": exc.reason})
    message = exc.message
    if fmt == "fhir":
        outcome = {"resourceType": "OperationOutcome",
                   "issue": [{"severity": "error", "code": "business-rule", "diagnostics": message}]}
        return JsonResponse(outcome, status=409, content_type=FHIR_JSON, json_dumps_params={"ensure_ascii": False})
    return render(request, "reports/output_unavailable.html", {"report": report, "message": message}, status=409)


@login_required
@require_GET
def letter_pdf_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        report, signoff = signed_for_output(request.user, pk)
    except NotSigned as exc:
        return _refuse_unsigned(request, exc, "pdf")
    try:
        pdf = letter_pdf(letter_for(report, signoff))
    except RendererUnavailable:
        # Not the user's fault and not a crash: say what the machine lacks (Debian: libpango-1.0-0,
        # libpangoft2-1.0-0 and fonts-noto-cjk; .ci/run installs them).
        message = _("この端末には PDF 作成に必要なライブラリ（Pango）がありません。管理者に連絡してください。")
        return render(request, "reports/output_unavailable.html", {"report": report, "message": message},
                      status=503)
    _audit_export(request, report, signoff, "pdf", len(pdf))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="result-letter-{report.pk}.pdf"'
    response["Cache-Control"] = "no-store"  # personal health information: never left in a shared cache
    return response


@login_required
@require_GET
def fhir_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        report, signoff = signed_for_output(request.user, pk)
    except NotSigned as exc:
        return _refuse_unsigned(request, exc, "fhir")
    response = JsonResponse(report_bundle(report, signoff), content_type=FHIR_JSON,
                            json_dumps_params={"ensure_ascii": False})
    _audit_export(request, report, signoff, "fhir", len(response.content))
    response["Content-Disposition"] = f'attachment; filename="report-{report.pk}.fhir.json"'
    response["Cache-Control"] = "no-store"
    return response


# --- batch printing ------------------------------------------------------------------------------

class PrintForm(forms.Form):
    facility = forms.ModelChoiceField(queryset=Facility.objects.none(), label=_lazy("施設"))
    exam_date = forms.DateField(label=_lazy("受診日"), widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        facilities = Facility.objects.filter(id__in=facility_ids_for(user, printing.PERM))
        field = self.fields["facility"]
        field.queryset = facilities  # type: ignore[attr-defined]
        if len(facilities) == 1:
            field.initial = facilities[0].pk
            field.empty_label = None  # type: ignore[attr-defined]


def _batches(user: Any) -> Any:
    return scope(PrintBatch.objects.select_related("facility", "created_by"), user, perm=printing.PERM)


@login_required
def print_start(request: HttpRequest) -> HttpResponse:
    if not facility_ids_for(request.user, printing.PERM):
        raise Http404  # physicians and auditors do not print letters; the page does not exist for them
    form = PrintForm(request.POST or None, user=request.user, initial={"exam_date": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            batch = printing.print_batch_create(actor=request.user,  # type: ignore[arg-type]
                                                facility=form.cleaned_data["facility"],
                                                exam_date=form.cleaned_data["exam_date"])
            return redirect("report_print_detail", pk=batch.pk)
        except printing.PrintRefused as exc:
            form.add_error(None, exc.message)
    return render(request, "reports/print_start.html", {"form": form, "batches": _batches(request.user)[:20]})


@login_required
@require_GET
def print_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_scoped_or_404(_batches(request.user), request.user, perm=printing.PERM, pk=pk)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(printing.batch_state(batch))  # the page polls the row: it is the truth
    # The page names the examinees left out: a PHI read (the JSON polls carry counts only).
    audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, batch.facility_id),
                 facility_id=batch.facility_id, object_type="reports.printbatch", object_id=batch.pk,
                 details={"skipped": len(batch.skipped)})
    return render(request, "reports/print_detail.html", {"batch": batch, "state": printing.batch_state(batch)})


@login_required
@require_GET
def print_download(request: HttpRequest, pk: int) -> HttpResponse | FileResponse:
    batch = get_scoped_or_404(_batches(request.user), request.user, perm=printing.PERM, pk=pk)
    path = printing.batch_file(batch)
    if path is None:
        return render(request, "reports/output_unavailable.html",
                      {"message": _("この一括印刷はまだ完了していないか、印刷できる報告書がありませんでした。"),
                       "batch": batch}, status=409)
    printing.print_batch_downloaded(batch=batch, actor=request.user)  # type: ignore[arg-type]
    name = f"result-letters-{batch.facility.code}-{batch.exam_date:%Y%m%d}{path.suffix}"
    content_type = "application/zip" if path.suffix == ".zip" else "application/pdf"
    response = FileResponse(path.open("rb"), content_type=content_type, as_attachment=True, filename=name)
    response["Cache-Control"] = "no-store"
    return response
