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
from datetime import date
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.intake.table import ParsedFile, ParsedVisit, RowError, parse_rows, read_rows
from clinical.intake.writer import write_visits
from clinical.models import Facility, ImportBatch, ImportStatus, MappingProfile, Patient, User
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


def import_batch_create(*, facility: Facility, file_name: str, content: IO[bytes], actor: User,
                        profile: MappingProfile | None = None, enqueue: bool = True) -> ImportBatch:
    """Store the upload and queue its import. `enqueue=False`: the caller runs `import_batch_run`
    itself (the demo seeder, the benchmark), so no message waits in a broker nobody consumes."""
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
        if profile is not None and profile.facility_id != facility.pk:
            raise ImportRefused("この取込設定は別の施設のものです")
        batch = ImportBatch.objects.create(facility=facility, file_name=file_name[:255], sha256=digest,
                                           stored_path=str(stored), created_by=actor, profile=profile)
        audit_record(kind=EventKind.IMPORT, user=actor, role=role_at(actor, facility.pk), facility_id=facility.pk,
                     object_type="clinical.importbatch", object_id=batch.pk,
                     details={"stage": "queued", "file": file_name, "sha256": digest, "bytes": len(data)})
        from clinical.tasks import run_import

        if enqueue:
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
    batch = ImportBatch.objects.select_related("facility", "created_by", "profile").get(id=batch_id)
    report = _Reporter(batch.pk)
    try:
        header, rows = read_rows(batch.stored_path)
        materialised = list(rows)
        batch.total_rows = len(materialised)
        ImportBatch.objects.filter(id=batch.pk).update(total_rows=batch.total_rows)
        known = {mrn: (pid, sex, birth) for mrn, pid, sex, birth in
                 Patient.objects.filter(facility=batch.facility).values_list("mrn", "id", "sex", "birth_date")}
        mapping = batch.profile.columns if batch.profile is not None else None
        parsed = parse_rows(header, _counting(materialised, report), known_mrns=set(known), mapping=mapping)
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


def _write(batch: ImportBatch, visits: list[ParsedVisit], patients: dict[str, tuple[int, str, date]]) -> None:
    result = write_visits(batch, visits, patients)
    unchanged = result.visits - result.created - result.corrected
    batch.status = ImportStatus.SUCCEEDED
    batch.processed_rows = batch.total_rows
    batch.visits_created = result.created
    batch.visits_updated = result.corrected
    batch.observations_written = result.observations
    batch.finished_at = timezone.now()
    batch.message = (f"{result.visits} 件の受診を確認: 新規 {result.created} 件、修正 {result.corrected} 件、"
                     f"変更なし {unchanged} 件")
    batch.save(update_fields=["status", "processed_rows", "visits_created", "visits_updated",
                              "observations_written", "finished_at", "message"])
    audit_record(kind=EventKind.IMPORT, user=batch.created_by, role=role_at(batch.created_by, batch.facility_id),
                 facility_id=batch.facility_id, object_type="clinical.importbatch", object_id=batch.pk,
                 details={"stage": "imported", "visits": result.visits, "created": result.created,
                          "corrected": result.corrected, "observations": result.observations,
                          "source": f"{batch.file_name}#{batch.pk}"})
    broadcast_on_commit(_group(batch.pk), batch_state(batch))
