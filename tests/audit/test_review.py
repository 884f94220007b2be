"""Audit review: administrators and auditors search their facilities' trail (read-only), page
through it by seq, see who looked at a patient, and check the chain — and each of those looks is
itself audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from audit.kinds import EventKind
from audit.models import AuditEvent
from audit.services import audit_record
from tests.audit.conftest import Trail
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


def _seqs(response: object) -> list[int]:
    return [e.seq for e in response.context["page"].events]  # type: ignore[attr-defined]


@pytest.mark.parametrize("persona", ["auditor_a", "admin_a"])
def test_reviewers_see_their_facility_and_facility_less_events_only(
    client_for: Callable[[str], Client], trail: Trail, persona: str
) -> None:
    response = client_for(persona).get("/audit/")
    assert response.status_code == 200
    seqs = _seqs(response)
    assert trail.read_a.seq in seqs and trail.login_failed.seq in seqs
    assert trail.read_b.seq not in seqs
    assert "監査ログ" in response.content.decode()


@pytest.mark.parametrize("persona", ["staff_a", "physician_a", "physician_b"])
def test_people_without_review_audit_are_refused_and_the_attempt_is_audited(
    client_for: Callable[[str], Client], trail: Trail, persona: str
) -> None:
    client = client_for(persona)
    for url in ("/audit/", "/audit/export.csv", "/audit/export.fhir.json", "/audit/verify/",
                f"/audit/patients/{trail.patient_a.pk}/"):
        assert client.get(url).status_code == 403, url
    assert AuditEvent.objects.filter(kind="access_denied", object_type="audit.auditevent").count() == 5
    assert not AuditEvent.objects.filter(kind__in=["phi_search", "export"]).exists()


def test_anonymous_visitors_are_sent_to_login(trail: Trail) -> None:
    response = Client().get("/audit/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_nav_link_is_shown_only_to_reviewers(client_for: Callable[[str], Client], personas: Personas) -> None:
    assert 'href="/audit/"' in client_for("auditor_a").get("/").content.decode()
    assert 'href="/audit/"' not in client_for("staff_a").get("/").content.decode()


def test_the_review_is_read_only(client_for: Callable[[str], Client], trail: Trail) -> None:
    client = client_for("auditor_a")
    assert client.post("/audit/").status_code == 405
    assert client.post("/audit/export.csv").status_code == 405


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("patient_id={a}", {"read_a", "update_a"}),
        ("mrn=MRN-A1", {"read_a", "update_a"}),
        ("mrn=MRN-B1", set()),  # another facility's MRN resolves to nothing
        ("patient_id={b}", set()),  # another facility's patient: scoped out
        ("user=physician_a", {"read_a"}),
        ("kind=update", {"update_a"}),
        ("kind=update&kind=login_failed", {"update_a", "login_failed"}),
        ("object_type=clinical.patient&object_id={a}", {"read_a", "update_a"}),
        ("outcome=failure", {"login_failed"}),
    ],
)
def test_it_searches_by_patient_user_kind_object_and_outcome(
    client_for: Callable[[str], Client], trail: Trail, params: str, expected: set[str]
) -> None:
    names = {trail.read_a.seq: "read_a", trail.read_a.seq + 1: "update_a", trail.login_failed.seq: "login_failed"}
    url = "/audit/?" + params.format(a=trail.patient_a.pk, b=trail.patient_b.pk)
    response = client_for("auditor_a").get(url)
    assert response.status_code == 200
    found = {names.get(s, f"other#{s}") for s in _seqs(response)}
    assert found == expected


def test_it_filters_by_local_calendar_days(client_for: Callable[[str], Client], trail: Trail) -> None:
    today = timezone.localdate()
    client = client_for("auditor_a")
    assert _seqs(client.get(f"/audit/?date_from={today}&date_to={today}"))
    yesterday = today - dt.timedelta(days=1)
    assert _seqs(client.get(f"/audit/?date_to={yesterday}")) == []
    bad = client.get(f"/audit/?date_from={today}&date_to={yesterday}")
    assert bad.context["page"] is None and "終了日" in bad.content.decode()


def test_searches_are_audited_with_their_filters(
    client_for: Callable[[str], Client], personas: Personas, trail: Trail
) -> None:
    client_for("auditor_a").get("/audit/?mrn=MRN-A1&kind=phi_read")
    event = AuditEvent.objects.get(kind="phi_search", object_type="audit.auditevent")
    assert event.user_id == personas.auditor_a.pk and event.facility_id == personas.facility_a.pk
    assert event.details["filters"] == {"patient_ids": [trail.patient_a.pk], "kinds": ["phi_read"]}
    assert event.details["results"] == 1


def test_it_pages_by_seq_without_offset_or_count(client_for: Callable[[str], Client], personas: Personas) -> None:
    for i in range(120):
        audit_record(kind=EventKind.PHI_READ, facility_id=personas.facility_a.pk, object_type="t", object_id=i)
    client = client_for("auditor_a")
    seen: list[int] = []
    url = "/audit/?kind=phi_read"
    with CaptureQueriesContext(connection) as queries:
        while url:
            response = client.get(url)
            seen += _seqs(response)
            url = response.context["next_url"]
    assert len(seen) == 120 and seen == sorted(seen, reverse=True) and len(set(seen)) == 120
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries if "AUDIT_AUDITEVENT" in q["sql"].upper())
    assert "OFFSET" not in sql and "COUNT(" not in sql


def test_a_search_page_costs_a_fixed_number_of_queries(
    client_for: Callable[[str], Client], personas: Personas, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    client = client_for("auditor_a")
    client.get("/audit/")
    for i in range(60):
        audit_record(kind=EventKind.PHI_READ, facility_id=personas.facility_a.pk, object_type="t", object_id=i)
    # session, user, 2FA role check, scope (guardian), the page, the PHI_SEARCH write (head lock;
    # insert and head update in one statement), the nav bar's memberships and its two extra links'
    # scopes (sign_reports, administer_facility); the 監査ログ link is cached. The same whatever the
    # log's length.
    with django_assert_num_queries(8):
        client.get("/audit/?kind=phi_read")


def test_a_patients_access_history_groups_events_by_user(
    client_for: Callable[[str], Client], personas: Personas, trail: Trail
) -> None:
    for _ in range(2):
        audit_record(kind=EventKind.PHI_READ, user=personas.physician_a, facility_id=personas.facility_a.pk,
                     object_type="clinical.patient", object_id=trail.patient_a.pk, patient_id=trail.patient_a.pk)
    response = client_for("admin_a").get(f"/audit/patients/{trail.patient_a.pk}/")
    assert response.status_code == 200
    history = response.context["history"]
    assert [(u.username, u.events, u.kinds) for u in history.by_user] == [
        ("physician_a", 3, ("phi_read",)), ("staff_a", 1, ("update",))]
    assert len(history.events) == 4
    html = response.content.decode()
    assert "physician_a" in html and "佐藤" not in html  # the log holds ids, never the name
    looked = AuditEvent.objects.get(kind="phi_search", object_type="audit.patient_history")
    assert looked.patient_id == trail.patient_a.pk and looked.user_id == personas.admin_a.pk


def test_another_facilitys_patient_history_is_not_found_and_the_attempt_is_audited(
        client_for: Callable[[str], Client], trail: Trail) -> None:
    response = client_for("auditor_a").get(f"/audit/patients/{trail.patient_b.pk}/")
    assert response.status_code == 404
    denied = AuditEvent.objects.get(kind="access_denied", object_type="audit.patient_history")
    assert denied.object_id == str(trail.patient_b.pk) and denied.username == "auditor_a"


def test_the_verify_button_checks_the_chain_and_is_audited(
    client_for: Callable[[str], Client], personas: Personas, trail: Trail
) -> None:
    client = client_for("auditor_a")
    assert client.get("/audit/verify/").status_code == 200
    response = client.post("/audit/verify/")
    html = response.content.decode()
    assert response.status_code == 200 and "正常" in html and "チェーンは完全です" in html
    event = AuditEvent.objects.get(kind="audit_verify")
    assert event.outcome == "success" and event.details["ok"] is True and event.details["checked"] >= 4


def test_the_verify_button_names_the_first_broken_link(client_for: Callable[[str], Client], trail: Trail) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("tampering needs the trigger disabled (PostgreSQL)")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute("UPDATE audit_auditevent SET username = 'eve' WHERE seq = %s", [trail.read_a.seq])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    response = client_for("auditor_a").post("/audit/verify/")
    html = response.content.decode()
    assert "破損を検出しました" in html and f"連番 {trail.read_a.seq}" in html
    event = AuditEvent.objects.get(kind="audit_verify")
    assert event.outcome == "failure" and event.details["break_seq"] == trail.read_a.seq
