"""Objects for the DICOM benchmark, identical for both servers.

- `ct_instances(n, per_study)`: real CT slices (pydicom's CT_small.dcm, 128×128, 39 KB) with fresh
  study/series/instance UIDs, 20 per study, as in anchors.md's Orthanc measurement.
- `index_instances(n)`: one small object per study (no pixel data) to fill the index with n
  studies for the QIDO-RS figures: 2 studies per PatientID, dates over ten years, five modalities."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

MODALITIES = ("CT", "MR", "CR", "US", "ECG")


def encode(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ct_instances(n: int, per_study: int = 20, *, tag: str = "A") -> list[bytes]:
    base = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    out: list[bytes] = []
    for i in range(n):
        if i % per_study == 0:
            study_uid, series_uid = generate_uid(), generate_uid()
            patient = f"BENCH-{tag}-{i // per_study:05d}"
        ds = base.copy()
        ds.PatientID, ds.PatientName = patient, f"Bench^{tag}{i // per_study}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i % per_study + 1
        out.append(encode(ds))
    return out


def write_files(items: list[bytes], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(items):
        path = directory / f"{i:06d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def index_instances(n: int, *, seed: int = 7) -> Iterator[tuple[str, bytes]]:
    """(PatientID, object) for n studies; deterministic for a seed, so both servers get the same."""
    rng = random.Random(seed)
    for i in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        patient = f"P{i // 2:07d}"
        ds.PatientID, ds.PatientName = patient, f"Patient^{i // 2}"
        ds.PatientBirthDate = f"{rng.randint(1940, 2000)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        ds.PatientSex = rng.choice("MF")
        ds.StudyDate = f"{rng.randint(2015, 2024)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        ds.StudyTime = "093000"
        ds.AccessionNumber = f"ACC{i:08d}"
        ds.StudyID = str(i % 10000)
        ds.StudyDescription = "Checkup"
        ds.Modality = rng.choice(MODALITIES)
        ds.SeriesNumber, ds.InstanceNumber = 1, 1
        ds.ConversionType = "WSD"
        yield patient, encode(ds)
