"""A signed report as a FHIR R4 Bundle (type collection): Patient, Organization (the facility),
Practitioner (the signing physician), DiagnosticReport and, for a checkup visit, one Observation
per measured item with its judgement. Entries are named by urn:uuid full URLs derived from our
ids, so exporting the same signature twice gives the same references and a receiver can match
re-sent resources.

Codes: JLAC10 per JP Core (MEDIS 17-digit system), UCUM units, HL7 v3 ObservationInterpretation
(N / H / L / A); the judgement itself (保健指導・受診勧奨, 判定区分 A–E) travels as a local coding
of the rule set it came from. Report kinds have no verified LOINC mapping yet, so they carry a
local code and a Japanese text only."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone, translation

from clinical.intake.items import BY_KEY
from clinical.models import Observation, Patient, ScreeningResult
from clinical.screening import RuleSet
from clinical.screening.model import LEVELS
from reports.letters.context import KIND_LABELS, OUTCOME_LABELS, physician_name, reference_text, ruleset_or_none
from reports.models import Report, ReportStatus, SignOff

JLAC10 = "http://medis.or.jp/CodeSystem/master-JLAC10-17digits"
UCUM = "http://unitsofmeasure.org"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"
NAME_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
LOCAL = "urn:medlmm"  # our own identifiers and codes: urn:medlmm:<what>
_NAMESPACE = uuid.UUID("6f1c2d0e-5a7b-4c1e-9d3f-2b8e4a6c7d90")

UCUM_UNITS = {"mmHg": "mm[Hg]", "mg/dL": "mg/dL", "%": "%", "U/L": "U/L", "cm": "cm", "kg": "kg",
              "kg/m2": "kg/m2", "mL/min/1.73m2": "mL/min/{1.73_m2}", "g/dL": "g/dL"}
# Blood pressure and body measurements are examination findings; the vital-signs category would
# bind them to the vital-signs profile (LOINC codes), which JLAC10-coded items do not meet.
EXAM_ITEMS = frozenset({"height_cm", "weight_kg", "bmi", "waist_cm", "sbp", "dbp"})
SERVICE_SECTIONS = {"cxr": "RAD", "ct": "CT", "ecg": "EC"}
GRADE_INTERPRETATION = {"A": "N", "B": "A", "C": "A", "D": "A"}


def _urn(kind: str, key: object) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{kind}/{key}')}"


def _instant(value: datetime) -> str:
    return timezone.localtime(value).isoformat(timespec="milliseconds")


def _number(value: Decimal) -> int | float:
    normal = value.normalize()
    return int(normal) if normal == normal.to_integral_value() else float(format(normal, "f"))


def report_bundle(report: Report, signoff: SignOff) -> dict[str, Any]:
    """The bundle for `signoff`, the latest signature of `report` (a signed report: the caller checked).
    Display texts in Japanese, like the signed text they accompany, whatever the exporter's UI language."""
    with translation.override("ja"):
        return _bundle(report, signoff)


def _bundle(report: Report, signoff: SignOff) -> dict[str, Any]:
    patient = report.patient or (report.visit.patient if report.visit else None)
    effective: date | None = report.visit.exam_date if report.visit else (
        report.study.study_date if report.study else None)
    entries: list[tuple[str, dict[str, Any]]] = []
    subject: dict[str, Any] | None = None
    if patient is not None:
        url = _urn("patient", patient.pk)
        entries.append((url, _patient(patient, report.facility.code)))
        subject = {"reference": url, "display": patient.full_name}
    org_url = _urn("facility", report.facility_id)
    entries.append((org_url, {"resourceType": "Organization", "id": f"facility-{report.facility_id}",
                              "identifier": [{"system": f"{LOCAL}:facility", "value": report.facility.code}],
                              "name": report.facility.name}))
    doctor, doctor_name = signoff.physician, physician_name(signoff.physician)
    doctor_url = _urn("user", doctor.pk)
    entries.append((doctor_url, {"resourceType": "Practitioner", "id": f"practitioner-{doctor.pk}",
                                 "identifier": [{"system": f"{LOCAL}:user", "value": doctor.get_username()}],
                                 "name": [{"text": doctor_name}]}))
    observations: list[tuple[str, dict[str, Any]]] = []
    if report.visit is not None and subject is not None and effective is not None:
        observations = _observations(report, subject, effective)
    kind_label = str(KIND_LABELS.get(report.kind, report.kind))
    diagnostic: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": f"report-{report.pk}",
        "identifier": [{"system": f"{LOCAL}:report", "value": str(report.pk)},
                       {"system": f"{LOCAL}:signoff-sha256", "value": signoff.content_sha256}],
        "status": "amended" if report.status == ReportStatus.AMENDED else "final",
        "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": SERVICE_SECTIONS.get(report.kind, "OTH")}]}],
        "code": {"coding": [{"system": f"{LOCAL}:report-kind", "code": report.kind, "display": kind_label}],
                 "text": kind_label},
        "issued": _instant(signoff.signed_at),
        "performer": [{"reference": org_url, "display": report.facility.name}],
        "resultsInterpreter": [{"reference": doctor_url, "display": doctor_name}],
        "result": [{"reference": url, "display": obs["code"]["text"]} for url, obs in observations],
        "conclusion": signoff.revision.text,
    }
    if subject is not None:
        diagnostic["subject"] = subject
    if effective is not None:
        diagnostic["effectiveDateTime"] = effective.isoformat()
    if not diagnostic["result"]:
        del diagnostic["result"]  # FHIR forbids empty arrays
    entries.append((_urn("report", report.pk), diagnostic))
    entries.extend(observations)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_NAMESPACE, f"bundle/{signoff.pk}")),
        "meta": {"lastUpdated": _instant(timezone.now())},
        "identifier": {"system": f"{LOCAL}:signoff", "value": str(signoff.pk)},
        "type": "collection",
        "timestamp": _instant(timezone.now()),
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }


def _patient(patient: Patient, facility_code: str) -> dict[str, Any]:
    def name(family: str, given: str, representation: str) -> dict[str, Any]:
        return {"extension": [{"url": NAME_REPRESENTATION, "valueCode": representation}], "use": "official",
                "text": f"{family} {given}", "family": family, "given": [given]}

    return {
        "resourceType": "Patient",
        "id": f"patient-{patient.pk}",
        "identifier": [{"system": f"{LOCAL}:facility:{facility_code}:mrn", "value": patient.mrn}],
        # JP Core: the kanji name is the ideographic (IDE) representation, the kana the syllabic (SYL).
        "name": [name(patient.family_name, patient.given_name, "IDE"),
                 name(patient.family_name_kana, patient.given_name_kana, "SYL")],
        "gender": {"M": "male", "F": "female"}.get(patient.sex, "unknown"),
        "birthDate": patient.birth_date.isoformat(),
    }


def _observations(report: Report, subject: dict[str, Any], effective: date) -> list[tuple[str, dict[str, Any]]]:
    visit = report.visit
    assert visit is not None
    sex = report.patient.sex if report.patient else visit.patient.sex
    rulesets = [(s, ruleset_or_none(s.ruleset)) for s in sorted(ScreeningResult.objects.filter(visit=visit),
                                                           key=lambda s: s.ruleset)]
    out = []
    for obs in sorted(Observation.objects.filter(visit=visit), key=lambda o: list(BY_KEY).index(o.item)
                      if o.item in BY_KEY else len(BY_KEY)):
        item = BY_KEY.get(obs.item)
        if item is None or item.kind == "flag":
            continue  # questionnaire answers are not results of this report
        codes = [{"system": JLAC10, "code": obs.jlac10 or item.jlac10[0], "display": item.label},
                 {"system": f"{LOCAL}:item", "code": item.key}]
        resource: dict[str, Any] = {
            "resourceType": "Observation", "id": f"observation-{obs.pk}", "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY,
                                      "code": "exam" if obs.item in EXAM_ITEMS else "laboratory"}]}],
            "code": {"coding": codes, "text": item.label},
            "subject": subject, "effectiveDateTime": effective.isoformat(),
        }
        if obs.value_num is not None:
            unit = obs.unit or item.unit
            quantity: dict[str, Any] = {"value": _number(obs.value_num), "unit": unit}
            if unit in UCUM_UNITS:
                quantity.update(system=UCUM, code=UCUM_UNITS[unit])
            resource["valueQuantity"] = quantity
        else:
            resource["valueString"] = obs.value_text
        interpretation = [c for s, rs in rulesets if (c := _interpretation(s, rs, obs.item, sex)) is not None]
        if interpretation:
            resource["interpretation"] = interpretation
        reference = reference_text(rulesets, obs.item, sex, visit.fasting)
        if reference:
            resource["referenceRange"] = [{"text": reference}]
        out.append((_urn("observation", obs.pk), resource))
    return out


def _interpretation(result: ScreeningResult, ruleset: RuleSet | None, key: str, sex: str) -> dict[str, Any] | None:
    outcome = result.items.get(key)
    if not outcome:
        return None
    label = str(OUTCOME_LABELS.get(outcome) or (ruleset.grade_labels.get(outcome, outcome) if ruleset else outcome))
    codings = [{"system": f"{LOCAL}:ruleset:{result.ruleset}", "version": result.ruleset_version, "code": outcome,
                "display": label}]
    v3 = _v3(ruleset, key, sex, outcome)
    if v3:
        codings.insert(0, {"system": V3_INTERPRETATION, "code": v3})
    return {"coding": codings, "text": f"{label}（{result.ruleset}）"}


def _v3(ruleset: RuleSet | None, key: str, sex: str, outcome: str) -> str:
    if ruleset is None:
        return ""
    if ruleset.kind != LEVELS:
        return GRADE_INTERPRETATION.get(outcome, "")  # E (治療中) and ungraded say nothing about the value
    if outcome == "normal":
        return "N"
    rule = next((r for r in ruleset.items if r.field == key and r.levels), None)
    if rule is None:
        return "A"
    return "H" if rule.levels[sex].guidance.upward else "L"
