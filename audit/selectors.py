"""Reading the audit log for review: scoped by facility ids handed in by the caller (audit knows no
other app), keyset-paginated on `seq` so a page costs the same at the millionth row as at the first
(no OFFSET, no COUNT(*) over the table)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet

from audit.models import AuditEvent

PAGE_SIZE = 50
HISTORY_LIMIT = 500


@dataclass(frozen=True)
class AuditQuery:
    """What a reviewer asked for. Empty fields do not filter."""

    patient_ids: tuple[int, ...] | None = None  # None: any patient; (): a patient that matched nothing
    user_id: int | None = None
    username: str = ""
    kinds: tuple[str, ...] = ()
    object_type: str = ""
    object_id: str = ""
    outcome: str = ""
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    def as_details(self) -> dict[str, Any]:
        """The filters as recorded in the PHI_SEARCH / EXPORT event that audits this query."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value in (None, "", ()):
                continue
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_before: int | None  # pass as `before` for the next (older) page; None on the last page
    has_more: bool = field(init=False)

    def __post_init__(self) -> None:
        self.has_more = self.next_before is not None


def scoped_events(*, facility_ids: Sequence[int]) -> QuerySet[AuditEvent]:
    """Events of the reviewer's facilities, plus events that belong to no facility (logins, failed
    logins, refusals) — those are shown to anyone who may review the audit log somewhere."""
    if not facility_ids:
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(Q(facility_id__in=list(facility_ids)) | Q(facility_id__isnull=True))


def _filtered(*, facility_ids: Sequence[int], query: AuditQuery) -> QuerySet[AuditEvent]:
    qs = scoped_events(facility_ids=facility_ids)
    if query.patient_ids is not None:
        qs = qs.filter(patient_id__in=list(query.patient_ids)) if query.patient_ids else qs.none()
    if query.user_id is not None:
        qs = qs.filter(user_id=query.user_id)
    if query.username:
        qs = qs.filter(username=query.username)
    if query.kinds:
        qs = qs.filter(kind__in=list(query.kinds))
    if query.object_type:
        qs = qs.filter(object_type=query.object_type)
    if query.object_id:
        qs = qs.filter(object_id=query.object_id)
    if query.outcome:
        qs = qs.filter(outcome=query.outcome)
    if query.since is not None:
        qs = qs.filter(occurred_at__gte=query.since)
    if query.until is not None:
        qs = qs.filter(occurred_at__lt=query.until)
    return qs


def audit_search(
    *, facility_ids: Sequence[int], query: AuditQuery, before: int | None = None, limit: int = PAGE_SIZE
) -> AuditPage:
    """One page of events, newest first, strictly older than `before` (a seq)."""
    qs = _filtered(facility_ids=facility_ids, query=query)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    # One row more than the page tells whether there is a next page, without counting.
    rows = list(qs.order_by("-seq")[: limit + 1])
    more = len(rows) > limit
    events = rows[:limit]
    return AuditPage(events=events, next_before=events[-1].seq if more and events else None)


def audit_iter(*, facility_ids: Sequence[int], query: AuditQuery, max_rows: int) -> Iterator[AuditEvent]:
    """Events for an export, oldest first, streamed from the database in chunks."""
    qs = _filtered(facility_ids=facility_ids, query=query).order_by("seq")[:max_rows]
    yield from qs.iterator(chunk_size=2000)


@dataclass(frozen=True)
class UserAccess:
    user_id: int | None
    username: str
    events: int
    first_at: dt.datetime
    last_at: dt.datetime
    kinds: tuple[str, ...]


@dataclass
class PatientHistory:
    by_user: list[UserAccess]
    events: list[AuditEvent]  # newest first, at most HISTORY_LIMIT
    truncated: bool


def patient_access_history(
    *, facility_ids: Sequence[int], patient_ids: Sequence[int], limit: int = HISTORY_LIMIT
) -> PatientHistory:
    """"Who looked at this person": every event naming the patient, summarised per user (one
    GROUP BY) and listed (newest first, capped). Two queries whatever the history's length."""
    qs = scoped_events(facility_ids=facility_ids).filter(patient_id__in=list(patient_ids))
    # Grouped by user and kind in the database, merged per user here: exact whatever the length.
    groups = (
        qs.order_by()
        .values("user_id", "username", "kind")
        .annotate(n=Count("id"), first_at=Min("occurred_at"), last_at=Max("occurred_at"))
    )
    merged: dict[tuple[int | None, str], dict[str, Any]] = {}
    for g in groups:
        key = (g["user_id"], g["username"])
        acc = merged.setdefault(key, {"n": 0, "first_at": g["first_at"], "last_at": g["last_at"], "kinds": set()})
        acc["n"] += g["n"]
        acc["first_at"] = min(acc["first_at"], g["first_at"])
        acc["last_at"] = max(acc["last_at"], g["last_at"])
        acc["kinds"].add(g["kind"])
    by_user = sorted(
        (UserAccess(user_id=k[0], username=k[1], events=v["n"], first_at=v["first_at"], last_at=v["last_at"],
                    kinds=tuple(sorted(v["kinds"]))) for k, v in merged.items()),
        key=lambda u: u.last_at, reverse=True,
    )
    rows = list(qs.order_by("-seq")[: limit + 1])
    return PatientHistory(by_user=by_user, events=rows[:limit], truncated=len(rows) > limit)


def reviewable_facility_ids(user: Any) -> list[int]:
    """Facilities whose audit events `user` may review. Audit knows no other app, so who holds the
    review permission where is asked through a hook named in settings
    (`AUDIT_SCOPE_RESOLVER = "clinical.scoping.facility_ids_for"`, called as resolver(user, perm));
    without the hook nobody may review anything."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    if user is None or not getattr(user, "is_authenticated", False):
        return []
    path = getattr(settings, "AUDIT_SCOPE_RESOLVER", "")
    if not path:
        return []
    resolver = import_string(path)
    return list(resolver(user, getattr(settings, "AUDIT_REVIEW_PERMISSION", "review_audit")))
