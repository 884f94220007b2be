from django.urls import path

from reports.api import views

urlpatterns = [
    path("<int:pk>/", views.ReportDetail.as_view(), name="reports_api_report"),
    path("<int:pk>/revisions/", views.RevisionCreate.as_view(), name="reports_api_revisions"),
    path("<int:pk>/sign/", views.ReportSign.as_view(), name="reports_api_sign"),
    path("<int:pk>/amend/", views.ReportAmend.as_view(), name="reports_api_amend"),
]
