"""Writes of the administration screens: users, memberships, facilities (house rule 1).

Each service checks the actor's authority itself, as a second lock behind the view's scoping: a
facility administrator acts only on memberships of the facilities they administer, and on a whole
account (deactivation, second-factor reset) only when every one of its memberships is at such a
facility, because an account shared with another facility belongs to that facility's
administrators too."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.auth.password import user_second_factor_reset, user_sessions_end
from clinical.models import Facility, Membership, Role, User
from clinical.scoping import facility_ids_for, role_at
from clinical.services import (
    LastAdminRefused,
    lock_admins,
    membership_grant,
    membership_revoke,
    other_active_admins,
    user_create,
)

ADMIN_PERM = "administer_facility"


class AdminRefused(ValueError):
    """The action is not allowed; the message says why, in words an administrator can act on."""


def _administered(actor: Any) -> list[int]:
    return facility_ids_for(actor, ADMIN_PERM)


def _require_facility(actor: Any, facility_id: int) -> None:
    if facility_id not in _administered(actor):
        raise AdminRefused(_("この施設を管理する権限がありません。"))


def _target_facilities(user: User) -> set[int]:
    return set(Membership.objects.filter(user=user).values_list("facility_id", flat=True))


def _require_account_authority(actor: Any, user: User) -> set[int]:
    """The target's facilities, if the actor administers every one of them."""
    if user.is_superuser and not getattr(actor, "is_superuser", False):
        raise AdminRefused(_("システム管理者のアカウントは変更できません。"))
    facilities = _target_facilities(user)
    if not facilities or not facilities <= set(_administered(actor)):
        raise AdminRefused(_("この利用者は管理していない施設にも所属しています。"
                             "アカウント全体の操作はその施設の管理者と相談してください（所属の取り消しはできます）。"))
    return facilities


def _audit_facility(facilities: set[int]) -> int | None:
    # One facility: the event belongs to its trail, where that facility's auditors look for it.
    return next(iter(facilities)) if len(facilities) == 1 else None


def user_create_with_membership(
    *, username: str, password: str, facility: Facility, role: str, actor: User, display_name: str = "",
    display_name_kana: str = "", email: str = "",
) -> User:
    """A new account with its first role: one transaction, so no account exists without a facility
    (which no facility administrator could see or manage)."""
    _require_facility(actor, facility.pk)
    if role not in Role.values:
        raise AdminRefused(_("役割が正しくありません。"))
    with transaction.atomic():
        user = user_create(username=username, password=password, display_name=display_name,
                           display_name_kana=display_name_kana, email=email, actor=actor)
        membership_grant(user=user, facility=facility, role=role, actor=actor)
    return user


def membership_add(*, user: User, facility: Facility, role: str, actor: User) -> Membership:
    _require_facility(actor, facility.pk)
    if role not in Role.values:
        raise AdminRefused(_("役割が正しくありません。"))
    if Membership.objects.filter(user=user, facility=facility, role=role).exists():
        raise AdminRefused(_("%(user)s はすでに %(facility)s の%(role)sです。")
                           % {"user": user, "facility": facility.name, "role": Role(role).label})
    return membership_grant(user=user, facility=facility, role=role, actor=actor)


def membership_remove(*, membership: Membership, actor: User) -> None:
    _require_facility(actor, membership.facility_id)
    try:
        membership_revoke(membership=membership, actor=actor)
    except LastAdminRefused as exc:
        raise AdminRefused(str(exc)) from exc


def _refuse_orphaning(user: User) -> None:
    """Refuse to deactivate the last active administrator of any facility."""
    admin_at = sorted(Membership.objects.filter(user=user, role=Role.ADMIN).values_list("facility_id", flat=True))
    lock_admins(admin_at)
    orphaned = [fid for fid in admin_at if not other_active_admins(facility_id=fid, user_id=user.pk)]
    if orphaned:
        names = "、".join(Facility.objects.filter(pk__in=orphaned).order_by("code").values_list("name", flat=True))
        raise AdminRefused(_("%(facilities)s の最後の管理者のため無効にできません。"
                             "先に別の利用者を管理者にしてください。") % {"facilities": names})


def user_set_active(*, user: User, active: bool, actor: User) -> int:
    """Deactivate (ending every session at once) or reactivate an account. Returns the number of
    sessions ended."""
    if user.pk == actor.pk:
        raise AdminRefused(_("自分自身のアカウントは無効にできません。"))
    facilities = _require_account_authority(actor, user)
    with transaction.atomic():
        before = User.objects.select_for_update().values_list("is_active", flat=True).get(pk=user.pk)
        if before == active:
            raise AdminRefused(_("すでに有効です。") if active else _("すでに無効です。"))
        if not active:
            _refuse_orphaning(user)
        user.is_active = active
        user.save(update_fields=["is_active"])
        ended = 0 if active else user_sessions_end(user=user)
        facility_id = _audit_facility(facilities)
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, facility_id), facility_id=facility_id,
                     object_type="clinical.user", object_id=user.pk,
                     details={"change": "reactivated" if active else "deactivated", "target": user.get_username(),
                              "is_active": [before, active], "sessions_ended": ended})
    return ended


def user_sessions_terminate(*, user: User, actor: User, keep_session_key: str | None = None) -> int:
    """End every session of `user` now (a lost terminal, a suspected shared password). Any user with
    a membership at an administered facility: ending sessions only makes them sign in again.
    `keep_session_key`: the actor's own session, when they end their own others."""
    facilities = _target_facilities(user) & set(_administered(actor))
    if not facilities:
        raise AdminRefused(_("この利用者を管理する権限がありません。"))
    with transaction.atomic():
        ended = user_sessions_end(user=user, keep_session_key=keep_session_key)
        facility_id = _audit_facility(facilities)
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, facility_id), facility_id=facility_id,
                     object_type="clinical.user", object_id=user.pk,
                     details={"change": "sessions_ended", "target": user.get_username(), "sessions_ended": ended})
    return ended


def user_second_factor_revoke(*, user: User, actor: User) -> int:
    """Remove the user's TOTP devices (they enrol again at next sign-in) and end their sessions;
    the audit event comes from `user_second_factor_reset`. Returns the sessions ended."""
    _require_account_authority(actor, user)
    return user_second_factor_reset(user=user, by=actor)


def facility_update(*, facility: Facility, name: str, actor: User) -> Facility:
    _require_facility(actor, facility.pk)
    name = name.strip()
    if not name:
        raise AdminRefused(_("施設名を入力してください。"))
    with transaction.atomic():
        before = facility.name
        facility.name = name
        facility.full_clean()
        facility.save(update_fields=["name"])
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, facility.pk), facility_id=facility.pk,
                     object_type="clinical.facility", object_id=facility.pk,
                     details={"changed": {"name": [before, name]}})
    return facility
