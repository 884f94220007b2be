"""The model registry and the job rows. The row is the truth for a job (house rule 4): the broker
carries only its id, and every state change is a conditional update on this table."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from clinical.dicom.models import Study
from clinical.models import CheckupVisit, Facility, Patient


class EngineKind(models.TextChoices):
    TEMPLATE = "template", _("テンプレート（定型文、AIモデルではありません）")
    TRANSFORMERS = "transformers", _("Transformers（院内GPU）")
    OPENAI = "openai", _("OpenAI互換サーバ（vLLM）")


class ModelVersion(models.Model):
    """One registered drafter. `engine` + `location` + `options` are exactly what
    `ml.engines.build_engine` takes; the registry adds what provenance needs (weights hash,
    prompt version) and where its jobs run (`queue`)."""

    name = models.CharField(_("名前"), max_length=100)
    version = models.CharField(_("版"), max_length=50)
    tasks = models.JSONField(_("タスク"), default=list)  # ["cxr", "checkup_summary", …]
    modalities = models.JSONField(_("モダリティ"), default=list, blank=True)  # ["CR", "DX"]
    # Not limited to EngineKind at the database level: tests register stub kinds in the engine pool.
    engine = models.CharField(_("エンジン"), max_length=30)
    location = models.CharField(_("所在（パス/URL）"), max_length=500)
    options = models.JSONField(_("エンジン設定"), default=dict, blank=True)
    weights_sha256 = models.CharField(_("重みのSHA-256"), max_length=64, blank=True)
    prompt_version = models.CharField(_("プロンプト版"), max_length=50, blank=True)  # blank: latest per task
    queue = models.CharField(_("キュー"), max_length=20, default="gpu")
    max_new_tokens = models.PositiveIntegerField(_("最大生成トークン数"), default=512)
    enabled = models.BooleanField(_("有効"), default=False)
    # A shadow model drafts for comparison only: its drafts never reach physicians.
    shadow = models.BooleanField(_("シャドー"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-created_at"]
        verbose_name = _("モデル版")
        verbose_name_plural = _("モデル版")
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="modelversion_unique_name_version")]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def is_template(self) -> bool:
        return self.engine == EngineKind.TEMPLATE


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("待機中")
    RUNNING = "running", _("生成中")
    SUCCEEDED = "succeeded", _("完了")
    FAILED = "failed", _("失敗")
    CANCELLED = "cancelled", _("中止")


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class InferenceJob(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    visit = models.ForeignKey(CheckupVisit, on_delete=models.CASCADE, null=True, blank=True,
                              related_name="inference_jobs")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, null=True, blank=True, related_name="inference_jobs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    task = models.CharField(_("タスク"), max_length=30)
    status = models.CharField(_("状態"), max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempts = models.PositiveIntegerField(_("試行回数"), default=0)
    # QUEUED: when the sweeper re-sends the message if nobody claimed it; RUNNING: when the
    # claim lapses unless the worker's heartbeat renews it.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    partial_text = models.TextField(blank=True)
    error = models.TextField(_("エラー"), blank=True)
    # Provenance of the draft, kept on the job so any consumer (reports) can record it.
    prompt_version = models.CharField(max_length=50, blank=True)
    inputs = models.JSONField(default=dict, blank=True)  # {"sha256": …, "summary": {…}}
    reference_data = models.JSONField(default=dict, blank=True)
    findings = models.JSONField(null=True, blank=True)  # the parsed draft
    report_text = models.TextField(blank=True)
    grounding = models.JSONField(default=dict, blank=True)  # {"checked": n, "issues": [...]}
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")

    class Meta:
        ordering = ["-queued_at", "-id"]
        verbose_name = _("推論ジョブ")
        verbose_name_plural = _("推論ジョブ")
        constraints = [
            models.CheckConstraint(condition=Q(visit__isnull=False) | Q(study__isnull=False),
                                   name="inferencejob_has_target"),
            # One live job per target and model: a second click or a re-import does not queue twice.
            models.UniqueConstraint(fields=["model_version", "visit"], condition=Q(status__in=["queued", "running"]),
                                    name="inferencejob_one_active_per_visit"),
            models.UniqueConstraint(fields=["model_version", "study"], condition=Q(status__in=["queued", "running"]),
                                    name="inferencejob_one_active_per_study"),
        ]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="inferencejob_sweep"),
            models.Index(fields=["facility", "-finished_at"], name="inferencejob_worklist"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def flagged(self) -> bool:
        return bool((self.grounding or {}).get("issues"))


class FacilityDraftPolicy(models.Model):
    """Per facility: whether arriving visits/studies are drafted automatically. No row = the
    default (`settings.INFERENCE_AUTO_DRAFT`, on unless configured otherwise)."""

    facility = models.OneToOneField(Facility, on_delete=models.CASCADE, related_name="draft_policy")
    auto_draft_visits = models.BooleanField(_("受診の自動下書き"), default=True)
    auto_draft_studies = models.BooleanField(_("画像検査の自動下書き"), default=True)

    class Meta:
        verbose_name = _("自動下書きの設定")
        verbose_name_plural = _("自動下書きの設定")

    def __str__(self) -> str:
        return str(self.facility)
