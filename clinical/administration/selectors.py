"""Reads of the administration screens, scoped to the facilities where the user holds
`administer_facility`. Outside that scope the answer is 404 (403 for the screens themselves),
and the attempt is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.judging import DEFAULT_RULESETS
from clinical.models import Course, Facility, FacilityRuleSet, Membership, User
from clinical.scoping import facility_ids_for, get_scoped_or_404
from clinical.screening import RuleSet, available_rulesets, load_ruleset

ADMIN_PERM = "administer_facility"
USERS_PER_PAGE = 50


def administered_ids(user: Any) -> list[int]:
    return facility_ids_for(user, ADMIN_PERM)


def require_administrator(user: Any, *, path: str) -> list[int]:
    """The facilities `user` administers; none: 403, audited (the screens exist, the data stays hidden)."""
    ids = administered_ids(user)
    if not ids:
        audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="clinical.administration",
                     object_id=path[:64], details={"perm": ADMIN_PERM})
        raise PermissionDenied
    return ids


def administered_facilities(ids: list[int]) -> QuerySet[Facility]:
    return Facility.objects.filter(pk__in=ids).order_by("code")


def users_for(ids: list[int], *, q: str = "", facility_id: int | None = None) -> QuerySet[User]:
    """Users with a membership at the administered facilities `ids` (or at one of them). Each row
    carries its memberships there, whether it has a second factor and whether it also belongs to a
    facility outside `ids`: three queries for the whole page, not three per user."""
    within = [facility_id] if facility_id is not None else ids
    qs = User.objects.filter(Exists(Membership.objects.filter(user=OuterRef("pk"), facility_id__in=within)))
    if q:
        qs = qs.filter(Q(username__icontains=q) | Q(display_name__icontains=q) | Q(display_name_kana__icontains=q))
    return with_admin_facts(qs, ids).order_by("username")


def with_admin_facts(qs: QuerySet[User], ids: list[int]) -> QuerySet[User]:
    return qs.annotate(
        has_second_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
        elsewhere=Exists(Membership.objects.filter(user=OuterRef("pk")).exclude(facility_id__in=ids)),
    ).prefetch_related(Prefetch(
        "memberships", to_attr="admin_memberships",
        queryset=Membership.objects.filter(facility_id__in=ids).select_related("facility").order_by(
            "facility__code", "role")))


def user_for(actor: Any, pk: int) -> User:
    """A user with a membership at a facility the actor administers; otherwise 404, audited."""
    found = get_scoped_or_404(User.objects.distinct(), actor, perm=ADMIN_PERM, field="memberships__facility", pk=pk)
    return with_admin_facts(User.objects.filter(pk=found.pk), administered_ids(actor)).get()


def membership_for(actor: Any, *, user_pk: int, pk: int) -> Membership:
    return get_scoped_or_404(Membership.objects.select_related("user", "facility"), actor, perm=ADMIN_PERM,
                             pk=pk, user_id=user_pk)


def facility_for(actor: Any, pk: int) -> Facility:
    try:
        return administered_facilities(administered_ids(actor)).get(pk=pk)
    except Facility.DoesNotExist:
        audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="clinical.facility",
                     object_id=str(pk)[:64], details={"lookup": {"pk": str(pk)[:64]}, "perm": ADMIN_PERM})
        raise Http404 from None


# --- rule sets in force -------------------------------------------------------------------------


def ruleset_choices() -> list[RuleSet]:
    """Every shipped rule set an administrator may put in force (id, version, title from the TOML)."""
    return [load_ruleset(name) for name in available_rulesets()]


@dataclass(frozen=True)
class CourseRules:
    course: str
    label: str
    rulesets: tuple[RuleSet, ...]
    is_default: bool
    changed_by: User | None
    changed_at: datetime | None


@dataclass(frozen=True)
class FacilityRules:
    facility: Facility
    courses: tuple[CourseRules, ...]


def rules_in_force(facilities: list[Facility]) -> list[FacilityRules]:
    """For each facility and course, the rule sets that judge its visits now: its choice, or the
    default. One query for all facilities."""
    rows = {(r.facility_id, r.course): r for r in FacilityRuleSet.objects.filter(
        facility__in=facilities).select_related("changed_by")}
    out = []
    for facility in facilities:
        courses = []
        for course in Course:
            row = rows.get((facility.pk, course.value))
            names = tuple(row.rulesets) if row is not None and row.rulesets else DEFAULT_RULESETS[course]
            courses.append(CourseRules(
                course=course.value, label=str(course.label), rulesets=tuple(load_ruleset(n) for n in names),
                is_default=row is None or not row.rulesets, changed_by=row.changed_by if row else None,
                changed_at=row.changed_at if row else None))
        out.append(FacilityRules(facility=facility, courses=tuple(courses)))
    return out
