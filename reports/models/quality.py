"""What the physician did with a model's draft, stored at each sign-off for the AI quality dashboard
(issue 7): edit distance, sentences kept / edited / deleted / added, grounding warnings, time to sign."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from clinical.models import Facility
from inference.models import ModelVersion
from reports.models.signoff import SignOff


class ReportQuality(models.Model):
    signoff = models.OneToOneField(SignOff, on_delete=models.PROTECT, related_name="quality")
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+")
    # The model whose draft this report started from; null for reports written by hand.
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True,
                                      related_name="quality")
    task = models.CharField(max_length=30)
    signed_at = models.DateTimeField(db_index=True)
    is_amendment = models.BooleanField(default=False)
    draft_chars = models.PositiveIntegerField()
    final_chars = models.PositiveIntegerField()
    edit_distance = models.PositiveIntegerField(_("編集距離（文字）"))
    sentences_kept = models.PositiveIntegerField(default=0)
    sentences_edited = models.PositiveIntegerField(default=0)
    sentences_deleted = models.PositiveIntegerField(default=0)
    sentences_added = models.PositiveIntegerField(default=0)
    grounding_warnings = models.PositiveIntegerField(_("数値照合の警告（下書き）"), default=0)
    grounding_confirmed = models.PositiveIntegerField(_("確認して残した数値"), default=0)
    seconds_to_sign = models.FloatField(_("署名までの秒数"), null=True, blank=True)
    revisions = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [models.Index(fields=["model_version", "task", "signed_at"], name="quality_by_model")]
        verbose_name = _("AI下書きの品質")
        verbose_name_plural = _("AI下書きの品質")

    def __str__(self) -> str:
        return f"quality of sign-off {self.signoff_id}"

    @property
    def signed_without_edits(self) -> bool:
        return self.edit_distance == 0
