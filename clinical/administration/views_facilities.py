"""The administration home, facilities (rename, add an existing account) and the rule sets in force
per facility and course. Thin: scope, call a service, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from audit.kinds import EventKind
from clinical import services, services_admin, services_rulesets
from clinical.administration import selectors as sel
from clinical.administration.forms import AddMemberForm, FacilityCreateForm, FacilityForm, RuleSetChoiceForm
from clinical.administration.views_users import refused
from clinical.models import Course, Facility, Role
from clinical.services_admin import AdminRefused


@login_required
def home(request: HttpRequest) -> HttpResponse:
    ids = sel.require_administrator(request.user, path=request.path)
    return render(request, "administration/home.html", {"facilities": list(sel.administered_facilities(ids))})


def _facility_list(request: HttpRequest, ids: list[int], create_form: FacilityCreateForm | None,
                   status: int = 200) -> HttpResponse:
    facilities = sel.administered_facilities(ids).annotate(
        members=Count("memberships__user", distinct=True),
        admins=Count("memberships", filter=Q(memberships__role=Role.ADMIN, memberships__user__is_active=True)))
    return render(request, "administration/facility_list.html", {
        "facilities": list(facilities), "create_form": create_form}, status=status)


@login_required
def facility_list(request: HttpRequest) -> HttpResponse:
    ids = sel.require_administrator(request.user, path=request.path)
    # Creating a facility makes a new tenant: a system administrator's job, not a facility's.
    superuser = bool(getattr(request.user, "is_superuser", False))
    return _facility_list(request, ids, FacilityCreateForm() if superuser else None)


@login_required
@require_POST
def facility_create(request: HttpRequest) -> HttpResponse:
    ids = sel.require_administrator(request.user, path=request.path)
    if not getattr(request.user, "is_superuser", False):
        raise PermissionDenied
    form = FacilityCreateForm(request.POST)
    if not form.is_valid():
        return _facility_list(request, ids, form, status=400)
    facility = services.facility_create(code=form.cleaned_data["code"], name=form.cleaned_data["name"],
                                        actor=request.user)  # type: ignore[arg-type]
    messages.success(request, _("施設 %(name)s を登録しました。") % {"name": facility.name})
    return redirect("administration_facility_list")


def _facility_detail(request: HttpRequest, facility: Facility, *, rename: FacilityForm | None = None,
                     add: AddMemberForm | None = None, status: int = 200) -> HttpResponse:
    return render(request, "administration/facility_detail.html", {
        "facility": facility, "rename_form": rename or FacilityForm(initial={"name": facility.name}),
        "add_form": add or AddMemberForm(),
    }, status=status)


@login_required
def facility_detail(request: HttpRequest, pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    facility = sel.facility_for(request.user, pk)
    if request.method != "POST":
        return _facility_detail(request, facility)
    actor: Any = request.user
    form = FacilityForm(request.POST)
    if not form.is_valid():
        return _facility_detail(request, facility, rename=form, status=400)
    try:
        services_admin.facility_update(facility=facility, name=form.cleaned_data["name"], actor=actor)
    except AdminRefused as exc:
        form.add_error("name", str(exc))
        return _facility_detail(request, facility, rename=form, status=400)
    messages.success(request, _("施設名を変更しました。"))
    return redirect("administration_facility_detail", pk=pk)


@login_required
@require_POST
def facility_add_member(request: HttpRequest, pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    facility = sel.facility_for(request.user, pk)
    actor: Any = request.user
    form = AddMemberForm(request.POST)
    if not form.is_valid():
        return _facility_detail(request, facility, add=form, status=400)
    user, role = form.cleaned_data["username"], form.cleaned_data["role"]
    try:
        services_admin.membership_add(user=user, facility=facility, role=role, actor=actor)
    except AdminRefused as exc:
        refused(request, exc, kind=EventKind.PERMISSION_CHANGE, object_type="clinical.facility",
                object_id=facility.pk, action="grant")
        return _facility_detail(request, facility, add=form, status=409)
    messages.success(request, _("%(user)s に%(role)sの役割を付与しました。") % {"user": user, "role": Role(role).label})
    return redirect("administration_user_detail", pk=user.pk)


# --- rule sets in force ------------------------------------------------------------------------------


def _rulesets_page(request: HttpRequest, facility: Facility, *, bound: RuleSetChoiceForm | None = None,
                   status: int = 200) -> HttpResponse:
    choices = sel.ruleset_choices()
    (rules,) = sel.rules_in_force([facility])
    forms = []
    for course in rules.courses:
        if bound is not None and bound.prefix == course.course:
            form = bound
        else:
            form = RuleSetChoiceForm(prefix=course.course, choices=choices,
                                     initial={"rulesets": [r.id for r in course.rulesets]})
        forms.append((course, form))
    return render(request, "administration/ruleset_form.html", {
        "facility": facility, "forms": forms, "choices": choices}, status=status)


@login_required
def ruleset_list(request: HttpRequest) -> HttpResponse:
    ids = sel.require_administrator(request.user, path=request.path)
    return render(request, "administration/ruleset_list.html", {
        "rules": sel.rules_in_force(list(sel.administered_facilities(ids))), "choices": sel.ruleset_choices()})


@login_required
def ruleset_edit(request: HttpRequest, pk: int) -> HttpResponse:
    sel.require_administrator(request.user, path=request.path)
    facility = sel.facility_for(request.user, pk)
    if request.method != "POST":
        return _rulesets_page(request, facility)
    course = request.POST.get("course", "")
    if course not in Course.values:
        messages.error(request, _("コースが正しくありません。"))
        return _rulesets_page(request, facility, status=400)
    form = RuleSetChoiceForm(request.POST, prefix=course, choices=sel.ruleset_choices())
    if not form.is_valid():
        return _rulesets_page(request, facility, bound=form, status=400)
    actor: Any = request.user
    try:
        services_rulesets.facility_rulesets_set(facility=facility, course=course, rulesets=form.cleaned_data[
            "rulesets"], reason=form.cleaned_data["reason"], actor=actor)
    except AdminRefused as exc:
        form.add_error("rulesets", str(exc))
        return _rulesets_page(request, facility, bound=form, status=400)
    messages.success(request, _("%(facility)s の%(course)sの判定基準を変更しました。これから判定する受診に使われます。")
                     % {"facility": facility.name, "course": Course(course).label})
    return redirect("administration_ruleset_edit", pk=pk)
