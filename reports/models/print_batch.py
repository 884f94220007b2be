"""One batch print of a day's result letters: the job row is the truth for its progress, what was
printed, what was skipped and why, and where the merged PDF lies (house rule 4)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from clinical.models import Facility


class PrintStatus(models.TextChoices):
    QUEUED = "queued", _("待機中")
    RUNNING = "running", _("作成中")
    SUCCEEDED = "succeeded", _("完了")
    FAILED = "failed", _("失敗")


class PrintBatch(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="print_batches",
                                 verbose_name=_("施設"))
    exam_date = models.DateField(_("受診日"))
    status = models.CharField(_("状態"), max_length=10, choices=PrintStatus.choices, default=PrintStatus.QUEUED)
    total = models.PositiveIntegerField(_("対象の報告書"), default=0)
    processed = models.PositiveIntegerField(_("処理済み"), default=0)
    printed = models.PositiveIntegerField(_("印刷した報告書"), default=0)
    # [{"visit", "report", "patient", "mrn", "kind", "reason"}]: every letter left out, and why.
    skipped = models.JSONField(_("印刷しなかった受診"), default=list, blank=True)
    # [report id]: what the merged PDF holds, in page order (the download's audit event names them).
    report_ids = models.JSONField(default=list, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    file_bytes = models.PositiveBigIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("依頼者"))
    created_at = models.DateTimeField(auto_now_add=True)
    # When a worker claimed it: a claim older than the task time limit belongs to a dead worker.
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("結果報告書の一括印刷")
        verbose_name_plural = _("結果報告書の一括印刷")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=[s.value for s in PrintStatus]),
                                   name="printbatch_status_valid"),
            models.CheckConstraint(condition=Q(processed__lte=models.F("total")),
                                   name="printbatch_processed_within_total"),
        ]
        indexes = [models.Index(fields=["facility", "-created_at"], name="printbatch_recent")]

    def __str__(self) -> str:
        return f"{self.facility} {self.exam_date} ({self.status})"

    @property
    def percent(self) -> int:
        return int(100 * self.processed / self.total) if self.total else (100 if self.finished else 0)

    @property
    def is_zip(self) -> bool:
        """A day of more letters than fit one part is downloaded as a zip of PDFs."""
        return self.file_path.endswith(".zip")

    @property
    def finished(self) -> bool:
        return self.status in (PrintStatus.SUCCEEDED, PrintStatus.FAILED)
