"""Writes for identities and patients (house rule 1): keyword-only, typed, atomic, audited in the
same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.models import Facility, Membership, Patient, Role, User
from clinical.roles import perms_for
from clinical.scoping import role_at

PATIENT_FIELDS = ("mrn", "family_name", "given_name", "family_name_kana", "given_name_kana", "sex", "birth_date")


def user_create(
    *, username: str, password: str, display_name: str = "", display_name_kana: str = "",
    email: str = "", actor: User | None = None,
) -> User:
    user = User(username=username, display_name=display_name, display_name_kana=display_name_kana, email=email)
    validate_password(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save()
        audit_record(kind=EventKind.CREATE, user=actor, object_type="clinical.user", object_id=user.pk,
                     details={"username": username})
    return user


def facility_create(*, code: str, name: str, actor: User | None = None) -> Facility:
    with transaction.atomic():
        facility = Facility.objects.create(code=code, name=name)
        audit_record(kind=EventKind.CREATE, user=actor, facility_id=facility.pk, object_type="clinical.facility",
                     object_id=facility.pk, details={"code": code})
    return facility


def membership_grant(*, user: User, facility: Facility, role: str, actor: User | None = None) -> Membership:
    """Give `user` a role at `facility`: the membership row and its guardian object permissions."""
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, facility=facility, role=role)
        for perm in perms_for(role):
            assign_perm(f"clinical.{perm}", user, facility)
        if created:
            audit_record(
                kind=EventKind.PERMISSION_CHANGE, user=actor, facility_id=facility.pk,
                object_type="clinical.membership", object_id=membership.pk,
                details={"action": "grant", "user_id": user.pk, "role": role},
            )
    user.__dict__.pop("_facility_ids_cache", None)
    return membership


class LastAdminRefused(ValueError):
    """Removing this role would leave a facility with no active administrator, and nobody could
    then manage its users (only a superuser could repair it)."""


def lock_admins(facility_ids: list[int]) -> None:
    """Lock the admin memberships of these facilities, so two concurrent removals cannot each see
    the other as the remaining administrator."""
    list(Membership.objects.select_for_update().filter(facility_id__in=facility_ids, role=Role.ADMIN)
         .values_list("id", flat=True))


def other_active_admins(*, facility_id: int, user_id: int) -> int:
    return Membership.objects.filter(facility_id=facility_id, role=Role.ADMIN, user__is_active=True).exclude(
        user_id=user_id).count()


def membership_revoke(*, membership: Membership, actor: User | None = None) -> None:
    with transaction.atomic():
        user, facility, role = membership.user, membership.facility, membership.role
        if role == Role.ADMIN and user.is_active:  # an inactive admin administers nothing already
            lock_admins([facility.pk])
            if not other_active_admins(facility_id=facility.pk, user_id=user.pk):
                raise LastAdminRefused(_(
                    "%(facility)s の最後の管理者のため、管理者の役割を取り消せません。"
                    "先に別の利用者を管理者にしてください。") % {"facility": facility.name})
        membership_id = membership.pk
        membership.delete()
        remaining = set(Membership.objects.filter(user=user, facility=facility).values_list("role", flat=True))
        still_granted = {p for r in remaining for p in perms_for(r)}
        for perm in set(perms_for(role)) - still_granted:
            remove_perm(f"clinical.{perm}", user, facility)
        audit_record(
            kind=EventKind.PERMISSION_CHANGE, user=actor, facility_id=facility.pk,
            object_type="clinical.membership", object_id=membership_id,
            details={"action": "revoke", "user_id": user.pk, "role": role},
        )
    user.__dict__.pop("_facility_ids_cache", None)


def patient_create(
    *, facility: Facility, mrn: str, family_name: str, given_name: str, family_name_kana: str,
    given_name_kana: str, sex: str, birth_date: dt.date, actor: User,
) -> Patient:
    patient = Patient(
        facility=facility, mrn=mrn, family_name=family_name, given_name=given_name,
        family_name_kana=family_name_kana, given_name_kana=given_name_kana, sex=sex, birth_date=birth_date,
    )
    patient.full_clean()
    with transaction.atomic():
        patient.save()
        audit_record(kind=EventKind.CREATE, user=actor, role=role_at(actor, facility.pk), facility_id=facility.pk,
                     object_type="clinical.patient", object_id=patient.pk, patient_id=patient.pk,
                     details={"mrn": mrn})
    return patient


def patient_update(*, patient: Patient, actor: User, **changes: Any) -> Patient:
    unknown = set(changes) - set(PATIENT_FIELDS)
    if unknown:
        raise ValueError(f"更新できない項目です: {', '.join(sorted(unknown))}")
    before = {name: getattr(patient, name) for name in changes}
    for name, value in changes.items():
        setattr(patient, name, value)
    patient.full_clean()
    changed = {k: [str(before[k]), str(v)] for k, v in changes.items() if before[k] != v}
    with transaction.atomic():
        patient.save()
        # The audit row names which fields changed from what to what: a corrected birth date
        # must be traceable to who corrected it.
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, patient.facility_id),
                     facility_id=patient.facility_id, object_type="clinical.patient", object_id=patient.pk,
                     patient_id=patient.pk, details={"changed": changed})
    return patient
