"""Importing checkup files: all or nothing per file, idempotent, corrections audited.

`import_batch_create` stores the upload and queues the job; `import_batch_run` (the Celery task
body) claims the job row, validates the whole file, and either writes everything in one
transaction or nothing at all, keeping the exact list of rejected cells on the batch row."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.intake.items import BY_KEY
from clinical.intake.table import ParsedFile, ParsedVisit, RowError, parse_rows, read_rows
from clinical.judging import visits_screen
from clinical.models import CheckupVisit, Facility, ImportBatch, ImportStatus, Observation, Patient, User, VisitStatus
from clinical.scoping import role_at
from config.realtime import broadcast, broadcast_on_commit

log = logging.getLogger(__name__)
ALLOWED_SUFFIXES = {".csv", ".xlsx", ".xlsm"}
MAX_ERRORS_KEPT = 1000
Progress = Callable[[int, int], None]


class ImportRefused(ValueError):
    """The upload itself is unusable (type, size, empty); nothing was stored."""


def upload_dir() -> Path:
    path = Path(settings.VAR_DIR) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def import_batch_create(*, facility: Facility, file_name: str, content: IO[bytes], actor: User) -> ImportBatch:
    suffix = Path(file_name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise ImportRefused(f"「{file_name}」は取り込めない形式です（CSV または Excel .xlsx にしてください）")
    data = content.read()
    if not data:
        raise ImportRefused(f"「{file_name}」は空のファイルです")
    digest = hashlib.sha256(data).hexdigest()
    stored = upload_dir() / f"{digest}{suffix}"
    if not stored.exists():
        stored.write_bytes(data)  # content-addressed: the same file is stored once
    with transaction.atomic():
        batch = ImportBatch.objects.create(facility=facility, file_name=file_name[:255], sha256=digest,
                                           stored_path=str(stored), created_by=actor)
        audit_record(kind=EventKind.IMPORT, user=actor, role=role_at(actor, facility.pk), facility_id=facility.pk,
                     object_type="clinical.importbatch", object_id=batch.pk,
                     details={"stage": "queued", "file": file_name, "sha256": digest, "bytes": len(data)})
        from clinical.tasks import run_import

        transaction.on_commit(lambda: run_import.delay(batch.pk))
    return batch


def _group(batch_id: int) -> str:
    return f"import.{batch_id}"


def batch_state(batch: ImportBatch) -> dict[str, object]:
    return {"type": "import.progress", "batch": batch.pk, "status": batch.status, "total": batch.total_rows,
            "processed": batch.processed_rows, "percent": batch.percent, "message": batch.message,
            "errors": len(batch.errors)}


@dataclass
class _Reporter:
    batch_id: int
    every_s: float = 0.25
    _last: float = 0.0

    def __call__(self, processed: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and processed < total:
            return
        self._last = now
        broadcast(_group(self.batch_id), {"type": "import.progress", "batch": self.batch_id, "status": "running",
                                          "processed": processed, "total": total,
                                          "percent": int(100 * processed / total) if total else 0})


def import_batch_run(*, batch_id: int) -> ImportBatch | None:
    """Claim and run one import. Returns None if another worker has it or it already finished."""
    claimed = ImportBatch.objects.filter(id=batch_id, status=ImportStatus.QUEUED).update(status=ImportStatus.RUNNING)
    if claimed != 1:
        return None
    batch = ImportBatch.objects.select_related("facility", "created_by").get(id=batch_id)
    report = _Reporter(batch.pk)
    try:
        header, rows = read_rows(batch.stored_path)
        materialised = list(rows)
        batch.total_rows = len(materialised)
        ImportBatch.objects.filter(id=batch.pk).update(total_rows=batch.total_rows)
        known = dict(Patient.objects.filter(facility=batch.facility).values_list("mrn", "id"))
        parsed = parse_rows(header, _counting(materialised, report), known_mrns=set(known))
    except (ValueError, OSError) as exc:
        parsed = ParsedFile([], [RowError(0, "", "", str(exc))], [])
    if parsed.errors:
        return _fail(batch, parsed.errors)
    try:
        with transaction.atomic():
            _write(batch, parsed.visits, known)
    except Exception as exc:  # the transaction rolled back: nothing of the file is kept
        log.exception("import %s failed while writing", batch.pk)
        return _fail(batch, [RowError(0, "", "", f"書き込み中にエラーが発生しました: {type(exc).__name__}")])
    return batch


def _counting(rows: list[tuple[int, list[str]]], report: Progress) -> Iterator[tuple[int, list[str]]]:
    total = len(rows)
    for i, row in enumerate(rows, start=1):
        if i % 1000 == 0 or i == total:
            report(i, total)
        yield row


def _fail(batch: ImportBatch, errors: list[RowError]) -> ImportBatch:
    with transaction.atomic():
        batch.status = ImportStatus.FAILED
        batch.errors = [e.as_dict() for e in errors[:MAX_ERRORS_KEPT]]
        batch.message = f"{len(errors)} 件のエラーのため、このファイルは取り込んでいません（1件も登録されていません）"
        batch.finished_at = timezone.now()
        batch.save(update_fields=["status", "errors", "message", "finished_at"])
        audit_record(kind=EventKind.IMPORT, outcome=Outcome.FAILURE, user=batch.created_by,
                     facility_id=batch.facility_id, object_type="clinical.importbatch", object_id=batch.pk,
                     details={"stage": "rejected", "errors": len(errors), "first": str(errors[0])[:300]})
        broadcast_on_commit(_group(batch.pk), batch_state(batch))
    return batch


def _write(batch: ImportBatch, visits: list[ParsedVisit], patient_ids: dict[str, int]) -> None:
    facility = batch.facility
    source = f"{batch.file_name}#{batch.pk}"
    keys = {(patient_ids[v.mrn], v.exam_date, v.course) for v in visits}
    dates = {k[1] for k in keys}
    existing = {
        (pid, d, c): (vid, fasting)
        for vid, pid, d, c, fasting in CheckupVisit.objects.filter(facility=facility, exam_date__in=dates)
        .values_list("id", "patient_id", "exam_date", "course", "fasting")
        if (pid, d, c) in keys
    }
    new = [CheckupVisit(facility=facility, patient_id=patient_ids[v.mrn], exam_date=v.exam_date, course=v.course,
                        fasting=v.fasting, status=VisitStatus.MEASURED)
           for v in visits if (patient_ids[v.mrn], v.exam_date, v.course) not in existing]
    CheckupVisit.objects.bulk_create(new, batch_size=5000)
    visit_ids = {(n.patient_id, n.exam_date, n.course): n.pk for n in new}
    visit_ids.update({k: vid for k, (vid, _f) in existing.items()})
    old_values: dict[int, dict[str, tuple[Decimal | None, str]]] = {}
    if existing:
        for vid, item, num, text in Observation.objects.filter(
                visit_id__in=[vid for vid, _f in existing.values()]).values_list(
                "visit_id", "item", "value_num", "value_text"):
            old_values.setdefault(vid, {})[item] = (num, text)
    observations: list[Observation] = []
    corrections: list[tuple[int, int, dict[str, list[str]]]] = []
    fasting_changes: list[CheckupVisit] = []
    for v in visits:
        key = (patient_ids[v.mrn], v.exam_date, v.course)
        vid = visit_ids[key]
        before = old_values.get(vid, {})
        changed: dict[str, list[str]] = {}
        for item, (num, text) in v.values.items():
            old = before.get(item)
            if old is not None and _same(old, (num, text)):
                continue
            if old is not None:
                changed[item] = [_show(old), _show((num, text))]
            observations.append(Observation(visit_id=vid, item=item, jlac10=BY_KEY[item].jlac10[0],
                                            value_num=num, value_text=text, unit=BY_KEY[item].unit,
                                            source=source, source_row=v.row))
        if key in existing and v.fasting is not None and existing[key][1] != v.fasting:
            changed["fasting"] = [str(existing[key][1]), str(v.fasting)]
            fasting_changes.append(CheckupVisit(id=vid, fasting=v.fasting))
        if changed:
            corrections.append((vid, key[0], changed))
    Observation.objects.bulk_create(
        observations, batch_size=5000, update_conflicts=True, unique_fields=["visit", "item"],
        update_fields=["value_num", "value_text", "unit", "jlac10", "source", "source_row"])
    if fasting_changes:
        CheckupVisit.objects.bulk_update(fasting_changes, ["fasting"], batch_size=2000)
    role = role_at(batch.created_by, facility.pk)
    for vid, patient_id, changed in corrections:
        # A corrected value is an audited update of the same visit, never a second visit.
        audit_record(kind=EventKind.UPDATE, user=batch.created_by, role=role, facility_id=facility.pk,
                     object_type="clinical.checkupvisit", object_id=vid, patient_id=patient_id,
                     details={"changed": changed, "source": source})
    touched = sorted({vid for vid, _p, _c in corrections} | {n.pk for n in new})
    judged = visits_screen(visit_ids=touched) if touched else 0
    batch.status = ImportStatus.SUCCEEDED
    batch.processed_rows = batch.total_rows
    batch.visits_created = len(new)
    batch.visits_updated = len(corrections)
    batch.observations_written = len(observations)
    batch.finished_at = timezone.now()
    batch.message = (f"{len(visits)} 件の受診を確認: 新規 {len(new)} 件、修正 {len(corrections)} 件、"
                     f"変更なし {len(visits) - len(new) - len(corrections)} 件（判定 {judged} 件）")
    batch.save(update_fields=["status", "processed_rows", "visits_created", "visits_updated",
                              "observations_written", "finished_at", "message"])
    audit_record(kind=EventKind.IMPORT, user=batch.created_by, role=role, facility_id=facility.pk,
                 object_type="clinical.importbatch", object_id=batch.pk,
                 details={"stage": "imported", "visits": len(visits), "created": len(new),
                          "corrected": len(corrections), "observations": len(observations), "source": source})
    broadcast_on_commit(_group(batch.pk), batch_state(batch))


def _same(a: tuple[Decimal | None, str], b: tuple[Decimal | None, str]) -> bool:
    # 6.8 and 6.80 are the same measurement; compare numerically, and text exactly.
    return (a[0] is None) == (b[0] is None) and (a[0] is None or Decimal(a[0]) == Decimal(b[0] or 0)) \
        and (a[1] or "") == (b[1] or "")


def _show(v: tuple[Decimal | None, str]) -> str:
    return v[1] if v[0] is None else format(Decimal(v[0]).normalize(), "f")
