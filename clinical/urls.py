from django.urls import include, path

from clinical import checkup_views, views
from clinical.auth import views as auth_views

urlpatterns = [
    path("", views.home, name="home"),
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("imports/", checkup_views.import_upload, name="import_upload"),
    path("imports/<int:pk>/", checkup_views.import_detail, name="import_detail"),
    path("visits/", checkup_views.visit_worklist, name="visit_worklist"),
    path("visits/<int:pk>/", checkup_views.visit_detail, name="visit_detail"),
    path("accounts/2fa/verify/", auth_views.two_factor_verify, name="two_factor_verify"),
    path("accounts/2fa/setup/", auth_views.two_factor_setup, name="two_factor_setup"),
    path("administration/", include("clinical.administration.urls")),
]
