"""DICOM fixtures: pydicom's real sample files, CT series made from CT_small.dcm with fresh UIDs,
a content store per test, examinees whose 受診者番号 match the samples' PatientIDs, and DICOMweb
clients (the Django test client, and dicomweb-client against the live server)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.test import Client
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.uid import generate_uid

from clinical.dicom.models import Instance, Series, Study
from clinical.dicom.services import access_token_issue
from clinical.dicom.storage import ContentStore
from clinical.models import Patient
from tests.conftest import Personas, login
from tests.factories import PatientFactory


def sample(name: str) -> bytes:
    """A file pydicom ships (test_files or charset_files), as bytes."""
    path = get_testdata_file(name)
    if path is None:
        path = get_charset_files(name)[0]
    return Path(str(path)).read_bytes()


def modified(data: bytes, **changes: Any) -> bytes:
    """`data` re-encoded with attributes set (None deletes one)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for name, value in changes.items():
        if value is None:
            if name in ds:
                delattr(ds, name)
        else:
            setattr(ds, name, value)
    if changes.get("SOPInstanceUID"):
        ds.file_meta.MediaStorageSOPInstanceUID = changes["SOPInstanceUID"]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ct_series(count: int, *, patient_id: str = "1CT1", study_uid: str | None = None, modality: str = "CT",
              study_date: str = "20240401", patient_name: str = "Yamada^Tarou=山田^太郎=やまだ^たろう") -> list[bytes]:
    """`count` CT slices of one new study/series, made from CT_small.dcm (real pixels)."""
    base = pydicom.dcmread(io.BytesIO(sample("CT_small.dcm")))
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    out = []
    for i in range(count):
        ds = base.copy()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientID, ds.PatientName, ds.Modality = patient_id, patient_name, modality
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber, ds.StudyDate = i + 1, study_date
        ds.ImagePositionPatient = [-158.1, -179.0, -75.7 + 5 * i]
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> ContentStore:
    settings.DICOM_STORE_ROOT = str(tmp_path / "store")
    settings.DICOM_STORE_FSYNC = False
    settings.DICOMWEB_TOKEN_CACHE_S = 0  # tests that want the token cache turn it on
    return ContentStore()


@pytest.fixture
def patient_a(personas: Personas) -> Patient:
    # CT_small.dcm's PatientID is 1CT1: this examinee of facility A is who it matches.
    return PatientFactory.create(facility=personas.facility_a, mrn="1CT1", family_name="山田", given_name="太郎")


def nothing_stored(store: ContentStore) -> bool:
    return not (Study.objects.exists() or Series.objects.exists() or Instance.objects.exists() or store.keys())


def multipart(parts: list[bytes], boundary: str = "medlmm-test-boundary") -> tuple[bytes, str]:
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts
    ) + b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(client: Client, parts: list[bytes], url: str = "/dicomweb/studies", **extra: Any) -> Any:
    body, content_type = multipart(parts)
    return client.post(url, body, content_type=content_type, **extra)


@pytest.fixture
def staff_token(personas: Personas) -> str:
    _token, secret = access_token_issue(user=personas.staff_a, name="modality")
    return secret


@pytest.fixture
def web_client(live_server: Any) -> Iterator[Callable[..., DICOMwebClient]]:
    """dicomweb-client against the live server, as a token holder or a logged-in (TOTP) user."""
    sessions: list[requests.Session] = []

    def make(*, token: str | None = None, user: Any = None) -> DICOMwebClient:
        session = requests.Session()
        sessions.append(session)
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        if user is not None:
            django_client = login(Client(), user)
            session.cookies.set("sessionid", django_client.cookies["sessionid"].value)
        return DICOMwebClient(url=f"{live_server.url}/dicomweb", session=session)

    yield make
    for session in sessions:
        session.close()
