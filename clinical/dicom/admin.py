from django.contrib import admin

from clinical.dicom.models import AccessToken, DicomNode, Study


@admin.register(DicomNode)
class DicomNodeAdmin(admin.ModelAdmin):
    list_display = ("ae_title", "facility", "host", "is_active", "description")
    list_filter = ("facility", "is_active")


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    # Tokens are issued with `manage.py dicom_token` (the secret is shown once); here only revoked.
    list_display = ("name", "user", "is_active", "created_at")
    readonly_fields = ("user", "name", "key_sha256", "created_at")

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("study_instance_uid", "facility", "dicom_patient_id", "patient", "study_date")
    list_filter = ("facility",)
    raw_id_fields = ("patient",)
    search_fields = ("=dicom_patient_id", "=study_instance_uid", "=accession_number")
