"""Ending a user's sessions and resetting their second factor, from the administration screens:
the other browser is signed out on its next request, the administrator's own session survives."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from clinical import services
from clinical.models import Role, User
from tests.conftest import Personas, login

pytestmark = pytest.mark.django_db


def test_ending_sessions_logs_the_other_session_out(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    laptop, tablet = login(Client(), personas.staff_a), login(Client(), personas.staff_a)
    bystander = client_for("physician_a")
    assert laptop.get("/patients/").status_code == 200 and tablet.get("/patients/").status_code == 200
    admin = client_for("admin_a")
    response = admin.post(f"/administration/users/{personas.staff_a.pk}/sessions/end/", follow=True)
    assert "セッション 2 件を終了しました" in response.content.decode()
    for client in (laptop, tablet):
        response = client.get("/patients/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert bystander.get("/patients/").status_code == 200 and admin.get("/administration/").status_code == 200
    (event,) = audit_events(kind="update", details__change="sessions_ended")
    assert (event.user_id, event.object_id, event.facility_id) == (
        personas.admin_a.pk, str(personas.staff_a.pk), personas.facility_a.pk)
    assert event.details == {"change": "sessions_ended", "target": "staff_a", "sessions_ended": 2}


def test_an_administrator_ending_their_own_sessions_keeps_the_current_one(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    other = client_for("admin_a")
    here = client_for("admin_a")
    response = here.post(f"/administration/users/{personas.admin_a.pk}/sessions/end/")
    assert response.status_code == 302
    assert here.get("/administration/").status_code == 200
    assert other.get("/administration/").status_code == 302


def test_ending_sessions_of_a_user_shared_with_another_facility_is_allowed(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    # Ending sessions only makes the user sign in again: any administrator of one of their facilities may.
    services.membership_grant(user=personas.physician_b, facility=personas.facility_a, role=Role.STAFF)
    remote = login(Client(), personas.physician_b)
    assert remote.get("/").status_code == 200
    admin = client_for("admin_a")
    assert admin.post(f"/administration/users/{personas.physician_b.pk}/sessions/end/").status_code == 302
    assert remote.get("/").status_code == 302


def test_resetting_the_second_factor_removes_devices_and_signs_the_user_out(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    physician = client_for("physician_a")
    assert physician.get("/patients/").status_code == 200
    response = client_for("admin_a").post(f"/administration/users/{personas.physician_a.pk}/second-factor/reset/")
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=personas.physician_a).exists()
    assert physician.get("/patients/").status_code == 302
    (event,) = audit_events(kind="update", details__change="second_factor_reset")
    assert event.user_id == personas.admin_a.pk and event.details["devices_removed"] == 1
    assert event.details["target"] == "physician_a" and event.details["sessions_ended"] == 1


def test_it_refuses_a_second_factor_reset_of_an_account_shared_with_another_facility(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    services.membership_grant(user=personas.physician_b, facility=personas.facility_a, role=Role.PHYSICIAN)
    response = client_for("admin_a").post(f"/administration/users/{personas.physician_b.pk}/second-factor/reset/")
    assert response.status_code == 409
    assert "管理していない施設にも所属しています" in response.content.decode()
    assert TOTPDevice.objects.filter(user=personas.physician_b).exists()
    (refused,) = audit_events(kind="update", outcome="denied")
    assert refused.details["action"] == "second_factor_reset" and refused.user_id == personas.admin_a.pk


def test_a_facility_admin_cannot_touch_a_superuser_account(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    User.objects.filter(pk=personas.staff_a.pk).update(is_superuser=True)
    response = client_for("admin_a").post(f"/administration/users/{personas.staff_a.pk}/active/", {"active": "0"})
    assert response.status_code == 409 and "システム管理者のアカウントは変更できません" in response.content.decode()
