from django.urls import include, path

from reports import views

urlpatterns = [
    path("", views.worklist, name="reports_worklist"),
    path("<int:pk>/", views.review, name="reports_review"),
    path("<int:pk>/save/", views.review_save, name="reports_review_save"),
    path("<int:pk>/sign/", views.review_sign, name="reports_review_sign"),
    path("<int:pk>/amend/", views.review_amend, name="reports_review_amend"),
    path("api/", include("reports.api.urls")),
]
