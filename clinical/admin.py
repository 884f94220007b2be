"""Django admin for the reference data administrators maintain (mapping profiles). Every change
through the admin is a write: it is audited like any other."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.models import MappingProfile


@admin.register(MappingProfile)
class MappingProfileAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "facility")
    list_filter = ("facility",)

    def save_model(self, request: HttpRequest, obj: MappingProfile, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(kind=EventKind.UPDATE if change else EventKind.CREATE, user=request.user,
                     facility_id=obj.facility_id, object_type="clinical.mappingprofile", object_id=obj.pk,
                     details={"columns": obj.columns})
