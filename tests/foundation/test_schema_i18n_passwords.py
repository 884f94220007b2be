"""The OpenAPI schema is generated; the UI is Japanese first and switches to English; the password
policy follows the MHLW guideline."""

from __future__ import annotations

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import translation
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical.models import User
from tests.conftest import Personas, login

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_lists_the_patient_endpoints(personas: Personas) -> None:
    response = login(Client(), personas.staff_a).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/patients/", "/api/patients/{id}/"} <= set(paths)
    assert "post" in paths["/api/patients/"] and "patch" in paths["/api/patients/{id}/"]


def test_the_login_page_is_japanese_by_default_and_english_on_request() -> None:
    client = Client()
    assert "利用者ID" in client.get("/accounts/login/").content.decode()
    client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})
    english = client.get("/accounts/login/").content.decode()
    assert "User ID" in english and "利用者ID" not in english
    assert '<html lang="en">' in english


@pytest.mark.parametrize(
    ("password", "with_second_factor", "error"),
    [
        ("Short-Pass1", False, "12文字以上"),
        ("longpasswordonly", False, "2種類以上"),
        ("Short-P1", True, None),
        ("Short-1", True, "8文字以上"),
        ("Long-Enough-Pass", False, None),
    ],
)
def test_passwords_are_long_or_shorter_only_with_a_second_factor(
    password: str, with_second_factor: bool, error: str | None
) -> None:
    user = User.objects.create(username="dr_x")
    if with_second_factor:
        TOTPDevice.objects.create(user=user, name="t", confirmed=True)
    with translation.override("ja"):
        if error is None:
            validate_password(password, user)
        else:
            with pytest.raises(ValidationError, match=error):
                validate_password(password, user)
