"""Account pages of our own, included under accounts/ before django.contrib.auth.urls so these
win over Django's views of the same name."""

from django.urls import path

from clinical.auth import password

urlpatterns = [
    path("password_change/", password.password_change, name="password_change"),
    path("password_change/done/", password.password_change_done, name="password_change_done"),
]
