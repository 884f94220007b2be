"""Idle and absolute session timeouts, CSRF refusals: each gets a clear answer and an audit event."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from audit.models import AuditEvent
from clinical.auth.session_timeout import LOGIN_AT, SEEN_AT
from clinical.models import Patient
from tests.conftest import Personas, login

pytestmark = pytest.mark.django_db


def _age_session(client: Client, *, idle_s: float = 0, since_login_s: float = 0) -> None:
    client.get("/")  # establishes the timestamps
    session = client.session
    session[SEEN_AT] = time.time() - idle_s
    session[LOGIN_AT] = time.time() - since_login_s
    session.save()


def test_an_idle_session_ends_with_a_message_and_an_audit_event(personas: Personas, settings: object) -> None:
    client = login(Client(), personas.staff_a)
    _age_session(client, idle_s=16 * 60)
    response = client.get("/patients/", follow=True)
    assert response.redirect_chain[0][0].startswith("/accounts/login/?next=")
    assert "一定時間操作がなかったため" in response.content.decode()
    event = AuditEvent.objects.get(kind="session_expired")
    assert event.details == {"reason": "idle"} and event.user_id == personas.staff_a.pk


def test_a_session_past_its_absolute_lifetime_ends_even_when_active(personas: Personas) -> None:
    client = login(Client(), personas.staff_a)
    _age_session(client, since_login_s=11 * 3600)
    assert client.get("/patients/").status_code == 302
    assert AuditEvent.objects.get(kind="session_expired").details == {"reason": "absolute"}


def test_an_expired_api_session_gets_a_json_401(personas: Personas) -> None:
    client = login(Client(), personas.staff_a)
    _age_session(client, idle_s=3600)
    response = client.get("/api/patients/")
    assert response.status_code == 401 and response.json()["code"] == "session_expired"


def test_the_idle_timeout_is_configurable(personas: Personas, settings: object) -> None:
    settings.SESSION_IDLE_TIMEOUT_S = 60  # type: ignore[attr-defined]
    client = login(Client(), personas.staff_a)
    _age_session(client, idle_s=90)
    assert client.get("/patients/").status_code == 302


def test_a_post_without_csrf_token_is_refused_audited_and_changes_nothing(personas: Personas) -> None:
    client = login(Client(enforce_csrf_checks=True), personas.staff_a)
    response = client.post("/api/patients/", {"facility": "A01", "mrn": "X1", "family_name": "山田",
                                              "given_name": "太郎", "family_name_kana": "ヤマダ",
                                              "given_name_kana": "タロウ", "sex": "M", "birth_date": "1970-01-01"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Patient.objects.exists()


def test_a_form_post_without_csrf_token_gets_the_japanese_page_and_an_audit_event(personas: Personas) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "staff_a", "password": "x"})
    assert response.status_code == 403
    assert "セキュリティ確認（CSRF トークン）が一致しませんでした" in response.content.decode()
    assert AuditEvent.objects.filter(kind="csrf_rejected", outcome="denied").exists()
    assert not AuditEvent.objects.filter(kind__in=["login", "login_failed"]).exists()
