"""The one place that decides which facilities' data a user may see. Every view, API and
consumer scopes its querysets through here, so "facility A cannot see facility B" is enforced
in one function instead of in each screen."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.models import Facility, Membership

M = TypeVar("M", bound=Model)


def facility_ids_for(user: Any, perm: str = "access_facility") -> list[int]:
    """Ids of the facilities where `user` holds `perm` (through a membership). Cached per user
    object so a page that scopes several querysets asks the database once."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    cache: dict[str, list[int]] = user.__dict__.setdefault("_facility_ids_cache", {})
    if perm not in cache:
        # accept_global_perms=False: a global permission must never widen a facility scope.
        qs = get_objects_for_user(
            user, f"clinical.{perm}", klass=Facility.objects.filter(is_active=True), accept_global_perms=False
        )
        cache[perm] = sorted(qs.values_list("id", flat=True))
    return cache[perm]


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
