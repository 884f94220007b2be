"""Checkup visits, their observations (JLAC10-coded), import batches and screening results."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from clinical.models.identity import Facility
from clinical.models.patient import Patient


class Course(models.TextChoices):
    TOKUTEI = "tokutei", _("特定健診")
    DOCK = "dock", _("人間ドック")
    TEIKI = "teiki", _("定期健康診断")


class VisitStatus(models.TextChoices):
    REGISTERED = "registered", _("受付済")
    MEASURED = "measured", _("測定済")
    SCREENED = "screened", _("判定済")


class CheckupVisit(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="visits")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="visits")
    exam_date = models.DateField(_("受診日"))
    course = models.CharField(_("コース"), max_length=10, choices=Course.choices)
    fasting = models.BooleanField(_("空腹時"), null=True, blank=True)
    status = models.CharField(_("状態"), max_length=12, choices=VisitStatus.choices, default=VisitStatus.REGISTERED)
    follow_up = models.BooleanField(_("受診勧奨"), default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-exam_date", "id"]
        verbose_name = _("健診受診")
        verbose_name_plural = _("健診受診")
        constraints = [
            # One visit per examinee, day and course: a re-import corrects it, never duplicates it.
            models.UniqueConstraint(fields=["patient", "exam_date", "course"], name="visit_unique_per_day_course"),
        ]
        indexes = [models.Index(fields=["facility", "-exam_date", "id"], name="visit_worklist")]

    def __str__(self) -> str:
        return f"{self.patient} {self.exam_date} {self.get_course_display()}"


class Observation(models.Model):
    """One measured item (or questionnaire answer) of a visit, with where it came from."""

    visit = models.ForeignKey(CheckupVisit, on_delete=models.CASCADE, related_name="observations")
    item = models.CharField(_("項目"), max_length=30)
    jlac10 = models.CharField(_("JLAC10"), max_length=17, blank=True)
    value_num = models.DecimalField(_("数値"), max_digits=12, decimal_places=4, null=True, blank=True)
    value_text = models.CharField(_("定性値"), max_length=20, blank=True)
    unit = models.CharField(_("単位"), max_length=20, blank=True)
    source = models.CharField(_("取込元"), max_length=200, blank=True)  # file name + batch id
    source_row = models.PositiveIntegerField(_("行番号"), null=True, blank=True)

    class Meta:
        verbose_name = _("検査結果")
        verbose_name_plural = _("検査結果")
        constraints = [
            models.UniqueConstraint(fields=["visit", "item"], name="observation_unique_item"),
            models.CheckConstraint(
                condition=~(models.Q(value_num__isnull=True) & models.Q(value_text="")), name="observation_has_value"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item}={self.value_num if self.value_num is not None else self.value_text}"


class MappingProfile(models.Model):
    """How one facility's export names its columns: {header as written: item key}. Headers not in
    the profile are still recognised by item key, JLAC10 code or Japanese name."""

    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="mapping_profiles")
    name = models.CharField(_("名称"), max_length=100)
    columns = models.JSONField(_("列の対応"), default=dict)

    class Meta:
        verbose_name = _("取込設定")
        verbose_name_plural = _("取込設定")
        constraints = [models.UniqueConstraint(fields=["facility", "name"], name="mapping_profile_unique_name")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from clinical.intake.items import BY_KEY

        unknown = sorted(str(v) for v in self.columns.values() if v not in BY_KEY)
        if unknown:
            raise ValidationError({"columns": f"存在しない項目キーです: {', '.join(unknown)}"})


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("待機中")
    RUNNING = "running", _("処理中")
    SUCCEEDED = "succeeded", _("完了")
    FAILED = "failed", _("失敗")


class ImportBatch(models.Model):
    """One uploaded file: the job row is the truth for its import (house rule 4)."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="import_batches")
    profile = models.ForeignKey(MappingProfile, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    file_name = models.CharField(_("ファイル名"), max_length=255)
    sha256 = models.CharField(max_length=64)
    stored_path = models.CharField(max_length=500)
    status = models.CharField(_("状態"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    visits_created = models.PositiveIntegerField(default=0)
    visits_updated = models.PositiveIntegerField(default=0)
    observations_written = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("取込")
        verbose_name_plural = _("取込")

    def __str__(self) -> str:
        return f"{self.file_name} ({self.status})"

    @property
    def percent(self) -> int:
        return int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0


class Hierarchy(models.TextChoices):
    ACTIVE = "active", _("積極的支援")
    MOTIVATIONAL = "motivational", _("動機付け支援")
    INFORMATION = "information", _("情報提供")
    EXCLUDED = "excluded", _("対象外（服薬中）")


class ScreeningResult(models.Model):
    """The judgement of one visit by one rule-set version, with every item's explanation."""

    visit = models.ForeignKey(CheckupVisit, on_delete=models.CASCADE, related_name="screenings")
    ruleset = models.CharField(_("判定基準"), max_length=40)
    ruleset_version = models.CharField(_("版"), max_length=40)
    items = models.JSONField(_("項目別判定"), default=dict)
    follow_up = models.BooleanField(_("受診勧奨"), default=False)
    reasons = models.JSONField(_("理由"), default=list)
    hierarchy = models.CharField(_("階層化"), max_length=20, blank=True, choices=Hierarchy.choices)
    judged_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("判定結果")
        verbose_name_plural = _("判定結果")
        constraints = [models.UniqueConstraint(fields=["visit", "ruleset"], name="screening_unique_ruleset")]

    def __str__(self) -> str:
        return f"{self.visit_id} {self.ruleset}"
