from django.urls import path

from reports.dashboard import views

urlpatterns = [path("", views.quality_dashboard, name="reports_quality_dashboard")]
