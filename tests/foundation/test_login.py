"""Logging in as a medical system needs: audited, locked after repeated failures, TOTP for
physicians and administrators."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests.conftest import PASSWORD, Personas

pytestmark = pytest.mark.django_db


def _post_login(client: Client, username: str, password: str) -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password})


def _code(device: TOTPDevice, offset_steps: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0 - offset_steps * device.step):06d}"


def test_staff_logs_in_with_a_password_and_the_login_is_audited(personas: Personas) -> None:
    client = Client()
    response = _post_login(client, "staff_a", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    event = AuditEvent.objects.filter(kind="login").get()
    assert event.user_id == personas.staff_a.pk and event.outcome == "success" and event.source_ip == "127.0.0.1"


def test_a_wrong_password_is_refused_in_japanese_and_audited_without_the_password(personas: Personas) -> None:
    response = _post_login(Client(), "staff_a", "wrong-password-1")
    assert response.status_code == 200
    assert "正しい利用者IDとパスワードを入力してください" in response.content.decode() or \
        "正しい" in response.content.decode()
    event = AuditEvent.objects.filter(kind="login_failed").get()
    assert event.username == "staff_a" and event.outcome == "failure"
    assert "wrong-password-1" not in str(event.details)


def test_five_failures_lock_the_account_even_with_the_right_password(personas: Personas) -> None:
    client = Client()
    for _ in range(5):
        _post_login(client, "staff_a", "wrong-password-1")
    response = _post_login(client, "staff_a", PASSWORD)
    assert response.status_code == 429
    assert "ロック" in response.content.decode()
    assert AuditEvent.objects.filter(kind="locked_out", username="staff_a").exists()
    assert not AuditEvent.objects.filter(kind="login").exists()


def test_a_physician_must_pass_totp_before_seeing_anything(personas: Personas) -> None:
    client = Client()
    assert _post_login(client, "physician_a", PASSWORD).status_code == 302
    response = client.get("/patients/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/verify/")
    api = client.get("/api/patients/")
    assert api.status_code == 403 and api.json()["code"] == "second_factor_required"


def test_a_wrong_totp_code_is_refused_and_audited(personas: Personas) -> None:
    client = Client()
    _post_login(client, "physician_a", PASSWORD)
    response = client.post("/accounts/2fa/verify/", {"token": "000000"})
    assert response.status_code == 200
    assert "認証コードが正しくないか" in response.content.decode()
    assert AuditEvent.objects.filter(kind="second_factor", outcome="failure", user_id=personas.physician_a.pk).exists()
    assert client.get("/patients/").status_code == 302


def test_the_right_totp_code_opens_the_application(personas: Personas) -> None:
    client = Client()
    _post_login(client, "physician_a", PASSWORD)
    device = TOTPDevice.objects.get(user=personas.physician_a)
    response = client.post("/accounts/2fa/verify/", {"token": _code(device), "next": "/patients/"})
    assert response.status_code == 302 and response["Location"] == "/patients/"
    assert client.get("/patients/").status_code == 200
    assert AuditEvent.objects.filter(kind="second_factor", outcome="success").exists()


def test_a_physician_without_a_device_enrols_one(personas: Personas) -> None:
    TOTPDevice.objects.filter(user=personas.physician_a).delete()
    client = Client()
    _post_login(client, "physician_a", PASSWORD)
    response = client.get("/patients/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/2fa/setup/")
    body = response.content.decode()
    assert "<svg" in body and "二要素認証の登録" in body
    device = TOTPDevice.objects.get(user=personas.physician_a, confirmed=False)
    assert client.post("/accounts/2fa/setup/", {"token": "123456"}).status_code == 200
    device.refresh_from_db()
    device.throttle_reset()  # django-otp slows guessing after a failure; a person would wait
    assert client.post("/accounts/2fa/setup/", {"token": _code(device)}).status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/patients/").status_code == 200
    assert AuditEvent.objects.filter(kind="second_factor_enrolled", outcome="success").exists()


def test_logout_is_audited_and_needs_a_post(personas: Personas) -> None:
    client = Client()
    _post_login(client, "staff_a", PASSWORD)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code in (200, 302)
    assert AuditEvent.objects.filter(kind="logout", user_id=personas.staff_a.pk).exists()
    assert client.get("/patients/").status_code == 302


def test_repeated_wrong_codes_are_throttled_even_when_the_next_one_is_right(personas: Personas) -> None:
    client = Client()
    _post_login(client, "physician_a", PASSWORD)
    device = TOTPDevice.objects.get(user=personas.physician_a)
    client.post("/accounts/2fa/verify/", {"token": "000000"})
    response = client.post("/accounts/2fa/verify/", {"token": _code(device)})
    assert response.status_code == 200 and "しばらく待ってから" in response.content.decode()
    assert client.get("/patients/").status_code == 302
