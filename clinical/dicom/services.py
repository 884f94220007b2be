"""DICOM writes (house rule 1): ingest from any of the three doors, reconciliation of unmatched
studies, registering modalities and DICOMweb tokens. Atomic and audited in the same transaction.

Ingest is batch-shaped because STOW-RS is: one request carries many objects, and the database work
for all of them is a fixed number of queries (look up, insert missing studies/series/instances,
one audit event per study), not a number that grows with the batch."""

from __future__ import annotations

import errno
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Count
from django.utils import timezone

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.dicom.models import AccessToken, DicomNode, Instance, Series, Source, Study
from clinical.dicom.parsing import ParsedInstance, parse_instance
from clinical.dicom.refusals import Reason, Refused
from clinical.dicom.storage import ContentStore, sha256_hex
from clinical.models import Facility, Patient, User
from clinical.scoping import role_at


@dataclass
class IngestResult:
    """The outcome for one object: stored (new or already there), or refused with a reason."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    instance_id: int | None = None
    duplicate: bool = False
    refusal: Refused | None = None
    label: str = ""  # the caller's name for the object (file name, part number)

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def status(self) -> int:
        """The DICOM status: 0x0000, or the refusal's failure reason."""
        return 0 if self.refusal is None else int(self.refusal.reason)


@dataclass
class _Batch:
    facility: Facility
    source: str
    actor: User | None
    results: list[IngestResult] = field(default_factory=list)
    parsed: dict[str, ParsedInstance] = field(default_factory=dict)  # by SOP Instance UID


def instance_ingest(*, data: bytes, facility: Facility, source: str, actor: User | None) -> IngestResult:
    """Ingest one object (C-STORE, one uploaded file)."""
    return instances_ingest(items=[data], facility=facility, source=source, actor=actor)[0]


def instances_ingest(
    *, items: Sequence[bytes], facility: Facility, source: str, actor: User | None,
    labels: Sequence[str] | None = None, store: ContentStore | None = None, study_instance_uid: str | None = None,
) -> list[IngestResult]:
    """Ingest a batch: each object is stored or refused on its own (a bad one does not sink the
    others), and nothing of a refused object is kept. Same SOP Instance UID again: success,
    `duplicate=True`, the first copy kept. With `study_instance_uid` (STOW-RS to one study),
    objects of other studies are refused."""
    if source not in Source.values:
        raise ValueError(f"unknown source {source!r}")
    store = store or ContentStore()
    batch = _Batch(facility=facility, source=source, actor=actor)
    for i, data in enumerate(items):
        result = IngestResult(label=labels[i] if labels else str(i + 1))
        batch.results.append(result)
        try:
            parsed = parse_instance(data)
        except Refused as refusal:
            _refuse(result, refusal)
            continue
        result.sop_class_uid, result.sop_instance_uid = parsed.sop_class_uid, parsed.sop_instance_uid
        result.study_instance_uid, result.series_instance_uid = parsed.study_instance_uid, parsed.series_instance_uid
        if study_instance_uid is not None and parsed.study_instance_uid != study_instance_uid:
            detail = f"Study Instance UID {parsed.study_instance_uid} は送信先の検査 {study_instance_uid} と異なります"
            _refuse(result, Refused(Reason.MISSING_ATTRIBUTE, detail))
            continue
        if parsed.sop_instance_uid in batch.parsed:
            result.duplicate = True  # twice in one request: the first one is the one kept
            continue
        batch.parsed[parsed.sop_instance_uid] = parsed
    if batch.parsed:
        _store_batch(batch, store)
    _audit_refusals(batch)
    return batch.results


def _refuse(result: IngestResult, refusal: Refused) -> None:
    result.refusal = refusal
    result.sop_class_uid = result.sop_class_uid or refusal.sop_class_uid
    result.sop_instance_uid = result.sop_instance_uid or refusal.sop_instance_uid


def _store_batch(batch: _Batch, store: ContentStore) -> None:
    # Files first (outside the transaction: disk I/O must not hold the audit chain's lock), rows
    # second; files this batch created are removed again if the rows do not commit.
    created: list[str] = []
    try:
        for parsed in batch.parsed.values():
            if store.put(parsed.data, key=parsed.sha256).created:
                created.append(parsed.sha256)
        with transaction.atomic():
            _write_rows(batch)
        # Bytes written for an object that got no row of its own (already stored under its UID
        # with other bytes, or refused for its study) must not stay behind either.
        kept = {batch.parsed[r.sop_instance_uid].sha256 for r in batch.results
                if r.ok and not r.duplicate and r.sop_instance_uid in batch.parsed}
        _discard_unreferenced(store, [key for key in created if key not in kept])
    except (OSError, DatabaseError) as exc:
        _discard_unreferenced(store, created)
        full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        failure = Refused(Reason.OUT_OF_RESOURCES if full else Reason.PROCESSING_FAILURE,
                          f"保存できませんでした: {type(exc).__name__}: {exc}"[:300])
        for result in batch.results:
            if result.ok and result.sop_instance_uid in batch.parsed:
                _refuse(result, failure)
                result.instance_id, result.duplicate = None, False
    except BaseException:
        _discard_unreferenced(store, created)
        raise


def _discard_unreferenced(store: ContentStore, keys: Iterable[str]) -> None:
    keys = list(keys)
    if not keys:
        return
    # Another transaction may have committed a row for identical bytes in the meantime.
    try:
        kept = set(Instance.objects.filter(sha256__in=keys).values_list("sha256", flat=True))
    except DatabaseError:
        kept = set()  # the database is gone: these files were ours and nothing can refer to them
    for key in keys:
        if key not in kept:
            store.discard(key)


def _write_rows(batch: _Batch) -> None:
    facility, parsed = batch.facility, batch.parsed
    existing = dict(
        Instance.objects.filter(facility=facility, sop_instance_uid__in=list(parsed)).values_list(
            "sop_instance_uid", "id"
        )
    )
    fresh = {uid: p for uid, p in parsed.items() if uid not in existing}
    studies = _ensure_studies(facility, fresh.values())
    conflicts = _patient_conflicts(studies, fresh.values())
    fresh = {uid: p for uid, p in fresh.items() if uid not in conflicts}
    series = _ensure_series(facility, studies, fresh.values())
    rows = [
        Instance(
            facility=facility, study=studies[p.study_instance_uid], series=series[p.series_instance_uid],
            sop_instance_uid=p.sop_instance_uid, sop_class_uid=p.sop_class_uid,
            transfer_syntax_uid=p.transfer_syntax_uid, sha256=p.sha256, size=len(p.data), source=batch.source,
            **p.instance,
        )
        for p in fresh.values()
    ]
    # A concurrent request may insert the same UID between our look-up and here: that is the
    # idempotent case too, so the conflict is ignored and the row re-read below.
    Instance.objects.bulk_create(rows, ignore_conflicts=True)
    ids = dict(
        Instance.objects.filter(facility=facility, sop_instance_uid__in=list(fresh)).values_list(
            "sop_instance_uid", "id"
        )
    )
    _update_study_counts(sorted({studies[p.study_instance_uid].pk for p in fresh.values()}))
    for result in batch.results:
        uid = result.sop_instance_uid
        if not result.ok or uid not in parsed:
            continue
        if uid in conflicts:
            _refuse(result, conflicts[uid])
        elif uid in existing:
            result.instance_id, result.duplicate = existing[uid], True
        else:
            result.instance_id = ids.get(uid)
    _audit_import(batch, studies, fresh, existing)


def _update_study_counts(study_ids: list[int]) -> None:
    """Series/instance counts and modalities of the studies this batch added to. The study rows
    are locked first (in id order, so two batches cannot deadlock), so a concurrent batch for
    the same study waits for this one to commit and then counts its rows too. NO KEY UPDATE:
    the instance rows just inserted hold KEY SHARE locks on their study, which FOR UPDATE would
    wait on across batches (a deadlock), while this lock only excludes the other counters."""
    if not study_ids:
        return
    qs = Study.objects.select_for_update(no_key=True).filter(pk__in=study_ids).order_by("pk")
    locked = {s.pk: s for s in qs}
    rows = Series.objects.filter(study_id__in=list(locked)).annotate(n=Count("instances"))
    for study in locked.values():
        study.n_series, study.n_instances, study.modalities = 0, 0, ""
    found: dict[int, set[str]] = defaultdict(set)
    for study_id, modality, n in rows.values_list("study_id", "modality", "n"):
        locked[study_id].n_series += 1
        locked[study_id].n_instances += n
        if modality:
            found[study_id].add(modality)
    for study_id, modalities in found.items():
        locked[study_id].modalities = "\\".join(sorted(modalities))[:64]
    Study.objects.bulk_update(list(locked.values()), ["n_series", "n_instances", "modalities"])


def _ensure_studies(facility: Facility, items: Iterable[ParsedInstance]) -> dict[str, Study]:
    first: dict[str, ParsedInstance] = {}
    for p in items:
        first.setdefault(p.study_instance_uid, p)
    if not first:
        return {}
    patients = dict(
        Patient.objects.filter(
            facility=facility,
            mrn__in={p.study["dicom_patient_id"] for p in first.values() if p.study["dicom_patient_id"]},
        ).values_list("mrn", "id")
    )
    new = [
        Study(facility=facility, study_instance_uid=uid, **_study_fields(p, patients))
        for uid, p in first.items()
    ]
    Study.objects.bulk_create(new, ignore_conflicts=True)
    found = Study.objects.filter(facility=facility, study_instance_uid__in=list(first))
    return {s.study_instance_uid: s for s in found}


def _study_fields(p: ParsedInstance, patients: dict[str, int]) -> dict[str, Any]:
    # Matched by PatientID = 受診者番号 within the sending facility, or left for reconciliation.
    return {**p.study, "patient_id": patients.get(p.study["dicom_patient_id"])}


def _patient_conflicts(studies: dict[str, Study], items: Iterable[ParsedInstance]) -> dict[str, Refused]:
    """Objects claiming a study that is on record for another PatientID are refused: filing an
    image under the wrong examinee is the error this system must never make silently."""
    conflicts = {}
    for p in items:
        study = studies[p.study_instance_uid]
        if study.dicom_patient_id != p.study["dicom_patient_id"]:
            conflicts[p.sop_instance_uid] = Refused(
                Reason.PROCESSING_FAILURE,
                f"Study Instance UID {p.study_instance_uid} は別の Patient ID で登録済みです",
                sop_class_uid=p.sop_class_uid, sop_instance_uid=p.sop_instance_uid,
            )
    return conflicts


def _ensure_series(facility: Facility, studies: dict[str, Study], items: Iterable[ParsedInstance]) -> dict[str, Series]:
    first: dict[str, ParsedInstance] = {}
    for p in items:
        first.setdefault(p.series_instance_uid, p)
    if not first:
        return {}
    new = [
        Series(facility=facility, study=studies[p.study_instance_uid], series_instance_uid=uid, **p.series)
        for uid, p in first.items()
    ]
    Series.objects.bulk_create(new, ignore_conflicts=True)
    return {
        s.series_instance_uid: s
        for s in Series.objects.filter(facility=facility, series_instance_uid__in=list(first))
    }


def _audit_import(
    batch: _Batch, studies: dict[str, Study], fresh: dict[str, ParsedInstance], existing: dict[str, int]
) -> None:
    per_study: dict[str, list[str]] = defaultdict(list)
    for p in fresh.values():
        per_study[p.study_instance_uid].append(p.sop_instance_uid)
    duplicates: dict[str, int] = defaultdict(int)
    for uid in existing:
        duplicates[batch.parsed[uid].study_instance_uid] += 1
    role = role_at(batch.actor, batch.facility.pk) if batch.actor else ""
    # Last in the transaction: the audit chain's row lock is then held for the shortest time.
    for study_uid in sorted(set(per_study) | set(duplicates)):
        study = studies.get(study_uid)
        audit_record(
            kind=EventKind.IMPORT, user=batch.actor, role=role, facility_id=batch.facility.pk,
            object_type="dicom.study", object_id=study_uid, patient_id=study.patient_id if study else None,
            details={"source": batch.source, "stored": len(per_study.get(study_uid, [])),
                     "duplicates": duplicates.get(study_uid, 0),
                     "sop_instance_uids": per_study.get(study_uid, [])[:50]},
        )


def _audit_refusals(batch: _Batch) -> None:
    refused = [r for r in batch.results if not r.ok]
    if not refused:
        return
    audit_record(
        kind=EventKind.IMPORT, outcome=Outcome.FAILURE, user=batch.actor, facility_id=batch.facility.pk,
        object_type="dicom.instance", object_id=refused[0].sop_instance_uid[:64],
        details={"source": batch.source, "refused": [
            {"label": r.label[:100], "sop_instance_uid": r.sop_instance_uid, "reason": f"0x{r.status:04X}",
             "detail": r.refusal.detail[:300] if r.refusal else ""}
            for r in refused[:50]
        ]},
    )


# --- reconciliation --------------------------------------------------------------------------


def study_reconcile(*, study: Study, patient: Patient, actor: User) -> Study:
    """File an unmatched study under an examinee of the same facility, by a person's decision."""
    if patient.facility_id != study.facility_id:
        raise ValueError("受診者と検査の施設が異なります")
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        before = locked.patient_id
        locked.patient = patient
        locked.reconciled_at = timezone.now()
        locked.save(update_fields=["patient", "reconciled_at"])
        audit_record(
            kind=EventKind.UPDATE, user=actor, role=role_at(actor, study.facility_id), facility_id=study.facility_id,
            object_type="dicom.study", object_id=study.study_instance_uid, patient_id=patient.pk,
            details={"action": "reconcile", "dicom_patient_id": study.dicom_patient_id, "from": before,
                     "to": patient.pk},
        )
    return locked


def unmatched_rematch(*, facility: Facility, actor: User) -> int:
    """Match again every unmatched study of `facility` whose PatientID is now a 受診者番号."""
    with transaction.atomic():
        pending = list(Study.objects.select_for_update().filter(facility=facility, patient__isnull=True))
        patients = dict(
            Patient.objects.filter(facility=facility, mrn__in={s.dicom_patient_id for s in pending}).values_list(
                "mrn", "id"
            )
        )
        matched = [s for s in pending if s.dicom_patient_id in patients]
        now = timezone.now()
        for study in matched:
            study.patient_id = patients[study.dicom_patient_id]
            study.reconciled_at = now
        Study.objects.bulk_update(matched, ["patient", "reconciled_at"])
        for study in matched:
            audit_record(
                kind=EventKind.UPDATE, user=actor, role=role_at(actor, facility.pk), facility_id=facility.pk,
                object_type="dicom.study", object_id=study.study_instance_uid, patient_id=study.patient_id,
                details={"action": "rematch", "dicom_patient_id": study.dicom_patient_id},
            )
    return len(matched)


# --- modalities and tokens ---------------------------------------------------------------------


def dicom_node_register(
    *, facility: Facility, ae_title: str, host: str = "", description: str = "", actor: User | None = None
) -> DicomNode:
    node = DicomNode(facility=facility, ae_title=ae_title.strip(), host=host.strip(), description=description)
    node.full_clean()
    with transaction.atomic():
        node.save()
        audit_record(kind=EventKind.CREATE, user=actor, facility_id=facility.pk, object_type="dicom.node",
                     object_id=node.pk, details={"ae_title": node.ae_title, "host": node.host})
    return node


def access_token_issue(*, user: User, name: str, actor: User | None = None) -> tuple[AccessToken, str]:
    """A new bearer token for `user`; the secret is returned once and only its hash is kept."""
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        token = AccessToken.objects.create(user=user, name=name, key_sha256=sha256_hex(secret.encode()))
        audit_record(kind=EventKind.CREATE, user=actor, object_type="dicom.accesstoken", object_id=token.pk,
                     details={"for_user": user.pk, "name": name})
    return token, secret
