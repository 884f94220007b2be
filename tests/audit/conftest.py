"""Audit review fixtures: events at facility A, at facility B and without a facility."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from audit.kinds import EventKind, Outcome
from audit.models import AuditEvent
from audit.services import audit_record
from clinical.models import Patient
from tests.conftest import Personas
from tests.factories import PatientFactory


@dataclass
class Trail:
    patient_a: Patient
    patient_b: Patient
    read_a: AuditEvent
    read_b: AuditEvent
    login_failed: AuditEvent


@pytest.fixture
def trail(personas: Personas) -> Trail:
    a, b = personas.facility_a, personas.facility_b
    patient_a = PatientFactory.create(facility=a, mrn="MRN-A1", family_name="佐藤", given_name="花子")
    patient_b = PatientFactory.create(facility=b, mrn="MRN-B1", family_name="鈴木", given_name="一郎")
    read_a = audit_record(kind=EventKind.PHI_READ, user=personas.physician_a, role="physician", facility_id=a.pk,
                          object_type="clinical.patient", object_id=patient_a.pk, patient_id=patient_a.pk)
    audit_record(kind=EventKind.UPDATE, user=personas.staff_a, role="staff", facility_id=a.pk,
                 object_type="clinical.patient", object_id=patient_a.pk, patient_id=patient_a.pk,
                 details={"fields": ["phone"]})
    read_b = audit_record(kind=EventKind.PHI_READ, user=personas.physician_b, role="physician", facility_id=b.pk,
                          object_type="clinical.patient", object_id=patient_b.pk, patient_id=patient_b.pk)
    login_failed = audit_record(kind=EventKind.LOGIN_FAILED, outcome=Outcome.FAILURE, username="mallory",
                                details={"reason": "invalid_credentials"})
    return Trail(patient_a, patient_b, read_a, read_b, login_failed)
