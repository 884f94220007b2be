"""HTML views of inference (thin: scope, call a service, render). Each job view also answers JSON
for the page's polling fallback and for scripts (`Accept: application/json`)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.dicom.models import Study
from clinical.models import CheckupVisit
from clinical.scoping import get_scoped_or_404, role_at
from inference import selectors, services
from inference.events import job_state


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
@require_POST
def job_create(request: HttpRequest) -> HttpResponse:
    """POST visit=<id> (or study=<id>), optional model_version=<id>: queue a draft, go to its page."""
    user: Any = request.user
    visit_id, study_id = _int(request.POST.get("visit")), _int(request.POST.get("study"))
    visit = get_scoped_or_404(CheckupVisit.objects.all(), user, pk=visit_id) if visit_id is not None else None
    study = get_scoped_or_404(Study.objects.all(), user, pk=study_id) if study_id is not None else None
    mv_id = _int(request.POST.get("model_version"))
    mv = selectors.model_versions().filter(pk=mv_id, enabled=True).first() if mv_id is not None else None
    try:
        job = services.job_create(actor=user, visit=visit, study=study, model_version=mv)
    except services.JobRefused as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=409)
        messages.error(request, str(exc))
        return redirect(request.POST.get("next") or "inference_worklist")
    if _wants_json(request):
        return JsonResponse({"job": job.pk, "url": f"/inference/jobs/{job.pk}/", "status": job.status}, status=201)
    return redirect("inference_job_detail", pk=job.pk)


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_for(request.user, pk)
    if _wants_json(request):
        return JsonResponse(job_state(job))  # polling fallback: no PHI read beyond what the page shows
    audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, job.facility_id), facility_id=job.facility_id,
                 object_type="inference.inferencejob", object_id=job.pk, patient_id=job.patient_id)
    return render(request, "inference/job_detail.html", {"job": job, "state": job_state(job)})


@login_required
@require_POST
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_for(request.user, pk)
    cancelled = services.job_cancel(job=job, actor=request.user)  # type: ignore[arg-type]
    if _wants_json(request):
        return JsonResponse({"job": job.pk, "cancelled": cancelled, "status": job.status})
    return redirect("inference_job_detail", pk=job.pk)


@login_required
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    jobs = list(selectors.worklist_for(request.user))
    audit_record(kind=EventKind.PHI_SEARCH, object_type="inference.worklist", details={"results": len(jobs)})
    return render(request, "inference/worklist.html", {"jobs": jobs})


@login_required
@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    if not selectors.is_registry_admin(request.user):
        raise PermissionDenied
    models = list(selectors.model_versions())
    in_force = selectors.versions_in_force(models)
    return render(request, "inference/model_list.html", {
        "models": models, "in_force": sorted(in_force.items()),
        "in_force_ids": {mv.pk for mv in in_force.values()}})
