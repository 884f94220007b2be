"""The append-only, hash-chained audit log.

Audit rows refer to users, facilities and patients by id and copy the names they need: the log
must outlive (and never cascade with) the rows it describes, and `audit` knows no other app.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.utils.translation import gettext_lazy as _

from audit.kinds import EventKind, Outcome


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit row."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("監査ログは追記のみです（更新できません）")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("監査ログは追記のみです（削除できません）")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("監査ログは追記のみです（更新できません）")


class AuditEvent(models.Model):
    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(_("日時 (UTC)"), db_index=True)
    kind = models.CharField(_("種別"), max_length=40, choices=EventKind.choices)
    outcome = models.CharField(_("結果"), max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    user_id = models.BigIntegerField(_("利用者ID"), null=True, blank=True)
    username = models.CharField(_("利用者名"), max_length=150, blank=True)
    role = models.CharField(_("役割"), max_length=20, blank=True)
    facility_id = models.BigIntegerField(_("施設ID"), null=True, blank=True)
    source_ip = models.GenericIPAddressField(_("接続元IP"), null=True, blank=True)
    request_id = models.CharField(_("リクエストID"), max_length=32, blank=True)
    channel = models.CharField(_("経路"), max_length=12, blank=True)
    object_type = models.CharField(_("対象種別"), max_length=60, blank=True)
    object_id = models.CharField(_("対象ID"), max_length=64, blank=True)
    patient_id = models.BigIntegerField(_("受診者ID"), null=True, blank=True)
    details = models.JSONField(_("詳細"), default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name = _("監査イベント")
        verbose_name_plural = _("監査イベント")
        indexes = [
            models.Index(fields=["patient_id", "-occurred_at"], name="audit_patient_time"),
            models.Index(fields=["user_id", "-occurred_at"], name="audit_user_time"),
            models.Index(fields=["kind", "-occurred_at"], name="audit_kind_time"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.outcome} {self.username}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("監査ログは追記のみです（更新できません）")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("監査ログは追記のみです（削除できません）")


class AuditChainHead(models.Model):
    """The end of the chain: one row, locked by every audit write so the chain is strictly
    ordered, and the place `audit_verify` checks that no row was cut off the tail."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_singleton")]

    def __str__(self) -> str:
        return f"chain head #{self.last_seq}"
