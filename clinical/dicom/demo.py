"""Demo studies for `make run`: the real sample files pydicom ships (a CT stack made from
CT_small.dcm, MR_small.dcm, the 12-lead waveform_ecg.dcm, and a Japanese-named chrH31.dcm),
given the PatientID of a demo examinee so they match, plus one that matches nobody and waits in
the unmatched queue. Ingested through the same service as STOW-RS / C-STORE."""

from __future__ import annotations

import io
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from clinical.dicom.models import Instance
from clinical.dicom.services import instances_ingest
from clinical.models import Facility, Patient


def _bytes(ds: Any) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _as(name: str, patient_id: str, study_uid: str, *, copies: int = 1, step_mm: float = 0.0) -> list[bytes]:
    path = get_testdata_file(name)
    if path is None:
        return []
    base = pydicom.dcmread(path)
    series_uid = generate_uid()
    out = []
    for i in range(copies):
        ds = base.copy()
        ds.PatientID = patient_id
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = generate_uid()
        if getattr(ds, "file_meta", None) is not None:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        if step_mm and "ImagePositionPatient" in ds:
            x, y, z = ds.ImagePositionPatient
            ds.ImagePositionPatient = [x, y, float(z) + step_mm * i]
        out.append(_bytes(ds))
    return out


def seed_studies() -> int:
    """Idempotent: does nothing once the demo facility has instances."""
    facility = Facility.objects.filter(code="TKY01").first()
    if facility is None or Instance.objects.filter(series__study__facility=facility).exists():
        return 0
    patients = list(Patient.objects.filter(facility=facility).order_by("mrn")[:3])
    if len(patients) < 3:
        return 0
    items = [
        *_as("CT_small.dcm", patients[0].mrn, generate_uid(), copies=12, step_mm=5.0),
        *_as("waveform_ecg.dcm", patients[0].mrn, generate_uid()),
        *_as("MR_small.dcm", patients[1].mrn, generate_uid()),
        *_as("chrH31.dcm", patients[2].mrn, generate_uid()),
        *_as("CT_small.dcm", "UNKNOWN-0001", generate_uid()),  # matches nobody: the unmatched queue
    ]
    results = instances_ingest(items=items, facility=facility, source="upload", actor=None)
    refused = [f"{r.label or r.sop_instance_uid}: {r.refusal}" for r in results if r.refusal is not None]
    if refused:
        raise RuntimeError(f"demo DICOM refused: {refused}")
    return len(results)
