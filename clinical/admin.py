"""Django admin for the reference data administrators maintain (mapping profiles). Every change
through the admin is a write: it is audited like any other."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.auth.password import reset_second_factor
from clinical.models import MappingProfile, User


@admin.register(MappingProfile)
class MappingProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "facility")
    list_filter = ("facility",)

    def save_model(self, request: HttpRequest, obj: MappingProfile, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(kind=EventKind.UPDATE if change else EventKind.CREATE, user=request.user,
                     facility_id=obj.facility_id, object_type="clinical.mappingprofile", object_id=obj.pk,
                     details={"columns": obj.columns})


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Administrators manage accounts here; "reset 2FA" ends the user's sessions (clinical.auth.password)."""

    fieldsets = (*(DjangoUserAdmin.fieldsets or ()), (_("氏名"), {"fields": ("display_name", "display_name_kana")}))
    list_display = ("username", "display_name", "is_active", "last_login")
    actions = [reset_second_factor]
