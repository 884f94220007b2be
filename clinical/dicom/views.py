"""HTML pages: study list, the image/ECG viewer, browser upload, the unmatched queue. Thin: scope,
call a selector or service, audit the PHI read, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.dicom import rendering, selectors, services
from clinical.dicom.models import Instance, Source, Study
from clinical.dicom.storage import ContentStore
from clinical.models import Facility, Patient
from clinical.scoping import facility_ids_for, get_scoped_or_404, role_at


def _audit_study_read(request: HttpRequest, study: Study, what: str) -> None:
    audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, study.facility_id), facility_id=study.facility_id,
                 object_type="dicom.study", object_id=study.study_instance_uid, patient_id=study.patient_id,
                 details={"what": what})


@login_required
def study_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    page = Paginator(selectors.study_list(user=request.user, query=query), 25).get_page(request.GET.get("page"))
    audit_record(kind=EventKind.PHI_SEARCH, object_type="dicom.study",
                 details={"q": query, "page": page.number, "results": page.paginator.count})
    return render(request, "dicom/study_list.html", {"page": page, "query": query})


@login_required
def study_viewer(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_scoped_or_404(Study.objects.select_related("patient", "facility"), request.user, pk=pk)
    _audit_study_read(request, study, "viewer")
    series = selectors.study_series(study=study)
    waveforms = list(study.instances.filter(has_waveform=True).order_by("series_id", "instance_number", "id")
                     .values("pk", "series_id"))
    config = {
        "dicomweb": request.build_absolute_uri("/dicomweb").rstrip("/"),
        "study": study.study_instance_uid,
        "series": [
            {
                "uid": s.series_instance_uid, "modality": s.modality, "description": s.series_description,
                "number": s.series_number, "instances": s.n_instances,  # type: ignore[attr-defined]
                "ecg": [w["pk"] for w in waveforms if w["series_id"] == s.pk],
            }
            for s in series
        ],
        "presets": rendering.PRESET_WINDOWS,
    }
    return render(request, "dicom/viewer.html", {"study": study, "series": series, "config": config})


def _waveform(request: HttpRequest, pk: int) -> Instance:
    return get_scoped_or_404(Instance.objects.select_related("study"), request.user, pk=pk, has_waveform=True)


@login_required
def ecg_data(request: HttpRequest, pk: int) -> HttpResponse:
    instance = _waveform(request, pk)
    _audit_study_read(request, instance.study, "ecg")
    try:
        payload = rendering.ecg_view(ContentStore().open(instance.sha256))
    except rendering.RenderError as exc:
        return JsonResponse({"detail": str(exc), "code": "cannot_render"}, status=422)
    return JsonResponse(payload, json_dumps_params={"ensure_ascii": False})


@login_required
def ecg_image(request: HttpRequest, pk: int) -> HttpResponse:
    instance = _waveform(request, pk)
    _audit_study_read(request, instance.study, "ecg_png")
    try:
        return HttpResponse(rendering.ecg_png(ContentStore().open(instance.sha256)), content_type="image/png")
    except rendering.RenderError as exc:
        return HttpResponse(str(exc), status=422, content_type="text/plain; charset=utf-8")


@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    facilities = list(Facility.objects.filter(id__in=facility_ids_for(request.user, "import_checkups")))
    if not facilities:
        return render(request, "dicom/upload.html", {"facilities": [], "forbidden": True}, status=403)
    results = None
    if request.method == "POST":
        chosen = next((f for f in facilities if str(f.pk) == request.POST.get("facility")), None)
        files = request.FILES.getlist("files")
        if chosen is None:
            messages.error(request, _("取込先の施設を選んでください。"))
        elif not files:
            messages.error(request, _("ファイルを選んでください。"))
        else:
            results = services.instances_ingest(
                items=[f.read() for f in files], labels=[f.name or "" for f in files], facility=chosen,
                source=Source.UPLOAD, actor=request.user,  # type: ignore[arg-type]
            )
    return render(request, "dicom/upload.html", {"facilities": facilities, "results": results})


@login_required
def unmatched(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and request.POST.get("action") == "rematch":
        for facility in Facility.objects.filter(id__in=facility_ids_for(request.user, "manage_patients")):
            count = services.unmatched_rematch(facility=facility, actor=request.user)  # type: ignore[arg-type]
            if count:
                messages.success(request, _("%(facility)s: %(count)d 件の検査を受診者に紐付けました。")
                                 % {"facility": facility.name, "count": count})
        return redirect("dicom_unmatched")
    studies = list(selectors.unmatched_studies(user=request.user)[:200])
    audit_record(kind=EventKind.PHI_SEARCH, object_type="dicom.study",
                 details={"queue": "unmatched", "results": len(studies)})
    return render(request, "dicom/unmatched.html", {"studies": studies})


@login_required
@require_POST
def reconcile(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_scoped_or_404(Study.objects.all(), request.user, perm="manage_patients", pk=pk, patient__isnull=True)
    mrn = request.POST.get("mrn", "").strip()
    patient = Patient.objects.filter(facility_id=study.facility_id, mrn=mrn).first() if mrn else None
    if patient is None:
        messages.error(request, _("受診者番号「%(mrn)s」の受診者はこの施設にいません。") % {"mrn": mrn})
    else:
        services.study_reconcile(study=study, patient=patient, actor=request.user)  # type: ignore[arg-type]
        messages.success(request, _("検査を %(name)s（%(mrn)s）に紐付けました。")
                         % {"name": patient.full_name, "mrn": mrn})
    return redirect("dicom_unmatched")
