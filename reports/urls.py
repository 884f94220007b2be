from django.urls import path  # noqa: F401

urlpatterns: list = []  # the review screens (being built)
