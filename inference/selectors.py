"""Reads of the inference app, always scoped by `clinical.scoping` (a user sees jobs of their facilities only)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

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
