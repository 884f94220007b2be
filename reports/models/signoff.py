"""A physician's signature on one revision: who, when, how they re-authenticated, and a SHA-256 over
the canonical content they signed (reports/canonical.py). Never updated or deleted; on PostgreSQL a
trigger refuses it too, and `report_verify` recomputes every hash."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from reports.models.report import ImmutableRevision, Report, ReportRevision


class ReauthMethod(models.TextChoices):
    PASSWORD = "password", _("パスワード")
    TOTP = "totp", _("ワンタイムパスワード")


class SignOff(models.Model):
    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="signoffs")
    revision = models.OneToOneField(ReportRevision, on_delete=models.PROTECT, related_name="signoff")
    physician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                  verbose_name=_("署名医"))
    signed_at = models.DateTimeField(_("署名日時"))
    method = models.CharField(_("再認証"), max_length=10, choices=ReauthMethod.choices)
    # Grounding flags the physician looked at and confirmed as correct ("start:text" keys).
    confirmed_numbers = models.JSONField(_("確認済みの数値"), default=list, blank=True)
    amends = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="amended_by", verbose_name=_("修正元の署名"))
    reason = models.TextField(_("修正理由"), blank=True)
    canonical_version = models.PositiveSmallIntegerField(default=1)
    content_sha256 = models.CharField(_("内容のSHA-256"), max_length=64)

    class Meta:
        ordering = ["report_id", "signed_at"]
        verbose_name = _("署名")
        verbose_name_plural = _("署名")

    def __str__(self) -> str:
        return f"{self.report_id} r{self.revision_id} {self.content_sha256[:12]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ImmutableRevision("a sign-off is immutable; amend the report instead")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableRevision("a sign-off is never deleted")
