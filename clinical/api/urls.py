from django.urls import path

from clinical.api import patients

urlpatterns = [
    path("patients/", patients.PatientListCreate.as_view(), name="api_patient_list"),
    path("patients/<int:pk>/", patients.PatientDetail.as_view(), name="api_patient_detail"),
]
