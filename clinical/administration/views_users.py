"""Users and their memberships, for facility administrators (thin: scope, call a service, render).
A refused action is shown on the page it came from, with the reason, and audited as denied."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical import services_admin
from clinical.administration import selectors as sel
from clinical.administration.forms import MembershipForm, UserCreateForm
from clinical.models import Role, User
from clinical.services_admin import AdminRefused


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def refused(request: HttpRequest, exc: AdminRefused, *, kind: EventKind, object_type: str, object_id: Any,
            action: str) -> None:
    """Show the reason and keep a denied event: a refused permission change is worth a trail too."""
    messages.error(request, str(exc))
    audit_record(kind=kind, outcome=Outcome.DENIED, object_type=object_type, object_id=object_id,
                 details={"action": action, "refused": str(exc)})


@login_required
def user_list(request: HttpRequest) -> HttpResponse:
    ids = sel.require_administrator(request.user, path=request.path)
    facilities = list(sel.administered_facilities(ids))
    query = request.GET.get("q", "").strip()[:100]
    facility_id = _int(request.GET.get("facility"))
    if facility_id not in ids:
        facility_id = None
    page = Paginator(sel.users_for(ids, q=query, facility_id=facility_id), sel.USERS_PER_PAGE).get_page(
        request.GET.get("page"))
    return render(request, "administration/user_list.html", {
        "page": page, "query": query, "facilities": facilities, "facility_id": facility_id})


@sensitive_post_parameters("password1", "password2")
@login_required
def user_create(request: HttpRequest) -> HttpResponse:
    ids = sel.require_administrator(request.user, path=request.path)
    form = UserCreateForm(request.POST or None, facility_ids=ids)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = services_admin.user_create_with_membership(
                    username=data["username"], password=data["password1"], facility=data["facility"],
                    role=data["role"], display_name=data["display_name"],
                    display_name_kana=data["display_name_kana"], email=data["email"],
                    actor=request.user,  # type: ignore[arg-type]
                )
            except IntegrityError:  # the same id registered a moment ago by someone else
                form.add_error("username", _("この利用者IDはすでに使われています。"))
            except AdminRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("利用者 %(username)s を登録しました。") % {"username": user.username})
                return redirect("administration_user_detail", pk=user.pk)
    return render(request, "administration/user_form.html", {"form": form}, status=status)


def _detail(request: HttpRequest, user: User, *, grant_form: MembershipForm | None = None,
            status: int = 200) -> HttpResponse:
    ids = sel.administered_ids(request.user)
    return render(request, "administration/user_detail.html", {
        "target": user, "grant_form": grant_form or MembershipForm(facility_ids=ids),
        "is_self": user.pk == request.user.pk,
    }, status=status)


@login_required
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    return _detail(request, sel.user_for(request.user, pk))


@login_required
@require_POST
def membership_grant(request: HttpRequest, pk: int) -> HttpResponse:
    ids = sel.require_administrator(request.user, path=request.path)
    user = sel.user_for(request.user, pk)
    form = MembershipForm(request.POST, facility_ids=ids)
    if not form.is_valid():
        return _detail(request, user, grant_form=form, status=400)
    facility, role = form.cleaned_data["facility"], form.cleaned_data["role"]
    actor: Any = request.user
    try:
        services_admin.membership_add(user=user, facility=facility, role=role, actor=actor)
    except AdminRefused as exc:
        refused(request, exc, kind=EventKind.PERMISSION_CHANGE, object_type="clinical.user", object_id=user.pk,
                action="grant")
        return _detail(request, sel.user_for(request.user, pk), grant_form=form, status=409)
    messages.success(request, _("%(facility)s の%(role)sの役割を付与しました。")
                     % {"facility": facility.name, "role": Role(role).label})
    return redirect("administration_user_detail", pk=user.pk)


@login_required
@require_POST
def membership_revoke(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    membership = sel.membership_for(request.user, user_pk=pk, pk=membership_pk)
    try:
        services_admin.membership_remove(membership=membership, actor=request.user)  # type: ignore[arg-type]
    except AdminRefused as exc:
        refused(request, exc, kind=EventKind.PERMISSION_CHANGE, object_type="clinical.membership",
                object_id=membership.pk, action="revoke")
        return _detail(request, sel.user_for(request.user, pk), status=409)
    messages.success(request, _("%(facility)s の%(role)sの役割を取り消しました。")
                     % {"facility": membership.facility.name, "role": membership.get_role_display()})
    if membership.user_id == request.user.pk and membership.role == Role.ADMIN:
        return redirect("home")  # the administrator gave up their own role here
    if sel.users_for(sel.administered_ids(request.user)).filter(pk=pk).exists():
        return redirect("administration_user_detail", pk=pk)
    return redirect("administration_user_list")  # no longer one of ours


@login_required
@require_POST
def user_set_active(request: HttpRequest, pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    user = sel.user_for(request.user, pk)
    active = request.POST.get("active") == "1"
    try:
        ended = services_admin.user_set_active(user=user, active=active, actor=request.user)  # type: ignore[arg-type]
    except AdminRefused as exc:
        refused(request, exc, kind=EventKind.UPDATE, object_type="clinical.user", object_id=user.pk,
                action="activate" if active else "deactivate")
        return _detail(request, user, status=409)
    if active:
        messages.success(request, _("%(user)s を有効にしました。") % {"user": user})
    else:
        messages.success(request, _("%(user)s を無効にしました。セッション %(n)d 件を終了しました。")
                         % {"user": user, "n": ended})
    return redirect("administration_user_detail", pk=pk)


@login_required
@require_POST
def user_sessions_end(request: HttpRequest, pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    user = sel.user_for(request.user, pk)
    # Ending one's own sessions keeps this one: the administrator is the one asking.
    keep = request.session.session_key if user.pk == request.user.pk else None
    try:
        ended = services_admin.user_sessions_terminate(user=user, actor=request.user,  # type: ignore[arg-type]
                                                       keep_session_key=keep)
    except AdminRefused as exc:
        refused(request, exc, kind=EventKind.UPDATE, object_type="clinical.user", object_id=user.pk,
                action="sessions_end")
        return _detail(request, user, status=409)
    messages.success(request, _("%(user)s のセッション %(n)d 件を終了しました。") % {"user": user, "n": ended})
    return redirect("administration_user_detail", pk=pk)


@login_required
@require_POST
def user_second_factor_reset(request: HttpRequest, pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    user = sel.user_for(request.user, pk)
    try:
        ended = services_admin.user_second_factor_revoke(user=user, actor=request.user)  # type: ignore[arg-type]
    except AdminRefused as exc:
        refused(request, exc, kind=EventKind.UPDATE, object_type="clinical.user", object_id=user.pk,
                action="second_factor_reset")
        return _detail(request, user, status=409)
    messages.success(request, _("%(user)s の二要素認証をリセットしました（セッション %(n)d 件を終了）。"
                                "次回ログイン時に再登録が必要です。") % {"user": user, "n": ended})
    return redirect("administration_user_detail", pk=pk)
