"""STOW-RS (PS3.18 10.5): store the parts of a multipart/related request through the ingest
service, in batches so that memory and each transaction stay bounded, and answer with the Store
Instances Response (ReferencedSOPSequence / FailedSOPSequence with the standard failure reasons)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.http import HttpRequest, HttpResponse

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.dicom.models import Source
from clinical.dicom.services import IngestResult, instances_ingest
from clinical.dicom.web.auth import dicomweb, error
from clinical.dicom.web.multipart import MultipartError, content_type_params, iter_parts
from clinical.dicom.web.qido_views import DICOM_JSON, base_url
from clinical.models import Facility
from clinical.scoping import facility_ids_for

BATCH = 64  # parts per transaction: bounded memory, and few enough rows to lock briefly


def target_facility(request: HttpRequest) -> Facility | HttpResponse:
    """Where the objects go: `?facility=<code>` (or X-Facility), else the one facility where the
    user may import. An unknown or forbidden code gets the same answer, audited."""
    code = request.GET.get("facility") or request.headers.get("X-Facility", "")
    allowed = facility_ids_for(request.user, "import_checkups")
    if code:
        facility = Facility.objects.filter(code=code, id__in=allowed).first()
        if facility is None:
            audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="clinical.facility",
                         object_id=code[:64], details={"operation": "dicom_stow",
                                                       "exists": Facility.objects.filter(code=code).exists()})
            return error(403, f"施設コード「{code}」は存在しないか、取込の権限がありません。", "facility_forbidden")
        return facility
    if not allowed:
        return error(403, "DICOM を取り込む権限がありません。", "permission_denied")
    if len(allowed) > 1:
        return error(400, "複数の施設に所属しています。?facility=施設コード で取込先を指定してください。",
                     "facility_required")
    return Facility.objects.get(pk=allowed[0])


def _dicom_parts(request: HttpRequest, boundary: str) -> Iterator[tuple[str, bytes]]:
    for number, (headers, body) in enumerate(iter_parts(request, boundary), start=1):
        part_type, _ = content_type_params(headers.get("content-type", "application/dicom"))
        yield f"part {number} ({part_type})", body


@dicomweb(methods=("POST",))
def store(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    media, params = content_type_params(request.META.get("CONTENT_TYPE", ""))
    if media != "multipart/related" or params.get("type", "application/dicom").lower() != "application/dicom":
        return error(415, 'Content-Type は multipart/related; type="application/dicom" にしてください',
                     "unsupported_media_type")
    facility = target_facility(request)
    if isinstance(facility, HttpResponse):
        return facility
    results: list[IngestResult] = []
    parts = _dicom_parts(request, params.get("boundary", ""))
    malformed = False
    try:
        while chunk := list(islice(parts, BATCH)):
            labels, items = zip(*chunk, strict=True)
            results += instances_ingest(items=list(items), labels=list(labels), facility=facility,
                                        source=Source.STOW, actor=request.user, study_instance_uid=study_uid)  # type: ignore[arg-type]
    except MultipartError as exc:
        # Batches already committed stay committed (each object is whole); say what was stored.
        if not results:
            return error(400, str(exc), "invalid_multipart")
        malformed = True
    if not results:
        return error(400, "DICOM のパートがありません", "empty_request")
    body = store_response(request, results)
    stored = sum(r.ok for r in results)
    status = 200 if stored == len(results) and not malformed else 202 if stored else 409
    return HttpResponse(json.dumps(body, ensure_ascii=False), content_type=DICOM_JSON, status=status)


def store_response(request: HttpRequest, results: list[IngestResult]) -> dict[str, Any]:
    base = base_url(request)
    referenced, failed = [], []
    for r in results:
        item: dict[str, Any] = {
            "00081150": {"vr": "UI", "Value": [r.sop_class_uid]} if r.sop_class_uid else {"vr": "UI"},
            "00081155": {"vr": "UI", "Value": [r.sop_instance_uid]} if r.sop_instance_uid else {"vr": "UI"},
        }
        if r.ok:
            url = f"{base}/studies/{r.study_instance_uid}/series/{r.series_instance_uid}/instances/{r.sop_instance_uid}"
            referenced.append({**item, "00081190": {"vr": "UR", "Value": [url]}})
        else:
            assert r.refusal is not None
            # Error Comment carries the reason in words, as it does in a C-STORE response.
            failed.append({**item, "00081197": {"vr": "US", "Value": [r.status]},
                           "00000902": {"vr": "LO", "Value": [r.refusal.detail[:64]]}})
    body: dict[str, Any] = {}
    studies = sorted({r.study_instance_uid for r in results if r.ok})
    if len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{studies[0]}"]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    return body
