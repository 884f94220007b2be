"""Attack: schemathesis generates requests from our own OpenAPI schema (valid and invalid bodies,
odd strings, boundary numbers) and sends them as each persona, against objects of their own
facility and of the other facility. No request may end in a server error, and no object of the
other facility may be returned."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils.crypto import get_random_string
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from reports.models import Report
from tests.conftest import Personas, login
from tests.factories import PatientFactory
from tests.inference.conftest import _fresh_engines, _no_auto_draft, canned  # noqa: F401
from tests.reports.conftest import draft_report  # noqa: F401


class _InTestTransaction:
    """Our WSGI app as Django's test client runs it: without closing the database connection at
    the end of each request (that connection holds the test's transaction)."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            body = b"".join(response)
            response.close()
            return [body]
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = _InTestTransaction()
ROLES = ("staff_a", "physician_a", "admin_a", "auditor_a")


@pytest.fixture
def world(personas: Personas, draft_report: Any) -> dict[str, dict[str, int]]:  # noqa: F811
    """Ids of one patient and one report per facility, for the generated requests to hit."""
    ids: dict[str, dict[str, int]] = {}
    for side, facility in (("own", personas.facility_a), ("other", personas.facility_b)):
        report: Report = draft_report(facility=facility)
        ids[side] = {"patients": PatientFactory.create(facility=facility).pk, "reports": report.pk}
    return ids


def _session(user: Any) -> dict[str, str]:
    client = login(Client(), user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    # A valid CSRF pair (Django accepts the same unmasked secret in cookie and header), so that
    # writes reach the views instead of stopping at the CSRF check.
    csrf = get_random_string(32)
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}; {settings.CSRF_COOKIE_NAME}={csrf}",
            "X-CSRFToken": csrf, "Referer": "http://testserver/", "Host": "testserver"}


@pytest.mark.django_db
@pytest.mark.parametrize("side", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@hypothesis_settings(max_examples=5, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
def test_no_generated_request_causes_a_server_error_or_crosses_facilities(
        case: Any, role: str, side: str, personas: Personas, world: dict[str, dict[str, int]]) -> None:
    # One session per persona per test (the examples of one test share it): logging in for every
    # example would triple the time of this test.
    sessions: dict[str, dict[str, str]] = personas.__dict__.setdefault("_schemathesis_sessions", {})
    if role not in sessions:
        sessions[role] = _session(getattr(personas, role))
    headers = sessions[role]
    by_id = "id" in (case.path_parameters or {})
    if by_id:
        resource = "reports" if case.path.startswith("/reports/") else "patients"
        case.path_parameters["id"] = world[side][resource]
    response = case.call(headers=headers)
    where = f"{case.method} {case.formatted_path} as {role}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    assert "CSRF" not in response.text, f"{where}: refused by the CSRF check, so the view was not exercised"
    if side == "other" and by_id:
        # 404 (never 403, which would confirm the object exists); schemathesis also sends cases with
        # the credentials left out on purpose, and those must stop at authentication.
        unauthenticated = response.status_code in (401, 403) and "not_authenticated" in response.text
        assert response.status_code == 404 or unauthenticated, (
            f"{where} answered {response.status_code} across facilities: {response.text[:200]}")
    if response.status_code == 200 and not by_id and case.method.upper() == "GET":
        listed = {row.get("id") for row in (response.json() or {}).get("results", [])}
        assert world["other"]["patients"] not in listed, f"{where} listed the other facility's patient"
