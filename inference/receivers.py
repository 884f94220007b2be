"""Visits and studies arriving from `clinical` become jobs, after the transaction that brought them
commits (so the worker sees their observations and images).

`clinical` knows nothing of inference. A visit saved through the ORM is seen through `post_save`;
bulk imports (COPY / bulk_create send no `post_save`) and complete DICOM studies are seen through
the `visits_arrived` / `studies_arrived` signals if `clinical.signals` provides them."""

from __future__ import annotations

from typing import Any

from django.db import transaction


def _arrived(*, visit_ids: list[int] | tuple[int, ...] = (), study_ids: list[int] | tuple[int, ...] = ()) -> None:
    from inference.models import ModelVersion

    if not ModelVersion.objects.filter(enabled=True).exists():
        return

    def create() -> None:
        from inference.services import jobs_create_for_arrival

        jobs_create_for_arrival(visit_ids=visit_ids, study_ids=study_ids)

    transaction.on_commit(create)


def on_visit_saved(sender: Any, instance: Any, created: bool = False, raw: bool = False, **_kwargs: Any) -> None:
    if created and not raw:
        _arrived(visit_ids=[instance.pk])


def on_visits_arrived(sender: Any, visit_ids: Any = (), **_kwargs: Any) -> None:
    _arrived(visit_ids=list(visit_ids))


def on_studies_arrived(sender: Any, study_ids: Any = (), **_kwargs: Any) -> None:
    _arrived(study_ids=list(study_ids))
