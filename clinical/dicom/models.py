"""DICOM studies, series and instances of a facility, the modalities (AE titles) allowed to send
them, and the access tokens DICOMweb clients use.

UIDs are unique per facility, not globally: the same study may legitimately reach two facilities
(a referral CD), and each facility's copy is its own record. File bytes are shared through the
content-addressed store, so the copy costs one row, not one file."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from clinical.models import Facility, Patient


class Source(models.TextChoices):
    STOW = "stow", _("STOW-RS")
    CSTORE = "cstore", _("C-STORE")
    UPLOAD = "upload", _("アップロード")


class DicomNode(models.Model):
    """A modality or PACS allowed to C-STORE to us. Its AE title decides the facility the objects
    belong to, so an AE title is registered to exactly one facility."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="dicom_nodes")
    ae_title = models.CharField(_("AE タイトル"), max_length=16, unique=True)
    # Empty means "any address"; otherwise associations from other hosts are refused.
    host = models.CharField(_("接続元ホスト"), max_length=100, blank=True)
    description = models.CharField(_("説明"), max_length=200, blank=True)
    is_active = models.BooleanField(_("有効"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("DICOM 送信元")
        verbose_name_plural = _("DICOM 送信元")
        constraints = [
            # AE titles are at most 16 characters of the default repertoire, no backslash, not blank.
            models.CheckConstraint(condition=~models.Q(ae_title=""), name="dicomnode_ae_title_not_blank"),
        ]

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.facility})"


class Study(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="dicom_studies")
    # Null while the PatientID did not match an examinee of the facility: the "unmatched" queue.
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="dicom_studies"
    )
    study_instance_uid = models.CharField(_("Study Instance UID"), max_length=64)
    # DICOM PatientID as sent; `patient` is our examinee it was matched to (or not yet).
    dicom_patient_id = models.CharField(_("Patient ID"), max_length=64, blank=True)
    # Full PN value with its component groups: "Yamada^Tarou=山田^太郎=やまだ^たろう".
    patient_name = models.CharField(_("患者氏名"), max_length=324, blank=True)
    patient_birth_date = models.CharField(_("生年月日"), max_length=8, blank=True)
    patient_sex = models.CharField(_("性別"), max_length=16, blank=True)
    study_date = models.DateField(_("検査日"), null=True, blank=True)
    study_time = models.CharField(_("検査時刻"), max_length=16, blank=True)
    accession_number = models.CharField(_("受付番号"), max_length=16, blank=True)
    study_id = models.CharField(_("Study ID"), max_length=16, blank=True)
    study_description = models.CharField(_("検査の説明"), max_length=64, blank=True)
    referring_physician_name = models.CharField(_("依頼医"), max_length=324, blank=True)
    # Kept up to date by ingest (under a row lock) so that a QIDO-RS study search is one query.
    modalities = models.CharField(_("モダリティ"), max_length=64, blank=True)  # "CT\\MR"
    n_series = models.PositiveIntegerField(default=0)
    n_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("検査 (DICOM)")
        verbose_name_plural = _("検査 (DICOM)")
        constraints = [
            models.UniqueConstraint(fields=["facility", "study_instance_uid"], name="study_uid_unique_per_facility"),
        ]
        indexes = [
            # QIDO's common searches: by PatientID (the modality worklist key), by date range,
            # by accession number; each ends with the default order so LIMIT stops early.
            models.Index(fields=["dicom_patient_id", "facility", "study_date", "id"], name="study_patient_id_idx"),
            models.Index(fields=["facility", "study_date", "id"], name="study_date_idx"),
            models.Index(fields=["accession_number", "facility"], name="study_accession_idx"),
            models.Index(fields=["study_instance_uid"], name="study_uid_idx"),
            models.Index(
                fields=["facility", "created_at"], name="study_unmatched_idx", condition=models.Q(patient__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return self.study_instance_uid


class Series(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(_("Series Instance UID"), max_length=64)
    modality = models.CharField(_("モダリティ"), max_length=16, blank=True)
    series_number = models.IntegerField(_("シリーズ番号"), null=True, blank=True)
    series_description = models.CharField(_("シリーズの説明"), max_length=64, blank=True)
    body_part_examined = models.CharField(_("部位"), max_length=16, blank=True)
    series_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("シリーズ")
        verbose_name_plural = _("シリーズ")
        constraints = [
            models.UniqueConstraint(
                fields=["facility", "series_instance_uid"], name="series_uid_unique_per_facility"
            ),
        ]
        indexes = [
            # ModalitiesInStudy: "studies having a series of modality X".
            models.Index(fields=["modality", "study"], name="series_modality_idx"),
            models.Index(fields=["series_instance_uid"], name="series_uid_idx"),
        ]

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="instances")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(_("SOP Instance UID"), max_length=64)
    sop_class_uid = models.CharField(_("SOP Class UID"), max_length=64)
    transfer_syntax_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=0)  # 0: no pixel data
    has_waveform = models.BooleanField(default=False)
    sha256 = models.CharField(max_length=64, db_index=True)  # key in the content-addressed store
    size = models.PositiveBigIntegerField()
    source = models.CharField(max_length=10, choices=Source.choices)
    # DICOM JSON (PS3.18 F.2) of the whole object, bulk data by URI. Filled on first WADO-RS
    # metadata read rather than at ingest: building it costs several times the rest of ingest.
    metadata = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("インスタンス")
        verbose_name_plural = _("インスタンス")
        constraints = [
            models.UniqueConstraint(fields=["facility", "sop_instance_uid"], name="instance_uid_unique_per_facility"),
        ]
        indexes = [
            models.Index(fields=["series", "instance_number", "id"], name="instance_order_idx"),
            models.Index(fields=["sop_instance_uid"], name="instance_uid_idx"),
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class AccessToken(models.Model):
    """A bearer token for DICOMweb clients (modalities, PACS, scripts) that cannot do the
    browser's password + TOTP login. Only its SHA-256 is stored; it acts as its user, with that
    user's facility scope."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dicom_tokens")
    name = models.CharField(_("名前"), max_length=100)
    key_sha256 = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(_("有効"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("DICOMweb アクセストークン")
        verbose_name_plural = _("DICOMweb アクセストークン")

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"
