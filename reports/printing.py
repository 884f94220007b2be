"""Batch printing of a day's result letters: staff choose a facility and an exam date; one Celery
task renders every signed letter of that day into one PDF, lists what it left out and why, and
keeps its progress on the job row (the truth; the page polls it). Audited: the request, each letter
rendered (with its patient), and each download."""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.models import CheckupVisit, Facility, User
from clinical.scoping import facility_ids_for, role_at
from reports.corrections import corrected_after_signing
from reports.letters.context import KIND_LABELS, Letter, letter_for
from reports.letters.pdf import letters_pdf
from reports.models import PrintBatch, PrintStatus, Report, ReportStatus, SignOff

log = logging.getLogger(__name__)
PERM = "manage_patients"  # checkup staff and administrators send result letters; physicians sign them
# Letters are merged in memory (weasyprint keeps every page's layout until it writes): ≈6 MB a
# letter measured, so a large day is written as several PDFs of this many letters, zipped.
LETTERS_PER_PART = 50
# A claim older than Celery's hard time limit belongs to a worker that died: the row may be taken again.
STALE_CLAIM = timedelta(minutes=25)


class PrintRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def print_dir() -> Path:
    path = Path(settings.VAR_DIR) / "prints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def print_batch_create(*, actor: User, facility: Facility, exam_date: date, enqueue: bool = True) -> PrintBatch:
    """Queue the batch print of `facility`'s letters for `exam_date` (sent to Celery on commit)."""
    if facility.pk not in facility_ids_for(actor, PERM):
        raise PrintRefused(_("この施設の結果報告書を印刷する権限がありません。"))
    if exam_date > timezone.localdate():
        raise PrintRefused(_("未来の受診日は選べません。"))
    with transaction.atomic():
        batch = PrintBatch.objects.create(facility=facility, exam_date=exam_date, created_by=actor)
        audit_record(kind=EventKind.CREATE, user=actor, role=role_at(actor, facility.pk), facility_id=facility.pk,
                     object_type="reports.printbatch", object_id=batch.pk,
                     details={"stage": "queued", "exam_date": exam_date.isoformat()})
        if enqueue:
            from reports.tasks import print_batch

            transaction.on_commit(lambda: print_batch.apply_async(args=[batch.pk], queue="default"))
    return batch


def batch_state(batch: PrintBatch) -> dict[str, Any]:
    return {"batch": batch.pk, "status": batch.status, "status_label": str(batch.get_status_display()),
            "total": batch.total, "processed": batch.processed, "percent": batch.percent,
            "printed": batch.printed, "skipped": len(batch.skipped), "message": batch.message,
            "finished": batch.finished}


@dataclass(frozen=True)
class Targets:
    letters: list[tuple[Report, SignOff]]
    skipped: list[dict[str, Any]]


def print_targets(*, facility_id: int, exam_date: date) -> Targets:
    """The day's signed reports in print order (by examinee's kana, the visit's summary before its
    studies), and every visit or report left out with the reason. A fixed number of queries."""
    visits = list(CheckupVisit.objects.filter(facility_id=facility_id, exam_date=exam_date)
                  .select_related("patient").order_by("patient__family_name_kana", "patient__given_name_kana", "id"))
    reports = list(Report.objects.filter(Q(visit__in=visits) | Q(facility_id=facility_id, study__study_date=exam_date))
                   .select_related("facility", "patient", "visit", "visit__patient", "study"))
    latest: dict[int, SignOff] = {}
    for each in (SignOff.objects.filter(report__in=reports).select_related("revision", "physician")
                 .order_by("report_id", "signed_at")):
        latest[each.report_id] = each  # ordered by time: the last one per report wins
    order = {v.patient_id: i for i, v in enumerate(visits)}
    reports.sort(key=lambda r: (order.get(r.patient_id or 0, len(order)),
                                r.patient.family_name_kana if r.patient else "", r.visit_id is None, r.pk))
    letters, skipped = [], []
    with_report = {r.visit_id for r in reports if r.visit_id}
    for visit in visits:
        if visit.pk not in with_report:
            skipped.append(_skip(visit.patient, visit.pk, None, "", _("所見がまだ作成されていません")))
    for report in reports:
        signoff = latest.get(report.pk)
        if corrected_after_signing(report):
            # The letter's table would show the corrected values beside a comment signed on the old.
            skipped.append(_skip(report.patient, report.visit_id, report,
                                 str(KIND_LABELS.get(report.kind, report.kind)),
                                 _("署名後に元データが訂正されました（署名後の修正が必要です）")))
        elif report.status in (ReportStatus.SIGNED, ReportStatus.AMENDED) and signoff is not None:
            letters.append((report, signoff))
        else:
            skipped.append(_skip(report.patient, report.visit_id, report,
                                 str(KIND_LABELS.get(report.kind, report.kind)),
                                 _("未署名です（%(status)s）") % {"status": report.get_status_display()}))
    return Targets(letters, skipped)


def _skip(patient: Any, visit_id: int | None, report: Report | None, kind: str, reason: str) -> dict[str, Any]:
    return {"visit": visit_id, "report": report.pk if report else None, "kind": kind, "reason": reason,
            "patient": patient.full_name if patient else "", "mrn": patient.mrn if patient else ""}


def _claim(batch_id: int) -> bool:
    now = timezone.now()
    return PrintBatch.objects.filter(
        Q(status=PrintStatus.QUEUED) | Q(status=PrintStatus.RUNNING, claimed_at__lt=now - STALE_CLAIM), id=batch_id,
    ).update(status=PrintStatus.RUNNING, claimed_at=now, processed=0) == 1


def print_batch_run(*, batch_id: int) -> PrintBatch | None:
    """Claim and run one batch print (the Celery task body). None if another worker has it or it
    already finished: running twice is harmless."""
    if not _claim(batch_id):
        return None
    batch = PrintBatch.objects.select_related("facility", "created_by").get(id=batch_id)
    try:
        targets = print_targets(facility_id=batch.facility_id, exam_date=batch.exam_date)
        batch.total, batch.skipped = len(targets.letters), targets.skipped
        batch.save(update_fields=["total", "skipped"])

        def progress(_letter: Letter) -> None:
            # One UPDATE per letter (≈1 ms beside ≈0.2 s of rendering), outside any transaction: the
            # polling page sees it at once.
            PrintBatch.objects.filter(id=batch_id).update(processed=F("processed") + 1)

        parts: list[Path] = []
        for start in range(0, len(targets.letters), LETTERS_PER_PART):
            chunk = targets.letters[start:start + LETTERS_PER_PART]
            pdf = letters_pdf((letter_for(r, s) for r, s in chunk), on_each=progress)
            if pdf is not None:
                parts.append(_write(print_dir() / f"print-{batch.pk}-{len(parts) + 1}.pdf", pdf))
        path = _bundle(batch, parts)
    except Exception as exc:
        log.exception("batch print %s failed", batch_id)
        return _fail(batch, f"{type(exc).__name__}")
    with transaction.atomic():
        _succeed(batch, targets, path)
    return batch


def _write(path: Path, data: bytes) -> Path:
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    os.replace(partial, path)  # a download never sees half a file
    return path


def _bundle(batch: PrintBatch, parts: list[Path]) -> Path | None:
    """One part: that PDF. Several (a day of more than LETTERS_PER_PART letters): one zip of them,
    in print order, stored uncompressed (PDF streams are compressed already)."""
    if len(parts) <= 1:
        return parts[0] if parts else None
    path = print_dir() / f"print-{batch.pk}.zip"
    partial = path.with_suffix(".part")
    width = len(str(len(parts)))
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        for n, part in enumerate(parts, start=1):
            archive.write(part, f"{batch.exam_date:%Y%m%d}-{n:0{width}d}of{len(parts)}.pdf")
    os.replace(partial, path)
    for part in parts:
        part.unlink()
    return path


def _succeed(batch: PrintBatch, targets: Targets, path: Path | None) -> None:
    batch.status = PrintStatus.SUCCEEDED
    batch.processed = batch.printed = len(targets.letters)
    batch.report_ids = [r.pk for r, _s in targets.letters]
    batch.file_path = str(path) if path else ""
    batch.file_sha256 = _sha256(path) if path else ""
    batch.file_bytes = path.stat().st_size if path else 0
    batch.finished_at = timezone.now()
    batch.message = (_("%(printed)d 件の報告書を作成しました（印刷しなかった受診・所見 %(skipped)d 件）")
                     % {"printed": batch.printed, "skipped": len(targets.skipped)})
    batch.save(update_fields=["status", "processed", "printed", "report_ids", "file_path", "file_sha256",
                              "file_bytes", "finished_at", "message"])
    role = role_at(batch.created_by, batch.facility_id)
    for report, signoff in targets.letters:
        # One event per letter, with its patient: "who printed my results" is answerable per examinee.
        audit_record(kind=EventKind.EXPORT, user=batch.created_by, role=role, facility_id=batch.facility_id,
                     object_type="reports.report", object_id=report.pk, patient_id=report.patient_id,
                     details={"format": "pdf", "batch": batch.pk, "revision": signoff.revision.number,
                              "sha256": signoff.content_sha256})


def _fail(batch: PrintBatch, reason: str) -> PrintBatch:
    with transaction.atomic():
        batch.status = PrintStatus.FAILED
        batch.finished_at = timezone.now()
        batch.message = (_("報告書の作成中にエラーが発生しました（%(reason)s）。もう一度お試しください。")
                         % {"reason": reason})
        batch.save(update_fields=["status", "finished_at", "message"])
        audit_record(kind=EventKind.EXPORT, outcome=Outcome.FAILURE, user=batch.created_by,
                     facility_id=batch.facility_id, object_type="reports.printbatch", object_id=batch.pk,
                     details={"stage": "failed", "reason": reason})
    return batch


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def batch_file(batch: PrintBatch) -> Path | None:
    if batch.status != PrintStatus.SUCCEEDED or not batch.file_path:
        return None
    path = Path(batch.file_path)
    return path if path.is_file() else None


def print_batch_downloaded(*, batch: PrintBatch, actor: User) -> None:
    """Record a download of the merged PDF: which letters (and so which examinees) left the system."""
    audit_record(kind=EventKind.EXPORT, user=actor, role=role_at(actor, batch.facility_id),
                 facility_id=batch.facility_id, object_type="reports.printbatch", object_id=batch.pk,
                 details={"format": "pdf", "exam_date": batch.exam_date.isoformat(), "reports": batch.report_ids,
                          "sha256": batch.file_sha256})
