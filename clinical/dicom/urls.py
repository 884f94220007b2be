"""DICOMweb under /dicomweb/ (PS3.18 resource paths), the viewers and staff pages under /dicom/."""

from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import path, register_converter
from django.views.decorators.csrf import csrf_exempt

from clinical.dicom import views
from clinical.dicom.web import qido_views, stow_views, wado_views


class UIDConverter:
    regex = r"[0-9]+(?:\.[0-9]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UIDConverter, "uid")


@csrf_exempt  # the two views it dispatches to do their own authentication and CSRF checks
def studies(request: HttpRequest) -> HttpResponseBase:
    return stow_views.store(request) if request.method == "POST" else qido_views.search_studies(request)


@csrf_exempt
def study(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    if request.method == "POST":
        return stow_views.store(request, study_uid=study_uid)
    return wado_views.retrieve(request, study_uid=study_uid)


S = "dicomweb/studies/<uid:study_uid>"
SE = f"{S}/series/<uid:series_uid>"
I = f"{SE}/instances/<uid:sop_uid>"  # noqa: E741

urlpatterns: list[Any] = [
    # QIDO-RS / STOW-RS / WADO-RS
    path("dicomweb/studies", studies, name="dicomweb_studies"),
    path("dicomweb/series", qido_views.search_series, name="dicomweb_all_series"),
    path("dicomweb/instances", qido_views.search_instances, name="dicomweb_all_instances"),
    path(S, study, name="dicomweb_study"),
    path(f"{S}/metadata", wado_views.metadata, name="dicomweb_study_metadata"),
    path(f"{S}/series", qido_views.search_series, name="dicomweb_study_series"),
    path(f"{S}/instances", qido_views.search_instances, name="dicomweb_study_instances"),
    path(SE, wado_views.retrieve, name="dicomweb_series"),
    path(f"{SE}/metadata", wado_views.metadata, name="dicomweb_series_metadata"),
    path(f"{SE}/instances", qido_views.search_instances, name="dicomweb_series_instances"),
    path(I, wado_views.retrieve, name="dicomweb_instance"),
    path(f"{I}/metadata", wado_views.metadata, name="dicomweb_instance_metadata"),
    path(f"{I}/rendered", wado_views.rendered, name="dicomweb_instance_rendered"),
    path(f"{I}/frames/<str:frame_list>", wado_views.frames, name="dicomweb_frames"),
    path(f"{I}/frames/<str:frame_list>/rendered", wado_views.rendered, name="dicomweb_frame_rendered"),
    path(f"{I}/bulkdata/<str:tag>", wado_views.bulkdata, name="dicomweb_bulkdata"),
    # Pages and their JSON
    path("dicom/studies/", views.study_list, name="dicom_study_list"),
    path("dicom/studies/<int:pk>/", views.study_viewer, name="dicom_study_viewer"),
    path("dicom/instances/<int:pk>/ecg.json", views.ecg_data, name="dicom_ecg_data"),
    path("dicom/instances/<int:pk>/ecg.png", views.ecg_image, name="dicom_ecg_image"),
    path("dicom/upload/", views.upload, name="dicom_upload"),
    path("dicom/unmatched/", views.unmatched, name="dicom_unmatched"),
    path("dicom/unmatched/<int:pk>/reconcile/", views.reconcile, name="dicom_reconcile"),
]
