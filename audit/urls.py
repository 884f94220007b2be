from django.urls import path

from audit import views

urlpatterns = [
    path("", views.audit_list, name="audit_list"),
    path("patients/<int:patient_id>/", views.audit_patient, name="audit_patient"),
    path("export.csv", views.audit_export_csv, name="audit_export_csv"),
    path("export.fhir.json", views.audit_export_fhir, name="audit_export_fhir"),
    path("verify/", views.audit_verify, name="audit_verify"),
]
