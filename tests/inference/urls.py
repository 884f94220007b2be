"""The project's URLs with inference's included, until `config/urls.py` includes them itself."""

from django.urls import include, path

from config.urls import urlpatterns as project

urlpatterns = [path("inference/", include("inference.urls")), *project]
