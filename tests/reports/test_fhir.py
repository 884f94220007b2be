"""The FHIR R4 export of a signed report: a collection Bundle whose DiagnosticReport carries the
signed text and signature, with Patient, Practitioner, Organization and one coded Observation per
measured item; every reference resolves inside the bundle. No FHIR library is installed, so the
structure is checked here against the R4 rules the receivers rely on."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from reports import services
from reports.fhir import JLAC10, UCUM, V3_INTERPRETATION
from reports.models import Report, SignOff
from tests.conftest import PASSWORD, Personas

pytestmark = pytest.mark.django_db

ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
URN_UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
REQUIRED = {"Bundle": ("type",), "DiagnosticReport": ("status", "code"), "Observation": ("status", "code"),
            "Patient": (), "Practitioner": (), "Organization": ()}


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value} is an instant: it needs a time zone"
    return parsed


def _no_empty(node: Any, path: str = "") -> None:
    """FHIR JSON has no empty strings, arrays or objects, and no nulls."""
    assert node not in ("", [], {}, None), f"empty value at {path}"
    if isinstance(node, dict):
        for key, value in node.items():
            _no_empty(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _no_empty(value, f"{path}[{i}]")


def assert_valid_bundle(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check the R4 rules this export must meet; return the resources by full URL."""
    _no_empty(bundle)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    _instant(bundle["timestamp"])
    by_url: dict[str, dict[str, Any]] = {}
    for entry in bundle["entry"]:
        assert URN_UUID.match(entry["fullUrl"]) and entry["fullUrl"] not in by_url
        resource = entry["resource"]
        assert ID.match(resource["id"]), resource["id"]
        for field in REQUIRED[resource["resourceType"]]:
            assert field in resource, f"{resource['resourceType']}.{field} is required"
        by_url[entry["fullUrl"]] = resource

    def references(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["reference"]] if isinstance(node.get("reference"), str) else []
            return found + [r for v in node.values() for r in references(v)]
        if isinstance(node, list):
            return [r for v in node for r in references(v)]
        return []

    for url in references(bundle["entry"]):
        assert url in by_url, f"reference {url} does not resolve inside the bundle"
    for resource in by_url.values():
        for coding in (c for cc in _codeable(resource) for c in cc.get("coding", [])):
            assert coding["system"] and coding["code"], coding
    return by_url


def _codeable(resource: dict[str, Any]) -> list[dict[str, Any]]:
    found = [resource["code"]] if "code" in resource else []
    return found + list(resource.get("category", [])) + list(resource.get("interpretation", []))


def of_type(resources: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources.values() if r["resourceType"] == kind]


@pytest.fixture
def signed(personas: Personas, draft_report: Callable[..., Report]) -> Report:
    report = draft_report()
    services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                         credential=PASSWORD)
    return report


def test_it_exports_a_valid_bundle_of_the_signed_report(
        signed: Report, client_for: Callable[[str], Any], audit_events: Any) -> None:
    response = client_for("staff_a").get(f"/reports/{signed.pk}/fhir.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    bundle = json.loads(response.content)
    resources = assert_valid_bundle(bundle)
    signoff = SignOff.objects.get(report=signed)
    [report] = of_type(resources, "DiagnosticReport")
    assert report["status"] == "final" and report["conclusion"] == signoff.revision.text
    assert abs(_instant(report["issued"]) - signoff.signed_at) < timedelta(milliseconds=1)
    assert report["effectiveDateTime"] == "2024-06-01"
    assert {"system": "urn:medlmm:signoff-sha256", "value": signoff.content_sha256} in report["identifier"]
    assert resources[report["resultsInterpreter"][0]["reference"]]["resourceType"] == "Practitioner"
    assert resources[report["subject"]["reference"]]["resourceType"] == "Patient"
    assert resources[report["performer"][0]["reference"]]["name"] == "A健診センター"
    results = [resources[r["reference"]] for r in report["result"]]
    assert [o["code"]["text"] for o in results] == ["収縮期血圧", "拡張期血圧", "LDLコレステロール", "HbA1c"]
    assert len(of_type(resources, "Observation")) == 4
    event = audit_events(kind="export")[-1]
    assert event.patient_id == signed.patient_id and event.details["format"] == "fhir"


def test_each_observation_carries_jlac10_ucum_and_the_judgement(signed: Report) -> None:
    from reports.fhir import report_bundle

    bundle = report_bundle(Report.objects.get(pk=signed.pk), SignOff.objects.get(report=signed))
    observations = {o["code"]["text"]: o for o in of_type(assert_valid_bundle(bundle), "Observation")}
    sbp = observations["収縮期血圧"]
    assert {"system": JLAC10, "code": "9A751000000000001", "display": "収縮期血圧"} in sbp["code"]["coding"]
    assert sbp["valueQuantity"] == {"value": 152, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
    assert sbp["category"][0]["coding"][0]["code"] == "exam" and sbp["status"] == "final"
    [judged] = sbp["interpretation"]
    assert judged["coding"][0] == {"system": V3_INTERPRETATION, "code": "H"}
    assert judged["coding"][1]["code"] == "referral" and judged["text"] == "受診勧奨（mhlw-2024）"
    assert sbp["referenceRange"] == [{"text": "保健指導 ≥130 / 受診勧奨 ≥140"}]
    hba1c = observations["HbA1c"]
    assert hba1c["valueQuantity"]["value"] == 6.8 and hba1c["valueQuantity"]["code"] == "%"
    assert hba1c["category"][0]["coding"][0]["code"] == "laboratory"
    assert "interpretation" not in observations["拡張期血圧"]  # not judged by the stored result
    assert all(DATE.match(o["effectiveDateTime"]) for o in observations.values())


def test_the_patient_has_kanji_and_kana_names(signed: Report) -> None:
    from reports.fhir import report_bundle

    bundle = report_bundle(Report.objects.get(pk=signed.pk), SignOff.objects.get(report=signed))
    [patient] = of_type(assert_valid_bundle(bundle), "Patient")
    kanji, kana = patient["name"]
    assert (kanji["family"], kanji["given"], kanji["extension"][0]["valueCode"]) == ("山田", ["太郎"], "IDE")
    assert (kana["family"], kana["given"], kana["extension"][0]["valueCode"]) == ("ヤマダ", ["タロウ"], "SYL")
    assert patient["gender"] == "male" and patient["birthDate"] == "1970-04-01"
    assert patient["identifier"][0] == {"system": "urn:medlmm:facility:A01:mrn", "value": "R0001"}


def test_an_amended_report_is_exported_as_amended_with_the_new_text(
        personas: Personas, signed: Report, client_for: Callable[[str], Any]) -> None:
    services.report_amend(report=signed, actor=personas.physician_a, text="収縮期血圧 152 mmHg。<b>減塩</b>を。",
                          reason="追記", method="password", credential=PASSWORD)
    bundle = json.loads(client_for("physician_a").get(f"/reports/{signed.pk}/fhir.json").content)
    [report] = of_type(assert_valid_bundle(bundle), "DiagnosticReport")
    assert report["status"] == "amended" and report["conclusion"] == "収縮期血圧 152 mmHg。<b>減塩</b>を。"


def test_exporting_the_same_signature_twice_gives_the_same_references(signed: Report) -> None:
    from reports.fhir import report_bundle

    report, signoff = Report.objects.get(pk=signed.pk), SignOff.objects.get(report=signed)
    first, second = report_bundle(report, signoff), report_bundle(report, signoff)
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in second["entry"]]
    assert first["id"] == second["id"]


def test_a_draft_is_refused_with_an_operation_outcome(
        draft_report: Callable[..., Report], client_for: Callable[[str], Any]) -> None:
    report = draft_report()
    response = client_for("physician_a").get(f"/reports/{report.pk}/fhir.json")
    assert response.status_code == 409
    outcome = json.loads(response.content)
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "business-rule"
    assert "署名されていません" in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("who", ["physician_b", "auditor_a"])
def test_it_answers_404_outside_the_users_facilities(
        signed: Report, client_for: Callable[[str], Any], audit_events: Any, who: str) -> None:
    assert client_for(who).get(f"/reports/{signed.pk}/fhir.json").status_code == 404
    assert not audit_events(kind="export")
