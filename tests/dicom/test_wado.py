"""WADO-RS: instances as stored, metadata as DICOM JSON, frames for the browser's decoder, rendered
PNG/JPEG with window/level and presets; 404 (audited) for another facility's data; dicomweb-client
reading all of it back."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pydicom
import pytest
from django.test import Client
from PIL import Image

from audit.models import AuditEvent
from clinical.dicom.models import Instance, Source
from clinical.dicom.services import instances_ingest
from clinical.dicom.web.multipart import content_type_params, iter_parts
from tests.conftest import Personas
from tests.dicom.conftest import ct_series, sample

pytestmark = pytest.mark.django_db

CT_UID = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"


@pytest.fixture
def stored(personas: Personas) -> dict[str, Any]:
    items = [sample(n) for n in ("CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "MR_small_bigendian.dcm")]
    items[3] = _with_uid(items[3])  # MR_small_* share one SOP Instance UID
    results = instances_ingest(items=items, facility=personas.facility_a, source=Source.STOW, actor=None)
    assert all(r.ok for r in results)
    urls = {}
    for key, r in zip(("ct", "rle", "rgb", "be"), results, strict=True):
        urls[key] = (f"/dicomweb/studies/{r.study_instance_uid}/series/{r.series_instance_uid}"
                     f"/instances/{r.sop_instance_uid}")
    return {"urls": urls, "results": results, "items": items}


def _with_uid(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _parts(response: Any) -> list[tuple[dict[str, str], bytes]]:
    _media, params = content_type_params(response["Content-Type"])
    return list(iter_parts(io.BytesIO(b"".join(response.streaming_content)), params["boundary"]))


def test_an_instance_comes_back_byte_for_byte(client_for: Callable[[str], Client], stored: dict[str, Any]) -> None:
    accept = 'multipart/related; type="application/dicom"'
    response = client_for("physician_a").get(stored["urls"]["ct"], HTTP_ACCEPT=accept)
    assert response.status_code == 200
    [(headers, body)] = _parts(response)
    assert headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    assert body == stored["items"][0]


def test_metadata_is_dicom_json_with_pixel_data_by_reference(
    client_for: Callable[[str], Client], stored: dict[str, Any]
) -> None:
    client = client_for("physician_a")
    [meta] = client.get(stored["urls"]["ct"] + "/metadata").json()
    assert meta["00080018"]["Value"] == [CT_UID] and meta["00280010"]["Value"] == [128]
    assert meta["7FE00010"] == {"vr": "OW", "BulkDataURI": f"http://testserver{stored['urls']['ct']}/bulkdata/7FE00010"}
    assert meta["00080005"]["Value"] == ["ISO_IR 192"]
    # Built once, then served from the database.
    assert Instance.objects.get(sop_instance_uid=CT_UID).metadata is not None
    bulk = _parts(client.get(meta["7FE00010"]["BulkDataURI"].removeprefix("http://testserver")))
    assert len(bulk[0][1]) == 128 * 128 * 2


def test_japanese_names_in_metadata(client_for: Callable[[str], Client], personas: Personas) -> None:
    [r] = instances_ingest(items=[sample("chrH31.dcm")], facility=personas.facility_a, source="stow", actor=None)
    [meta] = client_for("staff_a").get(f"/dicomweb/studies/{r.study_instance_uid}/metadata").json()
    assert meta["00100010"]["Value"] == [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
                                          "Phonetic": "やまだ^たろう"}]


def test_frames_native_compressed_and_big_endian(client_for: Callable[[str], Client], stored: dict[str, Any]) -> None:
    client = client_for("physician_a")
    [(headers, ct)] = _parts(client.get(stored["urls"]["ct"] + "/frames/1"))
    assert headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    ds = pydicom.dcmread(io.BytesIO(stored["items"][0]))
    assert ct == ds.PixelData
    rgb = _parts(client.get(stored["urls"]["rgb"] + "/frames/1,2"))
    assert [h["content-type"] for h, _b in rgb] == ["application/octet-stream; transfer-syntax=1.2.840.10008.1.2.5"] * 2
    [(_h, be)] = _parts(client.get(stored["urls"]["be"] + "/frames/1"))
    expected = pydicom.dcmread(io.BytesIO(stored["items"][3])).pixel_array.astype("<u2").tobytes()
    assert np.array_equal(np.frombuffer(be, "<u2"), np.frombuffer(expected, "<u2"))
    assert client.get(stored["urls"]["ct"] + "/frames/2").status_code == 404


def _image(response: Any) -> Image.Image:
    assert response.status_code == 200, response.content
    return Image.open(io.BytesIO(response.content))


def test_rendered_png_and_jpeg_with_window_level_and_presets(
    client_for: Callable[[str], Client], stored: dict[str, Any]
) -> None:
    client = client_for("physician_a")
    url = stored["urls"]["ct"] + "/rendered"
    jpeg = client.get(url)
    assert jpeg["Content-Type"] == "image/jpeg" and _image(jpeg).size == (128, 128)
    png = client.get(url, HTTP_ACCEPT="image/png")
    assert png["Content-Type"] == "image/png"
    lung = np.asarray(_image(client.get(url + "?preset=lung&accept=image/png")))
    bone = np.asarray(_image(client.get(url + "?preset=bone&accept=image/png")))
    narrow = np.asarray(_image(client.get(url + "?window=40,80&accept=image/png")))
    assert lung.std() > 5 and not np.array_equal(lung, bone)
    # A narrow soft-tissue window saturates more pixels than the wide lung window.
    assert (narrow == 255).mean() > (lung == 255).mean()
    assert _image(client.get(url + "?viewport=64,64")).size == (64, 64)
    assert client.get(url + "?preset=liver").status_code == 400
    assert client.get(url + "?window=40").status_code == 400
    assert _image(client.get(stored["urls"]["rle"] + "/frames/1/rendered")).size == (64, 64)


def test_another_facilitys_images_are_404_and_audited(
    client_for: Callable[[str], Client], stored: dict[str, Any], personas: Personas
) -> None:
    client = client_for("physician_b")
    study_url = stored["urls"]["ct"].split("/series/")[0]
    for url in (study_url, study_url + "/metadata", stored["urls"]["ct"], stored["urls"]["ct"] + "/metadata",
                stored["urls"]["ct"] + "/frames/1", stored["urls"]["ct"] + "/rendered",
                stored["urls"]["ct"] + "/bulkdata/7FE00010"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"CompressedSamples" not in b"".join(getattr(response, "streaming_content", [response.content]))
    denied = AuditEvent.objects.filter(kind="access_denied").order_by("seq")
    assert denied.count() == 7 and {e.user_id for e in denied} == {personas.physician_b.pk}
    assert denied.last().details["lookup"]["instance"] == CT_UID  # type: ignore[union-attr]
    assert not AuditEvent.objects.filter(kind="phi_read").exists()


def test_reads_are_audited_per_study_with_the_examinee(
    client_for: Callable[[str], Client], personas: Personas, patient_a: Any, stored: dict[str, Any]
) -> None:
    # CT_small's PatientID 1CT1 arrived before the examinee existed; reconcile it, then read.
    from clinical.dicom.models import Study
    from clinical.dicom.services import study_reconcile

    study = Study.objects.get(dicom_patient_id="1CT1")
    study_reconcile(study=study, patient=patient_a, actor=personas.staff_a)
    client_for("physician_a").get(stored["urls"]["ct"] + "/rendered")
    read = AuditEvent.objects.get(kind="phi_read")
    assert (read.patient_id, read.role, read.object_id, read.details["what"]) == (
        patient_a.pk, "physician", study.study_instance_uid, "rendered")


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_searches_and_retrieves(
    web_client: Callable[..., Any], personas: Personas, staff_token: str
) -> None:
    parts = ct_series(3)
    instances_ingest(items=parts, facility=personas.facility_a, source=Source.STOW, actor=None)
    study_uid = pydicom.dcmread(io.BytesIO(parts[0])).StudyInstanceUID
    client = web_client(user=personas.physician_a)  # a browser session with TOTP passed
    [found] = client.search_for_studies(search_filters={"PatientID": "1CT1"})
    assert found["0020000D"]["Value"] == [study_uid]
    series = client.search_for_series(study_uid)
    series_uid = series[0]["0020000E"]["Value"][0]
    instances = client.search_for_instances(study_uid, series_uid)
    assert len(instances) == 3
    sop_uid = instances[0]["00080018"]["Value"][0]
    ds = client.retrieve_instance(study_uid, series_uid, sop_uid)
    assert ds.SOPInstanceUID == sop_uid and ds.pixel_array.shape == (128, 128)
    assert len(client.retrieve_study(study_uid)) == 3
    meta = client.retrieve_series_metadata(study_uid, series_uid)
    assert {m["00080018"]["Value"][0] for m in meta} == {i["00080018"]["Value"][0] for i in instances}
    [frame] = client.retrieve_instance_frames(study_uid, series_uid, sop_uid, frame_numbers=[1])
    assert len(frame) == 128 * 128 * 2
    png = client.retrieve_instance_rendered(study_uid, series_uid, sop_uid, media_types=("image/png",))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # The token (staff of A) sees the same; physician B sees nothing and gets 404.
    assert len(web_client(token=staff_token).search_for_studies()) == 1
    other = web_client(user=personas.physician_b)
    assert other.search_for_studies(search_filters={"StudyInstanceUID": study_uid}) == []
    with pytest.raises(Exception, match="404"):
        other.retrieve_study(study_uid)
