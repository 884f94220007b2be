"""QIDO-RS: the standard query keys, paging, Japanese names, facility scope (with the audit trail
of a search that reached for another facility's study), and a fixed number of queries."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pydicom
import pytest
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from audit.models import AuditEvent
from clinical.dicom.models import Source
from clinical.dicom.services import instances_ingest
from tests.conftest import Personas
from tests.dicom.conftest import ct_series, sample

pytestmark = pytest.mark.django_db


def _uid(data: bytes, name: str = "StudyInstanceUID") -> str:
    return str(getattr(pydicom.dcmread(io.BytesIO(data)), name))


@pytest.fixture
def archive(personas: Personas) -> dict[str, Any]:
    """A: two CT studies of P-1 (2024-04-01, 2024-05-10), one MR of P-2, Japanese chrH31;
    B: a CT study of B-1."""
    a1, a2 = ct_series(3, patient_id="P-1"), ct_series(2, patient_id="P-1", study_date="20240510")
    mr = ct_series(1, patient_id="P-2", modality="MR", study_date="20230101", patient_name="Suzuki^Hanako")
    b1 = ct_series(2, patient_id="B-1")
    for items, facility in ((a1 + a2 + mr + [sample("chrH31.dcm")], personas.facility_a), (b1, personas.facility_b)):
        assert all(r.ok for r in instances_ingest(items=items, facility=facility, source=Source.STOW, actor=None))
    return {"a1": _uid(a1[0]), "a2": _uid(a2[0]), "mr": _uid(mr[0]), "b1": _uid(b1[0]),
            "a1_series": _uid(a1[0], "SeriesInstanceUID")}


def _studies(client: Client, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/dicomweb/studies{query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    return response.json()


def _values(results: list[dict[str, Any]], tag: str) -> list[Any]:
    return [r[tag].get("Value", [None])[0] for r in results]


def test_study_search_by_patient_id_returns_the_standard_attributes(
    client_for: Callable[[str], Client], archive: dict[str, Any]
) -> None:
    results = _studies(client_for("physician_a"), "?PatientID=P-1")
    assert _values(results, "0020000D") == [archive["a2"], archive["a1"]]  # newest first
    first = results[1]
    assert first["00080020"] == {"vr": "DA", "Value": ["20240401"]}
    assert first["00080061"] == {"vr": "CS", "Value": ["CT"]}
    assert first["00201206"]["Value"] == [1] and first["00201208"]["Value"] == [3]
    assert first["00100010"]["Value"][0] == {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
                                             "Phonetic": "やまだ^たろう"}
    assert first["00081190"]["Value"][0] == f"http://testserver/dicomweb/studies/{archive['a1']}"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?StudyDate=20240101-20241231", ["a2", "a1"]),
        ("?StudyDate=-20231231", ["mr"]),
        ("?00080020=20240510", ["a2"]),
        ("?ModalitiesInStudy=MR", ["mr"]),
        ("?ModalitiesInStudy=MR,CT&PatientID=P-*", ["a2", "a1", "mr"]),
        ("?PatientName=suzuki*", ["mr"]),
        ("?PatientName=山田*&PatientID=P-1", ["a2", "a1"]),
        ("?PatientName=やまだ^たろう&PatientID=P-1", ["a2", "a1"]),
        ("?PatientID=P-?", ["a2", "a1", "mr"]),
        ("?limit=1&offset=1&PatientID=P-1", ["a1"]),
    ],
)
def test_query_keys_match_as_ps3_4_says(
    client_for: Callable[[str], Client], archive: dict[str, Any], query: str, expected: list[str]
) -> None:
    assert _values(_studies(client_for("staff_a"), query), "0020000D") == [archive[k] for k in expected]


def test_a_list_of_study_uids_and_the_japanese_sample(
    client_for: Callable[[str], Client], archive: dict[str, Any]
) -> None:
    uids = f"{archive['a1']},{archive['mr']}"
    assert sorted(_values(_studies(client_for("staff_a"), f"?StudyInstanceUID={uids}"), "0020000D")) == sorted(
        [archive["a1"], archive["mr"]])
    [jp] = _studies(client_for("staff_a"), "?PatientID=H31EXAMPLE")
    assert jp["00100010"]["Value"][0]["Ideographic"] == "山田^太郎"


def test_series_and_instance_levels(client_for: Callable[[str], Client], archive: dict[str, Any]) -> None:
    client = client_for("staff_a")
    [series] = client.get(f"/dicomweb/studies/{archive['a1']}/series").json()
    assert series["0020000E"]["Value"] == [archive["a1_series"]] and series["00201209"]["Value"] == [3]
    instances = client.get(f"/dicomweb/studies/{archive['a1']}/series/{archive['a1_series']}/instances").json()
    assert _values(instances, "00200013") == [1, 2, 3]
    assert _values(instances, "00280010") == [128, 128, 128]
    assert len(client.get("/dicomweb/series?Modality=MR").json()) == 1
    assert len(client.get("/dicomweb/instances?InstanceNumber=2&PatientID=P-1").json()) == 2


def test_bad_query_values_are_400_and_unknown_keys_a_warning(client_for: Callable[[str], Client], archive: Any) -> None:
    client = client_for("staff_a")
    assert client.get("/dicomweb/studies?StudyDate=2024-04-01").status_code == 400
    assert client.get("/dicomweb/studies?limit=abc").status_code == 400
    response = client.get("/dicomweb/studies?PatientID=P-1&InstitutionName=X")
    assert response.status_code == 200 and "InstitutionName" in response["Warning"]


def test_another_facilitys_studies_are_never_returned_and_the_attempt_is_audited(
    client_for: Callable[[str], Client], personas: Personas, archive: dict[str, Any]
) -> None:
    client = client_for("physician_b")
    assert _values(_studies(client), "0020000D") == [archive["b1"]]
    assert _studies(client, f"?StudyInstanceUID={archive['a1']}") == []
    assert _studies(client, "?PatientID=P-1") == []
    assert client.get(f"/dicomweb/studies/{archive['a1']}/series").json() == []
    assert client.get(f"/dicomweb/studies/{archive['a1']}/series/{archive['a1_series']}/instances").json() == []
    searches = AuditEvent.objects.filter(kind="phi_search", user_id=personas.physician_b.pk).order_by("seq")
    assert [e.details.get("other_facility") for e in searches] == [None, True, None, True, True]
    assert all(e.details["facilities"] == [personas.facility_b.pk] for e in searches)


def test_auditors_see_no_images(client_for: Callable[[str], Client], archive: dict[str, Any]) -> None:
    assert _studies(client_for("auditor_a")) == []


@pytest.mark.parametrize("count", [2, 20])
def test_a_study_search_costs_the_same_queries_at_any_size(
    client_for: Callable[[str], Client], personas: Personas, count: int,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    for _ in range(count):
        instances_ingest(items=ct_series(2), facility=personas.facility_a, source=Source.STOW, actor=None)
    client = client_for("physician_a")
    client.get("/dicomweb/studies")  # warm the session
    # session, user, otp device, 2FA role check, guardian scope, the studies page (counts and
    # modalities are on the study), audit (asynchronous commit, lock, insert and head update in one
    # statement).
    with django_assert_num_queries(9):
        assert len(_studies(client)) == count


def test_search_audit_commits_asynchronously_unless_turned_off(
    client_for: Callable[[str], Client], archive: dict[str, Any], settings: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for("staff_a")
    with CaptureQueriesContext(connection) as on:
        _studies(client, "?PatientID=P-1")
    settings.AUDIT_READ_ASYNC = False
    with CaptureQueriesContext(connection) as off:
        _studies(client, "?PatientID=P-1")
    assert any("synchronous_commit TO OFF" in q["sql"] for q in on.captured_queries)
    assert not any("synchronous_commit" in q["sql"] for q in off.captured_queries)
    assert AuditEvent.objects.filter(kind="phi_search").count() == 2  # recorded either way
