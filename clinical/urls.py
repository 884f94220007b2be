from django.urls import path

from clinical import views
from clinical.auth import views as auth_views

urlpatterns = [
    path("", views.home, name="home"),
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("accounts/2fa/verify/", auth_views.two_factor_verify, name="two_factor_verify"),
    path("accounts/2fa/setup/", auth_views.two_factor_setup, name="two_factor_setup"),
]
