"""A Report per target (visit or study) and kind, and its immutable revisions: the model's draft is
revision 1, every physician save (autosave included) and every amendment adds one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from clinical.dicom.models import Study
from clinical.models import CheckupVisit, Facility, Patient
from inference.models import InferenceJob, ModelVersion


class ReportStatus(models.TextChoices):
    DRAFT = "draft", _("下書き")
    IN_REVIEW = "in_review", _("確認中")
    SIGNED = "signed", _("署名済")
    AMENDED = "amended", _("修正済")


class Priority(models.IntegerChoices):
    ROUTINE = 0, _("通常")
    FOLLOW_UP = 1, _("要受診")
    CRITICAL = 2, _("緊急")


class RevisionKind(models.TextChoices):
    DRAFT = "draft", _("AI下書き")
    EDIT = "edit", _("医師の編集")
    AUTOSAVE = "autosave", _("自動保存")
    AMENDMENT = "amendment", _("修正（署名後）")


class Report(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="reports")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="reports")
    visit = models.ForeignKey(CheckupVisit, on_delete=models.PROTECT, null=True, blank=True, related_name="reports")
    study = models.ForeignKey(Study, on_delete=models.PROTECT, null=True, blank=True, related_name="reports")
    kind = models.CharField(_("種類"), max_length=30)  # the drafting task: checkup_summary, cxr, …
    status = models.CharField(_("状態"), max_length=10, choices=ReportStatus.choices, default=ReportStatus.DRAFT)
    # Worklist order: critical AI findings first, then visits flagged for follow-up (受診勧奨).
    priority = models.PositiveSmallIntegerField(_("優先度"), choices=Priority.choices, default=Priority.ROUTINE)
    assigned_physician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                           related_name="assigned_reports", verbose_name=_("担当医"))
    signed_at = models.DateTimeField(_("署名日時"), null=True, blank=True)
    # The visit's values were corrected by a later import (reports/corrections.py). A revision
    # older than `source_changed_at` was written against values that are no longer true: it may
    # not be signed, and a signature older than it may not be exported until it is amended.
    source_changed_at = models.DateTimeField(_("元データの訂正日時"), null=True, blank=True)
    # item → [before, after] over every correction since the report was made ("before" is the
    # value its first draft knew), for the banner and the refusal messages.
    source_changes = models.JSONField(_("訂正された元データ"), default=dict, blank=True)
    # The visit's grounding sources after the last correction (label → "value unit", 判定理由N):
    # what every later save is checked against instead of the draft's recorded sources.
    current_sources = models.JSONField(_("訂正後の照合元"), default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("所見")
        verbose_name_plural = _("所見")
        indexes = [
            # The physician's worklist (reports/selectors.py): open reports in worklist order, so the
            # first page is an index range however many drafts wait (a sort of 50,000 waiting
            # drafts took 100 ms). The condition is the worklist's own filter, word for word, so
            # PostgreSQL can prove the query implies it.
            models.Index(fields=["facility", "-priority", "created_at", "id"], name="report_worklist_open",
                         condition=Q(status__in=["draft", "in_review"])
                         | Q(source_changed_at__gt=models.F("signed_at"), status__in=["signed", "amended"])),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(visit__isnull=False) | Q(study__isnull=False), name="report_has_target"),
            models.UniqueConstraint(fields=["visit", "kind"], condition=Q(visit__isnull=False),
                                    name="report_unique_visit_kind"),
            models.UniqueConstraint(fields=["study", "kind"], condition=Q(study__isnull=False),
                                    name="report_unique_study_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class ImmutableRevision(Exception):
    pass


class ReportRevision(models.Model):
    """One version of a report's text. Never updated or deleted (on PostgreSQL a trigger refuses it
    too); a correction is a new revision."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField(_("版数"))
    kind = models.CharField(_("版の種類"), max_length=10, choices=RevisionKind.choices, default=RevisionKind.DRAFT)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    amendment_reason = models.TextField(_("修正理由"), blank=True)
    text = models.TextField(_("本文"))
    findings = models.JSONField(_("所見（構造化）"), null=True, blank=True)
    reference_data = models.JSONField(_("参考データ"), default=dict, blank=True)
    grounding = models.JSONField(_("数値の照合"), default=dict, blank=True)
    inputs = models.JSONField(_("入力"), default=dict, blank=True)  # {"sha256", "summary"}
    prompt_version = models.CharField(_("プロンプト版"), max_length=50, blank=True)
    author_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    author_model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True,
                                             related_name="+")
    author_model_label = models.CharField(max_length=200, blank=True)  # "name version (engine)" as it was
    # The job that produced this revision: unique, so one job can never yield two revisions.
    source_job = models.OneToOneField(InferenceJob, on_delete=models.PROTECT, null=True, blank=True,
                                      related_name="revision")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["report_id", "number"]
        verbose_name = _("所見の版")
        verbose_name_plural = _("所見の版")
        constraints = [
            models.UniqueConstraint(fields=["report", "number"], name="revision_unique_number"),
            models.CheckConstraint(condition=Q(author_user__isnull=False) | Q(author_model_version__isnull=False),
                                   name="revision_has_author"),
        ]

    def __str__(self) -> str:
        return f"{self.report_id} r{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ImmutableRevision("a report revision is immutable; add a new revision instead")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableRevision("a report revision is never deleted")
