"""Reads of the inference app, always scoped by `clinical.scoping` (a user sees jobs of their facilities only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from audit.models import AuditEvent
from clinical.scoping import get_scoped_or_404, scope
from inference.models import InferenceJob, ModelVersion

WORKLIST_SIZE = 100


def _jobs() -> QuerySet[InferenceJob]:
    return InferenceJob.objects.select_related("model_version", "patient", "facility")


def jobs_visible_to(user: Any) -> QuerySet[InferenceJob]:
    return scope(_jobs(), user)


def job_for(user: Any, pk: int) -> InferenceJob:
    """The job if the user may see its facility; otherwise Http404, audited as access_denied."""
    return get_scoped_or_404(_jobs(), user, pk=pk)


def worklist_for(user: Any) -> QuerySet[InferenceJob]:
    """Drafts for physicians: jobs of the facilities where the user may sign, newest first, shadow models excluded."""
    return scope(_jobs(), user, perm="sign_reports").filter(model_version__shadow=False).order_by(
        "-queued_at", "-id")[:WORKLIST_SIZE]


def is_registry_admin(user: Any) -> bool:
    from clinical.scoping import facility_ids_for

    return bool(getattr(user, "is_superuser", False) or facility_ids_for(user, "administer_facility"))


def model_versions() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("name", "-created_at")


def versions_in_force(versions: list[ModelVersion]) -> dict[str, ModelVersion]:
    """task → the version whose drafts reach physicians: the first enabled non-shadow version in
    registry order, exactly as `services.models_for(task, include_shadow=False)` picks it. Takes
    the list the page already holds, so it costs no query."""
    chosen: dict[str, ModelVersion] = {}
    for mv in versions:
        if mv.enabled and not mv.shadow:
            for task in mv.tasks or []:
                chosen.setdefault(task, mv)
    return chosen


@dataclass(frozen=True)
class RegistryEvent:
    occurred_at: datetime
    username: str
    action: str
    outcome: str
    before: dict[str, bool] | None
    after: dict[str, bool] | None
    reason: str  # the administrator's reason, or why the action was refused


def model_version_history(pk: int, limit: int = 50) -> list[RegistryEvent]:
    """The registry's audit events for one version, newest first: who changed it, when and why."""
    rows = AuditEvent.objects.filter(object_type="inference.modelversion", object_id=str(pk)).order_by("-seq")
    out = []
    for e in rows[:limit]:
        d = e.details or {}
        out.append(RegistryEvent(occurred_at=e.occurred_at, username=e.username, action=str(d.get("action") or e.kind),
                                 outcome=e.outcome, before=d.get("before"), after=d.get("after"),
                                 reason=str(d.get("refused") or d.get("reason") or "")))
    return out
