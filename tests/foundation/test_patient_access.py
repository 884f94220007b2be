"""Facility A's people never see facility B's examinees: 404, audited, for every URL and endpoint."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from audit.models import AuditEvent
from clinical.models import Patient
from tests.conftest import Personas
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NEW = {"facility": "A01", "mrn": "A-0001", "family_name": "山田", "given_name": "太郎",
       "family_name_kana": "ヤマダ", "given_name_kana": "タロウ", "sex": "M", "birth_date": "1970-04-01"}


@pytest.fixture
def patient_a(personas: Personas) -> Patient:
    return PatientFactory.create(facility=personas.facility_a, family_name="佐藤", given_name="花子", sex="F")


@pytest.fixture
def patient_b(personas: Personas) -> Patient:
    return PatientFactory.create(facility=personas.facility_b, family_name="鈴木", given_name="一郎")


@pytest.mark.parametrize(
    "url",
    ["/patients/{pk}/", "/api/patients/{pk}/"],
)
@pytest.mark.parametrize("persona", ["staff_a", "physician_a", "admin_a", "auditor_a"])
def test_another_facilitys_patient_is_404_and_audited(
    client_for: Callable[[str], Client], patient_b: Patient, persona: str, url: str
) -> None:
    response = client_for(persona).get(url.format(pk=patient_b.pk))
    assert response.status_code == 404
    assert "鈴木" not in response.content.decode()
    denied = AuditEvent.objects.get(kind="access_denied")
    assert denied.outcome == "denied" and denied.object_type == "clinical.patient"
    assert denied.object_id == str(patient_b.pk)


def test_patching_another_facilitys_patient_is_404_and_changes_nothing(
    client_for: Callable[[str], Client], patient_b: Patient
) -> None:
    response = client_for("staff_a").patch(f"/api/patients/{patient_b.pk}/", {"family_name": "改竄"},
                                          content_type="application/json")
    assert response.status_code == 404
    patient_b.refresh_from_db()
    assert patient_b.family_name == "鈴木"
    assert not AuditEvent.objects.filter(kind="update").exists()


def test_a_patient_that_does_not_exist_is_the_same_404(client_for: Callable[[str], Client]) -> None:
    assert client_for("staff_a").get("/api/patients/999999/").status_code == 404


def test_lists_show_only_the_users_facilities(
    client_for: Callable[[str], Client], patient_a: Patient, patient_b: Patient
) -> None:
    html = client_for("physician_b").get("/patients/").content.decode()
    assert "鈴木" in html and "佐藤" not in html
    api = client_for("physician_a").get("/api/patients/").json()
    assert [p["id"] for p in api["results"]] == [patient_a.pk]
    assert client_for("auditor_a").get("/api/patients/").json()["count"] == 0


def test_reading_a_patient_is_audited_as_a_phi_read(
    client_for: Callable[[str], Client], personas: Personas, patient_a: Patient
) -> None:
    client_for("physician_a").get(f"/patients/{patient_a.pk}/")
    client_for("physician_a").get(f"/api/patients/{patient_a.pk}/")
    reads = AuditEvent.objects.filter(kind="phi_read").order_by("seq")
    assert [(e.patient_id, e.role, e.channel) for e in reads] == [
        (patient_a.pk, "physician", "web"), (patient_a.pk, "physician", "api")]
    assert all(e.user_id == personas.physician_a.pk and e.facility_id == personas.facility_a.pk for e in reads)


def test_staff_registers_a_patient_and_the_write_is_audited(
    client_for: Callable[[str], Client], personas: Personas
) -> None:
    response = client_for("staff_a").post("/api/patients/", NEW, content_type="application/json")
    assert response.status_code == 201, response.content
    patient = Patient.objects.get(mrn="A-0001")
    assert patient.facility == personas.facility_a
    event = AuditEvent.objects.get(kind="create", object_type="clinical.patient")
    assert event.patient_id == patient.pk and event.role == "staff"


def test_an_unknown_facility_id_gets_a_clear_error_an_audit_event_and_writes_nothing(
    client_for: Callable[[str], Client],
) -> None:
    client = client_for("staff_a")
    before = AuditEvent.objects.count()
    response = client.post("/api/patients/", {**NEW, "facility": "ZZ99"},
                                          content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"facility": ["施設コード「ZZ99」は存在しないか、権限がありません。"]}
    assert not Patient.objects.exists()
    [event] = AuditEvent.objects.filter(seq__gt=before)
    assert (event.kind, event.object_id, event.details) == (
        "access_denied", "ZZ99", {"operation": "patient_create", "exists": False})


def test_registering_into_another_facility_is_refused_like_an_unknown_one(
    client_for: Callable[[str], Client],
) -> None:
    response = client_for("staff_a").post("/api/patients/", {**NEW, "facility": "B01"},
                                          content_type="application/json")
    assert response.status_code == 400 and "B01" in response.json()["facility"][0]
    assert not Patient.objects.exists()
    assert AuditEvent.objects.get(kind="access_denied").details["exists"] is True


def test_a_physician_may_read_but_not_register_patients(client_for: Callable[[str], Client]) -> None:
    response = client_for("physician_a").post("/api/patients/", NEW, content_type="application/json")
    assert response.status_code == 403
    assert not Patient.objects.exists()


def test_a_duplicate_mrn_is_refused_with_the_field_named(
    client_for: Callable[[str], Client], patient_a: Patient
) -> None:
    response = client_for("staff_a").post("/api/patients/", {**NEW, "mrn": patient_a.mrn},
                                          content_type="application/json")
    assert response.status_code == 400
    assert "受診者番号" in str(response.json()) or "mrn" in str(response.json())
    assert Patient.objects.count() == 1


def test_correcting_a_birth_date_records_from_what_to_what(
    client_for: Callable[[str], Client], patient_a: Patient
) -> None:
    response = client_for("staff_a").patch(f"/api/patients/{patient_a.pk}/", {"birth_date": "1971-04-01"},
                                          content_type="application/json")
    assert response.status_code == 200
    event = AuditEvent.objects.get(kind="update")
    assert event.details == {"changed": {"birth_date": ["1970-04-01", "1971-04-01"]}}


@pytest.mark.parametrize("count", [3, 30])
def test_the_patient_list_costs_the_same_queries_at_any_size(
    client_for: Callable[[str], Client], personas: Personas, count: int,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    PatientFactory.create_batch(count, facility=personas.facility_a)
    client = client_for("staff_a")
    client.get("/patients/")  # warm the session
    # session, user, otp device, guardian scope, count, page, audit (lock, then insert and head
    # update in one statement), memberships and two nav-link permissions for the navigation bar:
    # none grows with the page.
    with django_assert_num_queries(9):
        assert client.get("/patients/").status_code == 200
    with django_assert_num_queries(8):
        assert client.get("/api/patients/").status_code == 200
