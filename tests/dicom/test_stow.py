"""STOW-RS: multipart/related in, Store Instances Response out, with the standard failure reasons;
who may store where; and dicomweb-client (a client nobody here wrote) storing through it."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pydicom
import pytest
import requests
from django.test import Client

from audit.models import AuditEvent
from clinical.dicom.models import Instance, Study
from clinical.dicom.storage import ContentStore
from tests.conftest import Personas
from tests.dicom.conftest import ct_series, modified, multipart, nothing_stored, sample, stow

pytestmark = pytest.mark.django_db


def _failed(body: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(item["00081155"].get("Value", [""])[0], item["00081197"]["Value"][0], item["00000902"]["Value"][0])
            for item in body.get("00081198", {}).get("Value", [])]


def test_staff_store_a_series_and_get_references_back(client_for: Callable[[str], Client]) -> None:
    parts = ct_series(3)
    response = stow(client_for("staff_a"), parts)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    body = response.json()
    refs = body["00081199"]["Value"]
    assert len(refs) == 3 and "00081198" not in body
    assert refs[0]["00081190"]["Value"][0].startswith("http://testserver/dicomweb/studies/")
    assert Instance.objects.count() == 3


def test_each_bad_part_is_listed_in_failed_sop_sequence_with_its_reason(
    client_for: Callable[[str], Client], store: ContentStore
) -> None:
    ct = sample("CT_small.dcm")
    good = ct_series(1)[0]
    bad = [b"not a dicom file" * 20, sample("MR_truncated.dcm"), modified(ct, SeriesInstanceUID=None),
           modified(ct, Columns=64)]
    response = stow(client_for("staff_a"), [good, *bad])
    assert response.status_code == 202  # some stored, some not (PS3.18 10.5.3)
    assert _failed(response.json()) == [
        ("", 0xC000, "PS3.10 ファイルの前置部（128 バイト + 'DICM'）がありません"),
        ("1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", 0xC001,
         "(7FE0,0010) は 8192 バイトと宣言されていますが 8130 バイトしかありません"),
        ("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", 0xA900, "必須の UID がありません: SeriesInstanceUID"),
        ("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", 0xA901,
         "画素データ長 32768 バイトが属性から求まる 16384 バイト（128×64×1×16bit×1フレーム）と一致しません"[:64]),
    ]
    assert Instance.objects.count() == 1 and len(store.keys()) == 1


def test_a_request_of_only_bad_objects_is_409_and_stores_nothing(
    client_for: Callable[[str], Client], store: ContentStore
) -> None:
    response = stow(client_for("staff_a"), [sample("badVR.dcm")])
    assert response.status_code == 409
    assert _failed(response.json()) == [
        ("1.9.999.999.99.9.9999.9999.20030818153516", 0xC002,
         "(0028,0008) NumberOfFrames の値 '1A' は VR IS として不正です")]
    assert nothing_stored(store)


def test_storing_into_a_named_study_refuses_objects_of_other_studies(client_for: Callable[[str], Client]) -> None:
    parts = ct_series(2)
    study_uid = pydicom.dcmread(io.BytesIO(parts[0])).StudyInstanceUID
    response = stow(client_for("staff_a"), [*parts, sample("CT_small.dcm")], url=f"/dicomweb/studies/{study_uid}")
    assert response.status_code == 202
    [(uid, reason, _comment)] = _failed(response.json())
    assert (uid, reason) == ("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", 0xA900)


def test_a_truncated_multipart_body_is_a_clear_400(client_for: Callable[[str], Client], store: ContentStore) -> None:
    body, content_type = multipart(ct_series(1))
    response = client_for("staff_a").post("/dicomweb/studies", body[:-200], content_type=content_type)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_multipart"
    assert nothing_stored(store)


def test_wrong_media_type_is_415(client_for: Callable[[str], Client]) -> None:
    response = client_for("staff_a").post("/dicomweb/studies", sample("CT_small.dcm"), content_type="application/dicom")
    assert response.status_code == 415


@pytest.mark.parametrize("persona", ["physician_a", "auditor_a"])
def test_people_who_may_not_import_cannot_store(
    client_for: Callable[[str], Client], persona: str, store: ContentStore
) -> None:
    response = stow(client_for(persona), ct_series(1))
    assert response.status_code == 403
    assert nothing_stored(store)


def test_storing_into_another_facility_is_refused_and_audited(
    client_for: Callable[[str], Client], store: ContentStore
) -> None:
    response = stow(client_for("staff_a"), ct_series(1), url="/dicomweb/studies?facility=B01")
    assert response.status_code == 403
    assert nothing_stored(store)
    event = AuditEvent.objects.get(kind="access_denied")
    assert (event.object_id, event.details) == ("B01", {"operation": "dicom_stow", "exists": True})


def test_a_session_post_without_csrf_token_is_refused(personas: Personas, store: ContentStore) -> None:
    from tests.conftest import login

    client = login(Client(enforce_csrf_checks=True), personas.staff_a)
    response = stow(client, ct_series(1))
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"
    assert nothing_stored(store)


def test_anonymous_and_bad_tokens_get_401(client: Client) -> None:
    assert stow(client, ct_series(1)).status_code == 401
    response = stow(client, ct_series(1), HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_a_bearer_token_stores_without_csrf_and_is_audited_as_its_user(
    personas: Personas, staff_token: str
) -> None:
    response = stow(Client(enforce_csrf_checks=True), ct_series(2), HTTP_AUTHORIZATION=f"Bearer {staff_token}")
    assert response.status_code == 200, response.content
    event = AuditEvent.objects.get(kind="import")
    assert (event.user_id, event.channel, event.role) == (personas.staff_a.pk, "api", "staff")


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_stores_and_gets_failures_back(
    web_client: Callable[..., Any], staff_token: str, personas: Personas, store: ContentStore
) -> None:
    client = web_client(token=staff_token)
    datasets = [pydicom.dcmread(io.BytesIO(p)) for p in ct_series(4)]
    response = client.store_instances(datasets)
    assert len(response.ReferencedSOPSequence) == 4
    assert Study.objects.get().patient is None  # PatientID 1CT1 is nobody at A yet: unmatched
    # The same objects again: idempotent, still 4 instances.
    client.store_instances(datasets)
    assert Instance.objects.count() == 4 and len(store.keys()) == 4
    bad = pydicom.dcmread(io.BytesIO(sample("CT_small.dcm")))
    bad.Rows = 300
    with pytest.raises(requests.HTTPError) as failure:
        client.store_instances([bad])
    answer = failure.value.response
    assert answer is not None and answer.status_code == 409
    [item] = answer.json()["00081198"]["Value"]
    assert item["00081197"]["Value"] == [0xA901]
    assert Instance.objects.count() == 4
