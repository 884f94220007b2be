"""WADO-RS (PS3.18 10.4): instances as stored, DICOM JSON metadata, frames (the pixel data the
Cornerstone image loader asks for), bulk data, and rendered PNG/JPEG with window/level. Every
response is scoped (404 outside the user's facilities, audited by the selector) and audited as a
PHI read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from audit.kinds import EventKind
from audit.services import audit_read_record
from clinical.dicom import rendering, selectors
from clinical.dicom.metadata import absolute_bulk_uris
from clinical.dicom.models import Instance
from clinical.dicom.storage import ContentStore
from clinical.dicom.web.auth import dicomweb, error
from clinical.dicom.web.multipart import new_boundary, write_parts
from clinical.dicom.web.qido_views import DICOM_JSON, base_url
from clinical.scoping import role_at


def audit_read(request: HttpRequest, instances: list[Instance], what: str, **details: Any) -> None:
    """One PHI_READ per request and study (a study is one examinee), naming what was read."""
    by_study: dict[int, list[Instance]] = {}
    for instance in instances:
        by_study.setdefault(instance.study_id, []).append(instance)
    for group in by_study.values():
        study = group[0].study
        audit_read_record(
            kind=EventKind.PHI_READ, role=role_at(request.user, study.facility_id), facility_id=study.facility_id,
            object_type="dicom.study", object_id=study.study_instance_uid, patient_id=study.patient_id,
            details={"what": what, "instances": len(group), **details},
        )


def _instance_url(request: HttpRequest, instance: Instance) -> str:
    return (f"{base_url(request)}/studies/{instance.study.study_instance_uid}/series/"
            f"{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}")


def _wants_multipart_dicom(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "*/*").lower()
    return any(k in accept for k in ("multipart/related", "application/dicom", "*/*")) and "json" not in accept


@dicomweb()
def retrieve(
    request: HttpRequest, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> HttpResponseBase:
    instances = selectors.retrievable(user=request.user, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
    if not _wants_multipart_dicom(request):
        return error(406, 'multipart/related; type="application/dicom" で要求してください', "not_acceptable")
    audit_read(request, instances, "instances")
    store = ContentStore()
    boundary = new_boundary()

    def parts() -> Iterator[tuple[str, bytes]]:
        for instance in instances:
            # Sent as stored: the transfer syntax the modality chose (transfer-syntax=* semantics).
            yield f"application/dicom; transfer-syntax={instance.transfer_syntax_uid}", store.open(instance.sha256)

    response = StreamingHttpResponse(
        write_parts(parts(), boundary),
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )
    return response


@dicomweb()
def metadata(
    request: HttpRequest, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> HttpResponseBase:
    instances = selectors.retrievable(
        user=request.user, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid, with_metadata=True
    )
    audit_read(request, instances, "metadata")
    metas = selectors.instances_metadata(instances)
    body = [absolute_bulk_uris(m, _instance_url(request, i)) for m, i in zip(metas, instances, strict=True)]
    return HttpResponse(json.dumps(body, ensure_ascii=False), content_type=DICOM_JSON)


def _one(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    return selectors.retrievable(user=request.user, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)[0]


def _frame_numbers(text: str, available: int) -> list[int] | HttpResponse:
    try:
        numbers = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        return error(400, f"フレーム番号が不正です: {text!r}", "invalid_frame")
    bad = [n for n in numbers if not 1 <= n <= available]
    if not numbers or bad:
        return error(404, f"フレーム {bad or text} はありません（1〜{available}）", "no_such_frame")
    return numbers


@dicomweb()
def frames(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str) -> HttpResponseBase:
    instance = _one(request, study_uid, series_uid, sop_uid)
    numbers = _frame_numbers(frame_list, instance.number_of_frames)
    if isinstance(numbers, HttpResponse):
        return numbers
    audit_read(request, [instance], "frames", frames=numbers[:20])
    try:
        payloads = rendering.frame_bytes(ContentStore().open(instance.sha256), numbers)
    except rendering.RenderError as exc:
        return error(406, str(exc), "not_acceptable")
    boundary = new_boundary()
    return StreamingHttpResponse(
        write_parts(((f"application/octet-stream; transfer-syntax={ts}", data) for ts, data in payloads), boundary),
        content_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}',
    )


@dicomweb()
def bulkdata(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, tag: str) -> HttpResponseBase:
    instance = _one(request, study_uid, series_uid, sop_uid)
    try:
        ts, value = rendering.bulk_value(ContentStore().open(instance.sha256), tag)
    except rendering.RenderError as exc:
        return error(404, str(exc), "no_such_bulkdata")
    audit_read(request, [instance], "bulkdata", tag=tag)
    boundary = new_boundary()
    return StreamingHttpResponse(
        write_parts([(f"application/octet-stream; transfer-syntax={ts}", value)], boundary),
        content_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}',
    )


@dicomweb()
def rendered(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str | None = None
) -> HttpResponse:
    instance = _one(request, study_uid, series_uid, sop_uid)
    frame = None
    if frame_list is not None:
        numbers = _frame_numbers(frame_list, max(instance.number_of_frames, 1))
        if isinstance(numbers, HttpResponse):
            return numbers
        frame = numbers[0] - 1
    try:
        options = rendering.RenderOptions.from_request(request.GET, request.headers.get("Accept", ""))
        image, media_type = rendering.render_frame(ContentStore().open(instance.sha256), frame=frame, options=options)
    except rendering.RenderError as exc:
        return error(400, str(exc), "cannot_render")
    audit_read(request, [instance], "rendered", frame=(frame or 0) + 1, window=options.describe())
    return HttpResponse(image, content_type=media_type)
