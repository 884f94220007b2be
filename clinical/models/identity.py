"""Who may use the system, and for which facility in which role."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    STAFF = "staff", _("健診スタッフ")
    PHYSICIAN = "physician", _("医師")
    ADMIN = "admin", _("管理者")
    AUDITOR = "auditor", _("監査担当")


class User(AbstractUser):
    """Unique user id per person (MHLW guideline). Names are kept in kanji and kana because
    Japanese records are matched and sorted by reading."""

    display_name = models.CharField(_("氏名（漢字）"), max_length=100, blank=True)
    display_name_kana = models.CharField(_("氏名（カナ）"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("利用者")
        verbose_name_plural = _("利用者")

    def __str__(self) -> str:
        return self.display_name or self.username


class Facility(models.Model):
    code = models.CharField(_("施設コード"), max_length=20, unique=True)
    name = models.CharField(_("施設名"), max_length=200)
    is_active = models.BooleanField(_("有効"), default=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("施設")
        verbose_name_plural = _("施設")
        # Object-level permissions granted through django-guardian by role (clinical.roles).
        permissions = [
            ("access_facility", _("施設のデータを閲覧できる")),
            ("manage_patients", _("受診者を登録・更新できる")),
            ("import_checkups", _("健診データを取り込める")),
            ("sign_reports", _("所見に署名できる")),
            ("administer_facility", _("施設を管理できる")),
            ("review_audit", _("監査ログを閲覧できる")),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("役割"), max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("所属")
        verbose_name_plural = _("所属")
        constraints = [
            models.UniqueConstraint(fields=["user", "facility", "role"], name="membership_unique_role"),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.facility} ({self.get_role_display()})"
