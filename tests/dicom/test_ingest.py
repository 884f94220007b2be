"""The ingest service: what is stored, how the examinee is matched, idempotence, and for every
kind of bad object the exact refusal with proof that nothing was kept."""

from __future__ import annotations

from typing import Any

import pydicom
import pytest
from django.db import DatabaseError
from pytest_django import DjangoAssertNumQueries

from audit.models import AuditEvent
from clinical.dicom.models import Instance, Series, Source, Study
from clinical.dicom.refusals import Reason
from clinical.dicom.services import instance_ingest, instances_ingest, study_reconcile, unmatched_rematch
from clinical.dicom.storage import ContentStore
from clinical.models import Patient
from tests.conftest import Personas
from tests.dicom.conftest import ct_series, modified, nothing_stored, sample
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_a_ct_slice_is_stored_with_its_hierarchy_and_matched_to_the_examinee(
    personas: Personas, patient_a: Patient, store: ContentStore
) -> None:
    data = sample("CT_small.dcm")
    result = instance_ingest(data=data, facility=personas.facility_a, source=Source.STOW, actor=personas.staff_a)
    assert result.ok and not result.duplicate and result.status == 0
    instance = Instance.objects.select_related("study", "series").get()
    assert instance.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert (instance.rows, instance.columns, instance.number_of_frames) == (128, 128, 1)
    assert instance.series.modality == "CT" and instance.study.patient == patient_a
    assert instance.study.dicom_patient_id == "1CT1" and str(instance.study.study_date) == "2004-01-19"
    # Content-addressed: the file is named by its SHA-256 and holds exactly the bytes received.
    assert store.keys() == [instance.sha256] and store.open(instance.sha256) == data
    event = AuditEvent.objects.get(kind="import", outcome="success")
    assert (event.object_id, event.patient_id, event.role, event.details["stored"]) == (
        instance.study.study_instance_uid, patient_a.pk, "staff", 1)


def test_the_same_sop_instance_uid_twice_is_stored_once(personas: Personas, store: ContentStore) -> None:
    data = sample("CT_small.dcm")
    first = instance_ingest(data=data, facility=personas.facility_a, source=Source.CSTORE, actor=None)
    again = instance_ingest(data=data, facility=personas.facility_a, source=Source.STOW, actor=personas.staff_a)
    assert first.ok and again.ok and again.duplicate and again.instance_id == first.instance_id
    assert Instance.objects.count() == 1 and len(store.keys()) == 1
    # The same UID twice in one batch is one object too.
    batch = instances_ingest(items=[data, data], facility=personas.facility_b, source=Source.STOW, actor=None)
    assert [r.duplicate for r in batch] == [False, True]
    assert Instance.objects.filter(facility=personas.facility_b).count() == 1 and len(store.keys()) == 1


@pytest.mark.parametrize(
    ("name", "romaji", "kanji", "kana"),
    [("chrH31.dcm", "Yamada^Tarou", "山田^太郎", "やまだ^たろう"),
     ("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ", "山田^太郎", "やまだ^たろう")],
)
def test_japanese_person_names_are_decoded_from_iso_2022(
    personas: Personas, name: str, romaji: str, kanji: str, kana: str
) -> None:
    assert instance_ingest(data=sample(name), facility=personas.facility_a, source=Source.UPLOAD, actor=None).ok
    assert Study.objects.get().patient_name == f"{romaji}={kanji}={kana}"


def test_jpeg_rle_jpeg2000_and_waveform_objects_are_accepted(personas: Personas) -> None:
    names = ["JPEG-lossy.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm", "waveform_ecg.dcm",
             "chrJapMulti.dcm"]
    results = instances_ingest(items=[sample(n) for n in names], facility=personas.facility_a,
                               source=Source.UPLOAD, actor=None)
    assert [r.status for r in results] == [0] * len(names)
    ecg = Instance.objects.get(sop_class_uid="1.2.840.10008.5.1.4.1.1.9.1.1")
    assert ecg.has_waveform and ecg.number_of_frames == 0
    assert Instance.objects.get(series__modality="OT", number_of_frames=2).transfer_syntax_uid == "1.2.840.10008.1.2.5"


NO_PREAMBLE = "PS3.10 ファイルの前置部（128 バイト + 'DICM'）がありません"
MISMATCH = "画素データ長 32768 バイトが属性から求まる {} バイト（{}×128×1×16bit×{}フレーム）と一致しません"


def _bad_objects() -> dict[str, tuple[bytes, Reason, str]]:
    ct = sample("CT_small.dcm")
    return {
        "not DICOM": (b"%PDF-1.7 " * 100, Reason.NOT_DICOM, NO_PREAMBLE),
        "no PS3.10 header": (sample("no_meta.dcm"), Reason.NOT_DICOM, NO_PREAMBLE),
        "truncated pixel data": (sample("MR_truncated.dcm"), Reason.TRUNCATED,
                                 "(7FE0,0010) は 8192 バイトと宣言されていますが 8130 バイトしかありません"),
        "truncated header": (ct[:1000], Reason.TRUNCATED,
                             "(0010,1002) は 72 バイトと宣言されていますが 6 バイトしかありません"),
        "missing study UID": (modified(ct, StudyInstanceUID=None), Reason.MISSING_ATTRIBUTE,
                              "必須の UID がありません: StudyInstanceUID"),
        "missing SOP instance UID": (modified(ct, SOPInstanceUID=None), Reason.MISSING_ATTRIBUTE,
                                     "必須の UID がありません: SOPInstanceUID"),
        "pixels vs rows": (modified(ct, Rows=256), Reason.PIXEL_MISMATCH, MISMATCH.format(65536, 256, 1)),
        "pixels vs frames": (modified(ct, NumberOfFrames=3), Reason.PIXEL_MISMATCH, MISMATCH.format(98304, 128, 3)),
        "pixels without attributes": (modified(ct, BitsAllocated=None), Reason.PIXEL_MISMATCH,
                                      "画素データがありますが属性がありません: BitsAllocated"),
        "invalid IS value": (sample("badVR.dcm"), Reason.INVALID_VALUE,
                             "(0028,0008) NumberOfFrames の値 '1A' は VR IS として不正です"),
    }


@pytest.mark.parametrize("case", list(_bad_objects()))
def test_a_bad_object_is_refused_with_its_reason_and_nothing_is_kept(
    personas: Personas, store: ContentStore, case: str
) -> None:
    data, reason, detail = _bad_objects()[case]
    result = instance_ingest(data=data, facility=personas.facility_a, source=Source.STOW, actor=personas.staff_a)
    assert result.refusal is not None
    assert (result.status, result.refusal.detail) == (int(reason), detail)
    assert nothing_stored(store)
    event = AuditEvent.objects.get(kind="import")
    assert event.outcome == "failure" and event.details["refused"][0]["reason"] == f"0x{int(reason):04X}"


def test_one_bad_object_does_not_sink_the_good_ones_in_its_batch(personas: Personas, store: ContentStore) -> None:
    good = ct_series(2)
    results = instances_ingest(items=[good[0], sample("MR_truncated.dcm"), good[1]], facility=personas.facility_a,
                               source=Source.STOW, actor=None)
    assert [r.status for r in results] == [0, 0xC001, 0]
    assert Instance.objects.count() == 2 and len(store.keys()) == 2


def test_a_database_failure_leaves_no_file_behind(
    personas: Personas, store: ContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr("clinical.dicom.services._audit_import", broken)
    results = instances_ingest(items=ct_series(3), facility=personas.facility_a, source=Source.STOW, actor=None)
    assert {r.status for r in results} == {0x0110}
    assert results[0].refusal is not None and "disk I/O error" in results[0].refusal.detail
    assert nothing_stored(store)


def test_a_file_already_used_by_a_committed_row_survives_a_failed_batch(
    personas: Personas, store: ContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sample("CT_small.dcm")
    assert instance_ingest(data=data, facility=personas.facility_a, source=Source.STOW, actor=None).ok
    monkeypatch.setattr("clinical.dicom.services._write_rows", lambda batch: (_ for _ in ()).throw(DatabaseError()))
    assert not instance_ingest(data=data, facility=personas.facility_b, source=Source.STOW, actor=None).ok
    assert store.keys() == [Instance.objects.get().sha256]


def test_a_study_on_record_for_another_patient_id_refuses_the_object(personas: Personas, store: ContentStore) -> None:
    first = ct_series(1, patient_id="P-1")[0]
    study_uid = pydicom.dcmread(__import__("io").BytesIO(first)).StudyInstanceUID
    assert instance_ingest(data=first, facility=personas.facility_a, source=Source.STOW, actor=None).ok
    other = ct_series(1, patient_id="P-2", study_uid=study_uid)[0]
    result = instance_ingest(data=other, facility=personas.facility_a, source=Source.STOW, actor=None)
    assert result.status == 0x0110 and result.refusal is not None
    assert result.refusal.detail == f"Study Instance UID {study_uid} は別の Patient ID で登録済みです"
    assert Instance.objects.count() == 1 and store.keys() == [Instance.objects.get().sha256]


def test_the_same_uid_with_other_bytes_keeps_the_first_and_leaves_no_stray_file(
    personas: Personas, store: ContentStore
) -> None:
    first = sample("CT_small.dcm")
    again = modified(first, StudyDescription="changed")
    assert instance_ingest(data=first, facility=personas.facility_a, source=Source.STOW, actor=None).ok
    result = instance_ingest(data=again, facility=personas.facility_a, source=Source.STOW, actor=None)
    assert result.ok and result.duplicate
    assert store.keys() == [Instance.objects.get().sha256] and store.open(store.keys()[0]) == first


def test_an_unmatched_study_waits_and_is_reconciled_by_staff(personas: Personas) -> None:
    instances_ingest(items=ct_series(2, patient_id="UNKNOWN-9"), facility=personas.facility_a,
                     source=Source.CSTORE, actor=None)
    study = Study.objects.get()
    assert study.patient is None
    patient = PatientFactory.create(facility=personas.facility_a, mrn="A-777")
    study_reconcile(study=study, patient=patient, actor=personas.staff_a)
    study.refresh_from_db()
    assert study.patient == patient and study.dicom_patient_id == "UNKNOWN-9" and study.reconciled_at
    event = AuditEvent.objects.get(kind="update", object_type="dicom.study")
    assert event.details["action"] == "reconcile" and event.patient_id == patient.pk


def test_rematch_links_studies_whose_patient_id_is_now_registered(personas: Personas) -> None:
    instances_ingest(items=ct_series(1, patient_id="LATE-1"), facility=personas.facility_a, source="cstore", actor=None)
    instances_ingest(items=ct_series(1, patient_id="LATE-1"), facility=personas.facility_b, source="cstore", actor=None)
    patient = PatientFactory.create(facility=personas.facility_a, mrn="LATE-1")
    assert unmatched_rematch(facility=personas.facility_a, actor=personas.staff_a) == 1
    # Facility B's study with the same PatientID is B's examinee, never A's.
    assert list(Study.objects.filter(patient__isnull=False).values_list("facility_id", "patient_id")) == [
        (personas.facility_a.pk, patient.pk)]


def test_patient_matching_stays_within_the_sending_facility(personas: Personas) -> None:
    PatientFactory.create(facility=personas.facility_b, mrn="1CT1")
    instance_ingest(data=sample("CT_small.dcm"), facility=personas.facility_a, source=Source.STOW, actor=None)
    assert Study.objects.get().patient is None


@pytest.mark.parametrize("count", [5, 40])
def test_a_batch_costs_the_same_queries_at_any_size(
    personas: Personas, count: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    items = ct_series(count)
    # existing instances, patients, studies insert + read, series insert + read, instances insert +
    # read, study counts (lock, count, update), role, audit (lock; insert and head update in one
    # statement), and the outer savepoint pair: none grows with the batch.
    with django_assert_num_queries(16):
        results = instances_ingest(items=items, facility=personas.facility_a, source=Source.STOW,
                                   actor=personas.staff_a)
    assert all(r.ok for r in results) and Series.objects.count() == 1
