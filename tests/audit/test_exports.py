"""Exports: CSV that Excel opens in Japanese, FHIR R4 AuditEvent Bundles other systems accept;
scoped like the search, and audited as EXPORT before the first byte leaves."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from audit.exports import csv_row, fhir_audit_event
from audit.kinds import EventKind, Outcome
from audit.models import AuditEvent
from audit.services import audit_record
from tests.audit.conftest import Trail
from tests.conftest import Personas

pytestmark = pytest.mark.django_db

INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ACTIONS = {"C", "R", "U", "D", "E"}
OUTCOMES = {"0", "4", "8", "12"}


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def test_csv_has_a_bom_a_japanese_header_and_the_scoped_rows(
    client_for: Callable[[str], Client], personas: Personas, trail: Trail
) -> None:
    response = client_for("auditor_a").get("/audit/export.csv")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    raw = _body(response)
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:4] == ["連番", "日時(UTC)", "種別", "種別名"]
    seqs = [int(r[0]) for r in rows[1:]]
    assert trail.read_a.seq in seqs and trail.login_failed.seq in seqs and trail.read_b.seq not in seqs
    read = next(r for r in rows[1:] if int(r[0]) == trail.read_a.seq)
    assert read[3] == "個人情報の閲覧" and read[6] == "physician_a" and read[-1] == trail.read_a.hash
    export = AuditEvent.objects.get(kind="export")
    assert export.user_id == personas.auditor_a.pk and export.details["format"] == "csv"


def test_csv_export_follows_the_search_filters(client_for: Callable[[str], Client], trail: Trail) -> None:
    raw = _body(client_for("auditor_a").get("/audit/export.csv?outcome=failure"))
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))[1:]
    assert [int(r[0]) for r in rows] == [trail.login_failed.seq]
    assert AuditEvent.objects.get(kind="export").details["filters"] == {"outcome": "failure"}


def test_csv_cells_cannot_become_spreadsheet_formulas(personas: Personas) -> None:
    event = audit_record(kind=EventKind.LOGIN_FAILED, outcome=Outcome.FAILURE, username="=HYPERLINK(\"x\")")
    assert csv_row(event)[6] == "'=HYPERLINK(\"x\")"


def _check_coding(coding: Any) -> None:
    assert isinstance(coding, dict) and isinstance(coding["system"], str) and coding["system"]
    assert isinstance(coding["code"], str) and coding["code"]


def assert_valid_fhir_audit_event(resource: dict[str, Any]) -> None:
    """FHIR R4 (4.0.1) AuditEvent, checked by hand against the structure definition: the required
    elements (type 1..1, recorded 1..1, agent 1..*, agent.requestor 1..1, source 1..1,
    source.observer 1..1) and the value sets we use."""
    assert resource["resourceType"] == "AuditEvent"
    allowed = {"resourceType", "id", "meta", "text", "type", "subtype", "action", "period", "recorded", "outcome",
               "outcomeDesc", "purposeOfEvent", "agent", "source", "entity"}
    assert set(resource) <= allowed, set(resource) - allowed
    _check_coding(resource["type"])
    for sub in resource.get("subtype", []):
        _check_coding(sub)
    assert INSTANT.match(resource["recorded"])
    assert resource.get("action", "E") in ACTIONS and resource.get("outcome", "0") in OUTCOMES
    assert isinstance(resource["agent"], list) and resource["agent"]
    for agent in resource["agent"]:
        assert isinstance(agent["requestor"], bool)
        assert set(agent) <= {"type", "role", "who", "altId", "name", "requestor", "location", "policy", "media",
                              "network", "purposeOfUse"}
        if "network" in agent:
            assert agent["network"]["type"] in {"1", "2", "3", "4", "5"}
    source = resource["source"]
    assert isinstance(source["observer"], dict) and source["observer"]
    for t in source.get("type", []):
        _check_coding(t)
    for entity in resource.get("entity", []):
        assert set(entity) <= {"what", "type", "role", "lifecycle", "securityLabel", "name", "description", "query",
                               "detail"}
        for key in ("type", "role"):
            if key in entity:
                _check_coding(entity[key])
        for detail in entity.get("detail", []):
            assert isinstance(detail["type"], str) and ("valueString" in detail or "valueBase64Binary" in detail)


def test_fhir_export_is_a_collection_bundle_of_valid_audit_events(
    client_for: Callable[[str], Client], trail: Trail
) -> None:
    response = client_for("admin_a").get("/audit/export.fhir.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    bundle = json.loads(_body(response))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert INSTANT.match(bundle["timestamp"])
    resources = [e["resource"] for e in bundle["entry"]]
    for resource in resources:
        assert_valid_fhir_audit_event(resource)
    by_id = {r["id"]: r for r in resources}
    assert str(trail.read_b.seq) not in by_id
    read = by_id[str(trail.read_a.seq)]
    assert read["type"]["code"] == "110110" and read["action"] == "R" and read["outcome"] == "0"
    assert read["entity"][0]["what"] == {"reference": f"Patient/{trail.patient_a.pk}"}
    assert read["agent"][0]["altId"] == "physician_a"
    failed = by_id[str(trail.login_failed.seq)]
    assert failed["type"]["code"] == "110114" and failed["outcome"] == "4"
    assert failed["outcomeDesc"] == "invalid_credentials"
    assert AuditEvent.objects.get(kind="export").details["format"] == "fhir"


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_maps_to_a_valid_audit_event(personas: Personas, kind: EventKind) -> None:
    event = audit_record(kind=kind, user=personas.staff_a, facility_id=personas.facility_a.pk,
                         object_type="clinical.patient", object_id=1, patient_id=1, details={"x": "y"})
    resource = fhir_audit_event(event)
    assert_valid_fhir_audit_event(resource)
    assert {"system": "urn:medlmm:audit:event-kind", "code": kind.value, "display": str(kind.label)} in (
        resource["subtype"])


def test_an_empty_export_is_still_a_valid_bundle(client_for: Callable[[str], Client], personas: Personas) -> None:
    bundle = json.loads(_body(client_for("auditor_a").get("/audit/export.fhir.json?user=nobody")))
    assert bundle["entry"] == []
