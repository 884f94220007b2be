from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from clinical.models.identity import Facility


class Sex(models.TextChoices):
    MALE = "M", _("男")
    FEMALE = "F", _("女")


class Patient(models.Model):
    """An examinee (受診者), always of exactly one facility: MRN (受診者番号) is unique per facility."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField(_("受診者番号"), max_length=40)
    family_name = models.CharField(_("姓"), max_length=50)
    given_name = models.CharField(_("名"), max_length=50)
    family_name_kana = models.CharField(_("姓（カナ）"), max_length=50)
    given_name_kana = models.CharField(_("名（カナ）"), max_length=50)
    sex = models.CharField(_("性別"), max_length=1, choices=Sex.choices)
    birth_date = models.DateField(_("生年月日"))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["facility_id", "family_name_kana", "given_name_kana", "id"]
        verbose_name = _("受診者")
        verbose_name_plural = _("受診者")
        constraints = [
            models.UniqueConstraint(fields=["facility", "mrn"], name="patient_mrn_unique_per_facility"),
            models.CheckConstraint(condition=models.Q(sex__in=["M", "F"]), name="patient_sex_valid"),
            models.CheckConstraint(condition=~models.Q(mrn=""), name="patient_mrn_not_blank"),
        ]
        indexes = [models.Index(fields=["facility", "family_name_kana", "given_name_kana"])]

    def __str__(self) -> str:
        return f"{self.family_name} {self.given_name}"

    @property
    def full_name(self) -> str:
        return f"{self.family_name} {self.given_name}"

    @property
    def full_name_kana(self) -> str:
        return f"{self.family_name_kana} {self.given_name_kana}"
