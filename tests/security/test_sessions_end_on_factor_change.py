"""Changing a password or resetting a second factor ends the user's other sessions (OWASP ASVS L2)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from clinical.auth.password import reset_second_factor, user_second_factor_reset
from clinical.models import User
from tests.conftest import PASSWORD, Personas, login

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "New-Horse-Battery-77"


def test_changing_the_password_keeps_this_session_and_ends_the_others(personas: Personas) -> None:
    here, elsewhere = login(Client(), personas.staff_a), login(Client(), personas.staff_a)
    other_user = login(Client(), personas.physician_a)
    response = here.post("/accounts/password_change/", {
        "old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_change/done/"
    assert here.get("/patients/").status_code == 200
    assert elsewhere.get("/patients/").status_code == 302  # back to the login page
    assert other_user.get("/patients/").status_code == 200
    personas.staff_a.refresh_from_db()
    assert personas.staff_a.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(kind="update", object_type="clinical.user")
    assert event.details == {"change": "password", "sessions_ended": 1} and event.user_id == personas.staff_a.pk


def test_a_wrong_old_password_changes_nothing_and_is_audited(personas: Personas) -> None:
    client = login(Client(), personas.staff_a)
    response = client.post("/accounts/password_change/", {
        "old_password": "not-it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 200 and "error" in response.content.decode()
    personas.staff_a.refresh_from_db()
    assert personas.staff_a.check_password(PASSWORD)
    event = AuditEvent.objects.get(kind="update", object_type="clinical.user")
    assert event.outcome == "failure" and event.details["errors"] == ["old_password"]
    assert NEW_PASSWORD not in str(event.details)


def test_a_weak_new_password_is_refused_by_the_medical_validator(personas: Personas) -> None:
    client = login(Client(), personas.staff_a)
    response = client.post("/accounts/password_change/", {
        "old_password": PASSWORD, "new_password1": "short1", "new_password2": "short1"})
    assert response.status_code == 200 and "文字以上" in response.content.decode()


def test_resetting_the_second_factor_removes_devices_and_ends_every_session(personas: Personas) -> None:
    first, second = login(Client(), personas.physician_a), login(Client(), personas.physician_a)
    assert first.get("/patients/").status_code == 200
    ended = user_second_factor_reset(user=personas.physician_a, by=personas.admin_a)
    assert ended == 2
    assert not TOTPDevice.objects.filter(user=personas.physician_a).exists()
    for client in (first, second):
        assert client.get("/patients/").status_code == 302
    event = AuditEvent.objects.get(kind="update", object_type="clinical.user")
    assert event.user_id == personas.admin_a.pk and event.object_id == str(personas.physician_a.pk)
    assert event.details["change"] == "second_factor_reset" and event.details["devices_removed"] == 1


class _Admin:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def message_user(self, request: Any, message: str, level: Any = None) -> None:
        self.messages.append(message)


def test_the_admin_action_resets_each_selected_user(personas: Personas) -> None:
    session = login(Client(), personas.admin_a)
    request = RequestFactory().post("/admin/clinical/user/")
    request.user = personas.admin_a
    modeladmin = _Admin()
    reset_second_factor(modeladmin, request, User.objects.filter(pk__in=[personas.physician_a.pk,
                                                                         personas.admin_a.pk]))
    assert not TOTPDevice.objects.filter(user__in=[personas.physician_a, personas.admin_a]).exists()
    assert session.get("/patients/").status_code == 302
    assert "2 人" in modeladmin.messages[0]
    assert AuditEvent.objects.filter(details__change="second_factor_reset").count() == 2
    # Offered only to admins who may change users.
    assert list(getattr(reset_second_factor, "allowed_permissions", [])) == ["change"]
