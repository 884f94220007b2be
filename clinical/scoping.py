"""The one place that decides which facilities' data a user may see. Every view, API and
consumer scopes its querysets through here, so "facility A cannot see facility B" is enforced
in one function instead of in each screen."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, QuerySet
from django.http import Http404

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.models import Facility, Membership

M = TypeVar("M", bound=Model)


def facility_ids_for(user: Any, perm: str = "access_facility") -> list[int]:
    """Ids of the active facilities where `user` holds `perm` (through a membership). The first
    call loads every facility permission of the user in one query and caches them on the user
    object, so a page that asks about several permissions (nav links, scoping) asks the database
    once."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    cache: dict[str, list[int]] | None = user.__dict__.get("_facility_ids_cache")
    if cache is None:
        cache = user.__dict__["_facility_ids_cache"] = _load_facility_perms(user)
    return cache.get(perm, [])


def _load_facility_perms(user: Any) -> dict[str, list[int]]:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import CharField, Subquery
    from django.db.models.functions import Cast
    from guardian.models import UserObjectPermission

    active = Facility.objects.filter(is_active=True)
    if user.is_superuser:  # as django-guardian answers for superusers: every facility, every permission
        ids = sorted(active.values_list("id", flat=True))
        codenames = Permission.objects.filter(content_type=ContentType.objects.get_for_model(Facility))
        return {codename: ids for codename in codenames.values_list("codename", flat=True)}
    # Memberships are materialised as the user's own object permissions on Facility (never through
    # groups, and a global permission must never widen a facility scope).
    rows = (UserObjectPermission.objects
            .filter(user_id=user.pk, content_type=ContentType.objects.get_for_model(Facility))
            # object_pk is text: compare as text (casting it could fail on other models' rows).
            .filter(object_pk__in=Subquery(active.annotate(pk_text=Cast("id", CharField())).values("pk_text")))
            .values_list("object_pk", "permission__codename"))
    perms: dict[str, list[int]] = {}
    for object_pk, codename in rows:
        perms.setdefault(codename, []).append(int(object_pk))
    return {codename: sorted(ids) for codename, ids in perms.items()}


def scope(qs: QuerySet[M], user: Any, *, perm: str = "access_facility", field: str = "facility") -> QuerySet[M]:
    """Restrict `qs` to rows of facilities where the user holds `perm`."""
    return qs.filter(**{f"{field}_id__in": facility_ids_for(user, perm)})


def role_at(user: Any, facility_id: int | None) -> str:
    """The user's role(s) at a facility, for the audit trail ("physician", "staff+admin", "")."""
    if facility_id is None or user is None or not user.is_authenticated:
        return ""
    roles = sorted(Membership.objects.filter(user=user, facility_id=facility_id).values_list("role", flat=True))
    return "+".join(roles)


def get_scoped_or_404(
    qs: QuerySet[M], user: Any, *, perm: str = "access_facility", field: str = "facility", **lookup: Any
) -> M:
    """Fetch one object within the user's scope. Outside it, the answer is 404 (never 403, which
    would confirm the object exists) and the attempt is audited."""
    try:
        return scope(qs, user, perm=perm, field=field).get(**lookup)
    except ObjectDoesNotExist:
        audit_record(
            kind=EventKind.ACCESS_DENIED,
            outcome=Outcome.DENIED,
            object_type=qs.model._meta.label_lower,
            object_id=str(next(iter(lookup.values()), ""))[:64],
            details={"lookup": {k: str(v)[:64] for k, v in lookup.items()}, "perm": perm},
        )
        raise Http404 from None
