"""DICOM reads, always scoped to the user's facilities through `clinical.scoping.scope`. Outside the
scope the answer is "nothing" (QIDO) or 404 (WADO), and the attempt is audited, exactly as
`get_scoped_or_404` does for examinees: the caller cannot tell "not yours" from "not there"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.dicom.metadata import instance_json
from clinical.dicom.models import Instance, Series, Study
from clinical.dicom.qido import Query
from clinical.dicom.storage import ContentStore
from clinical.scoping import facility_ids_for, scope


@dataclass
class StudyRow:
    study: Study
    series_count: int
    instance_count: int
    modalities: list[str]


def qido_studies(*, user: Any, query: Query) -> list[StudyRow]:
    """One page of studies, in one query: counts and modalities are kept on the study by ingest."""
    qs = scope(Study.objects.all(), user).filter(query.q).order_by("-study_date", "-id")
    return [
        StudyRow(study=s, series_count=s.n_series, instance_count=s.n_instances,
                 modalities=s.modalities.split("\\") if s.modalities else [])
        for s in qs[query.offset : query.offset + query.limit]
    ]


def qido_series(*, user: Any, query: Query, study_uid: str | None = None) -> list[Series]:
    qs = scope(Series.objects.select_related("study"), user).filter(query.q)
    if study_uid is not None:
        qs = qs.filter(study__study_instance_uid=study_uid)
    qs = qs.annotate(n_instances=Count("instances")).order_by("study_id", "series_number", "id")
    return list(qs[query.offset : query.offset + query.limit])


def qido_instances(
    *, user: Any, query: Query, study_uid: str | None = None, series_uid: str | None = None
) -> list[Instance]:
    qs = scope(Instance.objects.select_related("study", "series").defer("metadata"), user).filter(query.q)
    if study_uid is not None:
        qs = qs.filter(study__study_instance_uid=study_uid)
    if series_uid is not None:
        qs = qs.filter(series__series_instance_uid=series_uid)
    qs = qs.order_by("series_id", "instance_number", "id")
    return list(qs[query.offset : query.offset + query.limit])


def exists_elsewhere(*, user: Any, uid_keys: dict[str, list[str]]) -> bool:
    """Whether UIDs the user searched for exist in a facility they may not see (for the audit
    trail only; the user is never told)."""
    allowed = facility_ids_for(user)
    checks: dict[str, QuerySet[Any]] = {
        "StudyInstanceUID": Study.objects.filter(study_instance_uid__in=uid_keys.get("StudyInstanceUID", [])),
        "SeriesInstanceUID": Series.objects.filter(series_instance_uid__in=uid_keys.get("SeriesInstanceUID", [])),
        "SOPInstanceUID": Instance.objects.filter(sop_instance_uid__in=uid_keys.get("SOPInstanceUID", [])),
    }
    return any(checks[key].exclude(facility_id__in=allowed).exists() for key in uid_keys if key in checks)


def retrievable(
    *, user: Any, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, with_metadata: bool = False
) -> list[Instance]:
    """The instances a WADO-RS request names, in the user's scope; 404 (audited) when none."""
    qs = scope(Instance.objects.select_related("study", "series"), user).filter(study__study_instance_uid=study_uid)
    if series_uid is not None:
        qs = qs.filter(series__series_instance_uid=series_uid)
    if sop_uid is not None:
        qs = qs.filter(sop_instance_uid=sop_uid)
    if not with_metadata:
        qs = qs.defer("metadata")
    instances = list(qs.order_by("series__series_number", "series_id", "instance_number", "id"))
    if not instances:
        denied(object_type=_level(series_uid, sop_uid), object_id=sop_uid or series_uid or study_uid,
               lookup={"study": study_uid, "series": series_uid or "", "instance": sop_uid or ""})
    return instances


def _level(series_uid: str | None, sop_uid: str | None) -> str:
    return "dicom.instance" if sop_uid else "dicom.series" if series_uid else "dicom.study"


def denied(*, object_type: str, object_id: str, lookup: dict[str, str]) -> None:
    """Audit an out-of-scope (or absent) object and answer 404, like get_scoped_or_404."""
    audit_record(
        kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type=object_type, object_id=object_id[:64],
        details={"lookup": {k: v[:64] for k, v in lookup.items()}, "perm": "access_facility"},
    )
    raise Http404


def instances_metadata(instances: list[Instance], store: ContentStore | None = None) -> list[dict[str, Any]]:
    """DICOM JSON for each instance, building and caching the ones not built yet (one UPDATE per
    built row; a cache fill, not a change of record, so it is not audited)."""
    store = store or ContentStore()
    missing = [i for i in instances if i.metadata is None]
    for instance in missing:
        instance.metadata = instance_json(store.open(instance.sha256))
    if missing:
        Instance.objects.bulk_update(missing, ["metadata"], batch_size=200)
    return [i.metadata or {} for i in instances]


def unmatched_studies(*, user: Any) -> QuerySet[Study]:
    return (
        scope(Study.objects.select_related("facility"), user, perm="manage_patients")
        .filter(patient__isnull=True)
        .order_by("created_at", "id")
    )


def study_list(*, user: Any, query: str = "") -> QuerySet[Study]:
    qs = scope(Study.objects.select_related("patient", "facility"), user)
    query = query.strip()
    if query:
        qs = qs.filter(dicom_patient_id=query) | qs.filter(accession_number=query) | qs.filter(
            patient_name__icontains=query
        )
    return qs.order_by("-study_date", "-id")


def study_series(*, study: Study) -> list[Series]:
    return list(study.series.annotate(n_instances=Count("instances")).order_by("series_number", "id"))
