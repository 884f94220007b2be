"""The staff pages: browser upload (same ingest, refusals explained), the unmatched queue and its
reconciliation, the study list and viewer page, and the ECG data behind the viewer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEvent
from clinical.dicom.models import Instance, Source, Study
from clinical.dicom.services import instances_ingest
from clinical.dicom.storage import ContentStore
from tests.conftest import Personas
from tests.dicom.conftest import ct_series, nothing_stored, sample
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_staff_upload_files_and_see_each_outcome(
    client_for: Callable[[str], Client], personas: Personas, store: ContentStore
) -> None:
    files = [SimpleUploadedFile("ct.dcm", sample("CT_small.dcm")),
             SimpleUploadedFile("cut.dcm", sample("MR_truncated.dcm")),
             SimpleUploadedFile("again.dcm", sample("CT_small.dcm"))]
    response = client_for("staff_a").post("/dicom/upload/", {"facility": personas.facility_a.pk, "files": files})
    assert response.status_code == 200
    html = response.content.decode()
    assert "データが途中で切れています（0xC001）" in html and "登録済み" in html
    assert Instance.objects.get().source == Source.UPLOAD


def test_upload_is_for_people_who_may_import(client_for: Callable[[str], Client], store: ContentStore) -> None:
    assert client_for("physician_a").get("/dicom/upload/").status_code == 403


def test_upload_into_a_facility_not_offered_stores_nothing(
    client_for: Callable[[str], Client], personas: Personas, store: ContentStore
) -> None:
    files = [SimpleUploadedFile("ct.dcm", sample("CT_small.dcm"))]
    response = client_for("staff_a").post("/dicom/upload/", {"facility": personas.facility_b.pk, "files": files})
    assert "取込先の施設を選んでください" in response.content.decode()
    assert nothing_stored(store)


def test_the_unmatched_queue_and_reconciliation(client_for: Callable[[str], Client], personas: Personas) -> None:
    instances_ingest(items=ct_series(2, patient_id="X-1"), facility=personas.facility_a, source="cstore", actor=None)
    instances_ingest(items=ct_series(1, patient_id="Y-1"), facility=personas.facility_b, source="cstore", actor=None)
    client = client_for("staff_a")
    html = client.get("/dicom/unmatched/").content.decode()
    assert "X-1" in html and "Y-1" not in html
    study = Study.objects.get(dicom_patient_id="X-1")
    assert "この施設にいません" in client.post(f"/dicom/unmatched/{study.pk}/reconcile/", {"mrn": "NOPE"},
                                               follow=True).content.decode()
    patient = PatientFactory.create(facility=personas.facility_a, mrn="A-100")
    client.post(f"/dicom/unmatched/{study.pk}/reconcile/", {"mrn": "A-100"})
    study.refresh_from_db()
    assert study.patient == patient
    # B's unmatched study cannot be reconciled from A: 404, audited.
    other = Study.objects.get(dicom_patient_id="Y-1")
    assert client.post(f"/dicom/unmatched/{other.pk}/reconcile/", {"mrn": "A-100"}).status_code == 404
    assert AuditEvent.objects.filter(kind="access_denied", object_id=str(other.pk)).exists()


def test_rematch_button(client_for: Callable[[str], Client], personas: Personas) -> None:
    instances_ingest(items=ct_series(1, patient_id="LATE"), facility=personas.facility_a, source="cstore", actor=None)
    PatientFactory.create(facility=personas.facility_a, mrn="LATE")
    response = client_for("staff_a").post("/dicom/unmatched/", {"action": "rematch"}, follow=True)
    assert "1 件の検査を受診者に紐付けました" in response.content.decode()
    assert Study.objects.get().patient is not None


def test_physicians_cannot_reconcile(client_for: Callable[[str], Client], personas: Personas) -> None:
    instances_ingest(items=ct_series(1, patient_id="Z"), facility=personas.facility_a, source="cstore", actor=None)
    assert "Z" not in client_for("physician_a").get("/dicom/unmatched/").content.decode().split("<tbody>")[1]


def test_the_study_list_and_viewer_are_scoped_and_audited(
    client_for: Callable[[str], Client], personas: Personas
) -> None:
    instances_ingest(items=ct_series(2, patient_id="V-1"), facility=personas.facility_a, source="stow", actor=None)
    study = Study.objects.get()
    page = client_for("physician_a").get("/dicom/studies/").content.decode()
    assert "V-1" in page and "山田^太郎" in page
    viewer = client_for("physician_a").get(f"/dicom/studies/{study.pk}/")
    assert viewer.status_code == 200 and 'id="viewer-config"' in viewer.content.decode()
    assert viewer.context["config"]["presets"]["lung"] == {"center": -600, "width": 1500}
    assert client_for("physician_b").get(f"/dicom/studies/{study.pk}/").status_code == 404
    assert "V-1" not in client_for("physician_b").get("/dicom/studies/").content.decode()
    assert AuditEvent.objects.filter(kind="phi_read", object_id=study.study_instance_uid).count() == 1


def test_ecg_data_has_twelve_leads_and_measurements(client_for: Callable[[str], Client], personas: Personas) -> None:
    [result] = instances_ingest(items=[sample("waveform_ecg.dcm")], facility=personas.facility_a, source="stow",
                                actor=None)
    assert result.instance_id is not None
    data = client_for("physician_a").get(f"/dicom/instances/{result.instance_id}/ecg.json").json()
    assert list(data["leads"]) == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert data["sampling_hz"] == 500 and len(data["leads"]["II"]) == 5000
    assert data["measurements"]["hr_bpm"] == 61 and data["measurements"]["qtc_formula"] == "Bazett"
    assert data["summary_ja"].startswith("心拍数 61 bpm")
    png = client_for("physician_a").get(f"/dicom/instances/{result.instance_id}/ecg.png")
    assert png["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client_for("physician_b").get(f"/dicom/instances/{result.instance_id}/ecg.json").status_code == 404
