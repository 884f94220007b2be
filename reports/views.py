"""HTML screens of reports: the physician's worklist and the review screen. Thin: scope, audit the
read, call a service, render. The review screen's script talks to reports/api; the forms it
enhances post here when no script runs and reach the same services."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.scoping import facility_ids_for, role_at
from reports import corrections, presenting, selectors, services
from reports.forms import SaveForm, SignForm, WorklistForm, confirmed_keys
from reports.grounding import sources_now
from reports.review import review_context


@login_required
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    """Unsigned reports of the user's facilities (and signed ones whose values were corrected since),
    urgent first. `?partial=1` answers the list body alone: the page's script re-fetches it when the
    worklist websocket says something changed."""
    user: Any = request.user
    if not selectors.worklist_facility_ids(user):
        raise PermissionDenied(_("所見一覧は医師と管理者だけが開けます。"))
    form = WorklistForm(request.GET or None)
    filters = form.filters()
    reports = list(selectors.report_worklist(user, filters))
    for r in reports:
        r.flag_count = len((r.head_grounding or {}).get("issues") or [])  # type: ignore[attr-defined]
        r.kind_label = presenting.kind_label(r.kind)  # type: ignore[attr-defined]
        # From the row alone (no query per row): signed before a correction, or not saved since one.
        r.needs_amendment = corrections.corrected_after_signing(r)  # type: ignore[attr-defined]
        r.needs_resave = (r.status not in selectors.SIGNED and r.source_changed_at is not None  # type: ignore[attr-defined]
                          and r.head_created_at is not None  # type: ignore[attr-defined]
                          and r.source_changed_at > r.head_created_at)  # type: ignore[attr-defined]
    audit_record(kind=EventKind.PHI_SEARCH, object_type="reports.report",
                 details={"view": "worklist", "results": len(reports),
                          "filters": {k: str(v) for k, v in vars(filters).items() if v not in ("", None, False)}})
    # The live feed is the signing physicians' (ws/worklist/ refuses others); administrators reload.
    context = {"form": form, "reports": reports, "running": selectors.drafts_in_progress(user),
               "truncated_at": selectors.WORKLIST_SIZE if len(reports) >= selectors.WORKLIST_SIZE else None,
               "live": bool(facility_ids_for(user, "sign_reports"))}
    partial = request.GET.get("partial") == "1"
    return render(request, "reports/_worklist_body.html" if partial else "reports/worklist.html", context)


@login_required
@require_GET
def review(request: HttpRequest, pk: int) -> HttpResponse:
    report = selectors.report_for_reading(request.user, pk)
    audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, report.facility_id),
                 facility_id=report.facility_id, object_type="reports.report", object_id=report.pk,
                 patient_id=report.patient_id, details={"view": "review", "status": report.status})
    return render(request, "reports/review.html", review_context(request.user, report))


def _refused(request: HttpRequest, exc: services.ReportRefused) -> None:
    if isinstance(exc, services.NotPermitted):
        raise PermissionDenied(exc.message)
    messages.error(request, exc.message)


@login_required
@require_POST
def review_save(request: HttpRequest, pk: int) -> HttpResponse:
    report = selectors.report_for(request.user, pk)
    form = SaveForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("保存する版が指定されていません。画面を開き直してください。"))
        return redirect("reports_review", pk=pk)
    try:
        revision = services.revision_save(report=report, actor=request.user,  # type: ignore[arg-type]
                                          text=form.cleaned_data["text"], base_number=form.cleaned_data["base_number"])
    except services.RevisionConflict as exc:
        # Nothing was written: show both versions; the physician decides which one to keep.
        conflict = {"message": exc.message, "current": exc.current, "yours": exc.yours}
        return render(request, "reports/review.html", review_context(request.user, report, conflict=conflict),
                      status=409)
    except services.ReportRefused as exc:
        _refused(request, exc)
        return redirect("reports_review", pk=pk)
    messages.success(request, _("第%(n)d版として保存しました。") % {"n": revision.number})
    return redirect("reports_review", pk=pk)


@login_required
@require_POST
def review_sign(request: HttpRequest, pk: int) -> HttpResponse:
    report = selectors.report_for(request.user, pk)
    form = SignForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("再認証の方法を選んでください。"))
        return redirect("reports_review", pk=pk)
    try:
        services.report_sign(report=report, actor=request.user,  # type: ignore[arg-type]
                             revision_number=form.cleaned_data["revision_number"], method=form.cleaned_data["method"],
                             credential=form.cleaned_data["credential"], confirmed=confirmed_keys(request.POST))
    except services.ReportRefused as exc:
        _refused(request, exc)
        return redirect("reports_review", pk=pk)
    messages.success(request, _("署名しました。この所見は読み取り専用になりました。"))
    return redirect("reports_review", pk=pk)


@login_required
@require_POST
def review_amend(request: HttpRequest, pk: int) -> HttpResponse:
    report = selectors.report_for(request.user, pk)
    data = {k: str(request.POST.get(k, "")) for k in ("text", "reason", "method", "credential")}
    try:
        services.report_amend(report=report, actor=request.user,  # type: ignore[arg-type]
                              text=data["text"], reason=data["reason"], method=data["method"],
                              credential=data["credential"],
                              confirmed=confirmed_keys(request.POST))
    except services.NotPermitted as exc:
        raise PermissionDenied(exc.message) from None
    except services.ReportRefused as exc:
        # Keep what was typed (never the credential) and show any flagged number to confirm.
        unconfirmed = getattr(exc, "unconfirmed", [])
        head = selectors.head_revision(report)
        amend = {"error": exc.message, "text": data["text"], "reason": data["reason"],
                 "unconfirmed": presenting.describe(unconfirmed, sources_now(report, head))}
        return render(request, "reports/review.html", review_context(request.user, report, amend=amend), status=400)
    messages.success(request, _("修正を署名しました。"))
    return redirect("reports_review", pk=pk)
