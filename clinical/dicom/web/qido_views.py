"""QIDO-RS (PS3.18 10.6): search studies, series, instances. Thin: parse the query, ask the
selectors (which scope to the user's facilities), audit the search, write DICOM JSON."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from audit.kinds import EventKind
from audit.services import audit_read_record
from clinical.dicom import selectors
from clinical.dicom.qido import Query, QueryError, instance_attributes, parse_query, series_attributes, study_attributes
from clinical.dicom.web.auth import dicomweb, error
from clinical.scoping import facility_ids_for

DICOM_JSON = "application/dicom+json"


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/dicomweb").rstrip("/")


def _query(request: HttpRequest, level: str) -> Query | HttpResponse:
    try:
        return parse_query({k: request.GET.getlist(k) for k in request.GET}, level)
    except QueryError as exc:
        return error(400, str(exc), "invalid_query")


def _respond(
    request: HttpRequest, level: str, query: Query, results: list[dict[str, Any]], scope: dict[str, str]
) -> HttpResponse:
    user = request.user
    details: dict[str, Any] = {
        "level": level, "query": {k: v[:64] for k, v in request.GET.items()}, "results": len(results), **scope,
        "facilities": facility_ids_for(user),
    }
    if not results and (query.uid_keys or scope):
        # Nothing in scope for an explicit UID: was it another facility's? Recorded, never told.
        keys = dict(query.uid_keys)
        for key, uid in (("StudyInstanceUID", scope.get("study")), ("SeriesInstanceUID", scope.get("series"))):
            if uid:
                keys.setdefault(key, [uid])
        details["other_facility"] = selectors.exists_elsewhere(user=user, uid_keys=keys)
    audit_read_record(kind=EventKind.PHI_SEARCH, object_type=f"dicom.{level}", details=details)
    response = HttpResponse(json.dumps(results, ensure_ascii=False), content_type=DICOM_JSON)
    if query.unsupported:
        response["Warning"] = f'299 medlmm "The following query keys are not supported: {", ".join(query.unsupported)}"'
    return response


@dicomweb()
def search_studies(request: HttpRequest) -> HttpResponse:
    query = _query(request, "study")
    if isinstance(query, HttpResponse):
        return query
    base = base_url(request)
    rows = selectors.qido_studies(user=request.user, query=query)
    results = [study_attributes(r.study, (r.series_count, r.instance_count), r.modalities, base) for r in rows]
    return _respond(request, "study", query, results, {})


@dicomweb()
def search_series(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    query = _query(request, "series")
    if isinstance(query, HttpResponse):
        return query
    base = base_url(request)
    rows = selectors.qido_series(user=request.user, query=query, study_uid=study_uid)
    results = [series_attributes(s, s.n_instances, base, with_study=study_uid is None) for s in rows]  # type: ignore[attr-defined]
    return _respond(request, "series", query, results, {"study": study_uid} if study_uid else {})


@dicomweb()
def search_instances(request: HttpRequest, study_uid: str | None = None, series_uid: str | None = None) -> HttpResponse:
    query = _query(request, "instance")
    if isinstance(query, HttpResponse):
        return query
    base = base_url(request)
    rows = selectors.qido_instances(user=request.user, query=query, study_uid=study_uid, series_uid=series_uid)
    results = [instance_attributes(i, base, with_parents=study_uid is None) for i in rows]
    scope = {k: v for k, v in (("study", study_uid), ("series", series_uid)) if v}
    return _respond(request, "instance", query, results, scope)
