"""Audit events out: CSV for people (UTF-8 with BOM so Excel shows Japanese) and FHIR R4
AuditEvent (a Bundle of type collection) for other systems. Pure functions over AuditEvent rows,
streamed: an export of a million rows never sits in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from audit.kinds import EventKind, Outcome
from audit.models import AuditEvent

BOM = "\ufeff"

CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "連番"), ("occurred_at", "日時(UTC)"), ("kind", "種別"), ("kind_label", "種別名"),
    ("outcome", "結果"), ("user_id", "利用者ID"), ("username", "利用者名"), ("role", "役割"),
    ("facility_id", "施設ID"), ("source_ip", "接続元IP"), ("request_id", "リクエストID"), ("channel", "経路"),
    ("object_type", "対象種別"), ("object_id", "対象ID"), ("patient_id", "受診者ID"), ("details", "詳細"),
    ("hash", "ハッシュ"),
)

# Spreadsheet programs run a cell that starts with these as a formula (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_row(event: AuditEvent) -> list[str]:
    values: dict[str, Any] = {
        "seq": event.seq, "occurred_at": _iso(event.occurred_at), "kind": event.kind,
        "kind_label": str(EventKind(event.kind).label) if event.kind in EventKind.values else event.kind,
        "outcome": event.outcome, "user_id": event.user_id, "username": event.username, "role": event.role,
        "facility_id": event.facility_id, "source_ip": event.source_ip, "request_id": event.request_id,
        "channel": event.channel, "object_type": event.object_type, "object_id": event.object_id,
        "patient_id": event.patient_id,
        "details": json.dumps(event.details, ensure_ascii=False, sort_keys=True) if event.details else "",
        "hash": event.hash,
    }
    return [_cell(values[name]) for name, _label in CSV_COLUMNS]


def csv_stream(events: Iterable[AuditEvent]) -> Iterator[str]:
    """Lines of the CSV: a BOM, a Japanese header, one row per event (RFC 4180 quoting, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([label for _name, label in CSV_COLUMNS])
    yield BOM + flush()
    for event in events:
        writer.writerow(csv_row(event))
        yield flush()


# --- FHIR R4 AuditEvent ----------------------------------------------------------------------------
DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
NETWORK_TYPE_IP = "2"
# Our own kinds, kept as a subtype so the FHIR copy loses nothing of the original.
KIND_SYSTEM = "urn:medlmm:audit:event-kind"

_USER_AUTH = (DCM, "110114", "User Authentication")
_PATIENT_RECORD = (DCM, "110110", "Patient Record")
_SECURITY_ALERT = (DCM, "110113", "Security Alert")

# kind -> (type coding, action, DICOM/IHE subtype or None)
_KIND_MAP: dict[str, tuple[tuple[str, str, str], str, tuple[str, str, str] | None]] = {
    EventKind.LOGIN: (_USER_AUTH, "E", (DCM, "110122", "Login")),
    EventKind.LOGIN_FAILED: (_USER_AUTH, "E", (DCM, "110122", "Login")),
    EventKind.LOCKED_OUT: (_USER_AUTH, "E", (DCM, "110122", "Login")),
    EventKind.SECOND_FACTOR: (_USER_AUTH, "E", (DCM, "110122", "Login")),
    EventKind.SECOND_FACTOR_ENROLLED: (_USER_AUTH, "U", None),
    EventKind.LOGOUT: (_USER_AUTH, "E", (DCM, "110123", "Logout")),
    EventKind.SESSION_EXPIRED: (_USER_AUTH, "E", (DCM, "110123", "Logout")),
    EventKind.CSRF_REJECTED: (_SECURITY_ALERT, "E", None),
    EventKind.ACCESS_DENIED: (_SECURITY_ALERT, "E", None),
    EventKind.PHI_READ: (_PATIENT_RECORD, "R", (RESTFUL, "read", "read")),
    EventKind.PHI_SEARCH: ((DCM, "110112", "Query"), "E", (RESTFUL, "search-type", "search type")),
    EventKind.CREATE: ((EVENT_TYPE, "rest", "RESTful Operation"), "C", (RESTFUL, "create", "create")),
    EventKind.UPDATE: ((EVENT_TYPE, "rest", "RESTful Operation"), "U", (RESTFUL, "update", "update")),
    EventKind.DELETE: ((EVENT_TYPE, "rest", "RESTful Operation"), "D", (RESTFUL, "delete", "delete")),
    EventKind.IMPORT: ((DCM, "110107", "Import"), "C", None),
    EventKind.EXPORT: ((DCM, "110106", "Export"), "R", None),
    EventKind.SIGN: (_PATIENT_RECORD, "U", None),
    EventKind.PERMISSION_CHANGE: ((DCM, "110136", "Security Roles Changed"), "U", None),
    EventKind.AUDIT_VERIFY: ((DCM, "110101", "Audit Log Used"), "E", None),
}
# FHIR R4 AuditEvent.outcome: 0 success, 4 minor failure (a failed attempt), 8 serious failure
# (a refusal: someone tried what they may not do).
_OUTCOME: dict[str, str] = {Outcome.SUCCESS: "0", Outcome.FAILURE: "4", Outcome.DENIED: "8"}


def _coding(triple: tuple[str, str, str]) -> dict[str, str]:
    system, code, display = triple
    return {"system": system, "code": code, "display": display}


def source_site() -> str:
    return str(getattr(settings, "AUDIT_SOURCE_SITE", "") or "medlmm-cds")


def fhir_audit_event(event: AuditEvent) -> dict[str, Any]:
    """One AuditEvent resource (FHIR R4 4.0.1): type, recorded, agent, source always present."""
    type_coding, action, subtype = _KIND_MAP.get(event.kind, (_SECURITY_ALERT, "E", None))
    label = str(EventKind(event.kind).label) if event.kind in EventKind.values else event.kind
    subtypes = [_coding(subtype)] if subtype else []
    subtypes.append({"system": KIND_SYSTEM, "code": event.kind, "display": label})
    who: dict[str, Any] = {"display": event.username or "system"}
    if event.user_id is not None:
        who["identifier"] = {"system": "urn:medlmm:user", "value": str(event.user_id)}
    agent: dict[str, Any] = {"who": who, "requestor": True}
    if event.username:
        agent["altId"] = event.username
    if event.role:
        agent["role"] = [{"text": event.role}]
    if event.source_ip:
        agent["network"] = {"address": event.source_ip, "type": NETWORK_TYPE_IP}
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.seq),
        "type": _coding(type_coding),
        "subtype": subtypes,
        "action": action,
        "recorded": _iso(event.occurred_at),
        "outcome": _OUTCOME.get(event.outcome, "4"),
        "agent": [agent],
        "source": {
            "site": source_site(),
            "observer": {"display": "Med-LMM CDS"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if event.outcome != Outcome.SUCCESS and event.details.get("reason"):
        resource["outcomeDesc"] = str(event.details["reason"])
    entities: list[dict[str, Any]] = []
    if event.patient_id is not None:
        entities.append({
            "what": {"reference": f"Patient/{event.patient_id}"},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        })
    if event.object_type or event.object_id:
        detail = [{"type": "chain_hash", "valueString": event.hash}]
        if event.request_id:
            detail.append({"type": "request_id", "valueString": event.request_id})
        if event.details:
            detail.append({"type": "details", "valueString": json.dumps(event.details, ensure_ascii=False)})
        entities.append({
            "what": {"identifier": {"system": f"urn:medlmm:{event.object_type or 'object'}",
                                    "value": event.object_id or ""}},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "name": event.object_type,
            "detail": detail,
        })
    if entities:
        resource["entity"] = entities
    if event.facility_id is not None:
        resource["agent"][0]["location"] = {"identifier": {"system": "urn:medlmm:facility",
                                                           "value": str(event.facility_id)}}
    return resource


def fhir_bundle_stream(events: Iterable[AuditEvent], *, now: datetime | None = None) -> Iterator[str]:
    """A Bundle (type collection) written piece by piece, so it streams like the CSV."""
    stamp = _iso(now or datetime.now(UTC))
    yield '{"resourceType":"Bundle","type":"collection","timestamp":"' + stamp + '","entry":['
    first = True
    for event in events:
        entry = json.dumps({"resource": fhir_audit_event(event)}, ensure_ascii=False, separators=(",", ":"))
        yield entry if first else "," + entry
        first = False
    yield "]}"
