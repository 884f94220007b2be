from django.urls import path

from inference import registry_views, views

urlpatterns = [
    path("jobs/", views.job_create, name="inference_job_create"),
    path("jobs/<int:pk>/", views.job_detail, name="inference_job_detail"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="inference_job_cancel"),
    path("worklist/", views.worklist, name="inference_worklist"),
    path("models/", views.model_list, name="inference_model_list"),
    path("models/<int:pk>/", registry_views.model_detail, name="inference_model_detail"),
]
