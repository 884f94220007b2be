"""Changing a password and resetting a second factor end the user's other sessions (OWASP ASVS 5.0
L2: sessions are terminated when an authentication factor changes). Django already rejects a
session whose password hash is stale on its next request; we delete the sessions outright so the
effect is immediate, counted in the audit trail, and also covers the 2FA reset (which changes no
password hash)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import devices_for_user

from audit.kinds import EventKind, Outcome
from audit.services import audit_record


def user_sessions_end(*, user: Any, keep_session_key: str | None = None) -> int:
    """Delete every live session of `user` except `keep_session_key`. Returns how many ended."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    ended = 0
    user_pk = str(user.pk)
    # Sessions are opaque blobs: decoding each live one is the price of not keeping a user→session
    # index; a checkup center has hundreds of live sessions, not millions.
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=500):
        if session.session_key == keep_session_key:
            continue
        if str(session.get_decoded().get("_auth_user_id", "")) == user_pk:
            store(session_key=session.session_key).delete()
            ended += 1
    return ended


def user_password_change(*, user: Any, new_password: str, keep_session_key: str | None = None) -> int:
    """Set the password (validated by the caller's form), end the other sessions, audit. Returns
    the number of sessions ended."""
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        ended = user_sessions_end(user=user, keep_session_key=keep_session_key)
        audit_record(kind=EventKind.UPDATE, user=user, object_type="clinical.user", object_id=user.pk,
                     details={"change": "password", "sessions_ended": ended})
    return ended


def user_second_factor_reset(*, user: Any, by: Any) -> int:
    """Remove every TOTP device of `user` (they enrol again at next login) and end all their
    sessions. Returns the number of sessions ended."""
    with transaction.atomic():
        devices = list(devices_for_user(user, confirmed=None))
        for device in devices:
            device.delete()
        ended = user_sessions_end(user=user)
        audit_record(kind=EventKind.UPDATE, user=by, object_type="clinical.user", object_id=user.pk,
                     details={"change": "second_factor_reset", "devices_removed": len(devices),
                              "sessions_ended": ended, "target": user.get_username()})
    return ended


@admin.action(description=gettext_lazy("二要素認証をリセット（すべてのセッションを終了）"), permissions=["change"])
def reset_second_factor(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    """Admin action for the User admin: `actions = [reset_second_factor]`."""
    total = 0
    for user in queryset:
        user_second_factor_reset(user=user, by=request.user)
        total += 1
    modeladmin.message_user(request, _("%(n)d 人の二要素認証をリセットしました。次回ログイン時に再登録が必要です。")
                            % {"n": total}, messages.SUCCESS)


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    # Django's form checks the old password and runs AUTH_PASSWORD_VALIDATORS; the service saves.
    form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            ended = user_password_change(user=user, new_password=form.cleaned_data["new_password1"],
                                         keep_session_key=request.session.session_key)
            # Keeps this session valid under the new password hash (and cycles its key).
            update_session_auth_hash(request, user)
            messages.success(request, _("パスワードを変更しました。ほかの端末のセッション %(n)d 件を終了しました。")
                             % {"n": ended})
            return redirect("password_change_done")
        audit_record(kind=EventKind.UPDATE, outcome=Outcome.FAILURE, user=user,
                     object_type="clinical.user", object_id=user.pk,
                     details={"change": "password", "errors": sorted(form.errors.keys())})
    return render(request, "registration/password_change_form.html", {"form": form})


@login_required
def password_change_done(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/password_change_done.html")

