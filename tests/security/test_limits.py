"""Rate limits (beside django-axes, not instead of it) and request size limits with a clear 413."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.conftest import PASSWORD, Personas

pytestmark = pytest.mark.django_db


def _rules(settings: Any, name: str, limit: int) -> None:
    settings.RATELIMIT_RULES = [{**r, "limit": limit} if r["name"] == name else r for r in settings.RATELIMIT_RULES]


def test_login_posts_from_one_address_are_limited_across_usernames(settings: Any, personas: Personas) -> None:
    _rules(settings, "login", 3)
    client = Client()
    for name in ("staff_a", "physician_a", "admin_a"):
        assert client.post("/accounts/login/", {"username": name, "password": "wrong-1"}).status_code == 200
    refused = client.post("/accounts/login/", {"username": "auditor_a", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "リクエストが多すぎます" in refused.content.decode()
    client.post("/accounts/login/", {"username": "auditor_a", "password": PASSWORD})
    # Audited once per window, not once per refused request.
    assert AuditEvent.objects.filter(kind="access_denied", details__reason="rate_limited").count() == 1
    assert not AuditEvent.objects.filter(kind="login").exists()
    assert Client(REMOTE_ADDR="10.1.2.3").post(
        "/accounts/login/", {"username": "auditor_a", "password": PASSWORD}).status_code == 302


def test_axes_still_locks_a_username_long_before_the_rate_limit(settings: Any, personas: Personas) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "staff_a", "password": "wrong-1"})
    locked = client.post("/accounts/login/", {"username": "staff_a", "password": PASSWORD})
    assert locked.status_code == 429 and "ロック" in locked.content.decode()
    assert AuditEvent.objects.filter(kind="locked_out").exists()


def test_the_api_is_limited_per_user_with_a_json_answer(settings: Any,
                                                        client_for: Callable[[str], Client]) -> None:
    _rules(settings, "api", 2)
    staff, physician = client_for("staff_a"), client_for("physician_a")
    assert [staff.get("/api/patients/").status_code for _ in range(2)] == [200, 200]
    refused = staff.get("/api/patients/")
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert physician.get("/api/patients/").status_code == 200  # another user has their own count


def test_a_form_body_over_the_limit_gets_a_clear_413(settings: Any, client_for: Callable[[str], Client]) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client_for("staff_a").post("/patients/", "q=" + "x" * 5000,
                                          content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    html = response.content.decode()
    assert "送信されたデータが大きすぎます" in html and "MB" in html


def test_json_bodies_over_the_limit_get_a_json_413(settings: Any, client_for: Callable[[str], Client]) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client_for("staff_a").post("/api/patients/", {"family_name": "x" * 5000},
                                          content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "request_too_large"


def test_an_upload_over_the_limit_gets_a_413_and_a_smaller_one_passes(
    settings: Any, client_for: Callable[[str], Client]
) -> None:
    settings.MAX_UPLOAD_BYTES = 10_000
    client = client_for("staff_a")
    big = client.post("/imports/", {"file": _file(b"x" * 20_000)})
    assert big.status_code == 413 and "上限" in big.content.decode()
    small = client.post("/imports/", {"file": _file(b"a,b\n1,2\n")})
    assert small.status_code != 413


def test_the_settings_name_explicit_limits(settings: Any) -> None:
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 5 * 1024 * 1024
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE == 5 * 1024 * 1024
    assert settings.MAX_UPLOAD_BYTES >= 50 * 1024 * 1024  # the checkup import's own limit fits under it


def _file(content: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("checkup.csv", content, content_type="text/csv")
