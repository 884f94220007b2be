"""Reports listen to inference and clinical (dependencies point one way: neither knows reports)."""

from __future__ import annotations

from typing import Any

from inference.models import InferenceJob


def on_draft_ready(sender: Any, *, job: InferenceJob, **_kwargs: Any) -> None:
    if job.model_version.shadow:
        return  # shadow drafts are kept on the job for comparison; physicians never see them
    from reports.services import revision_create_from_draft

    revision_create_from_draft(job=job)


def on_visits_corrected(sender: Any, *, visit_ids: list[int], changes: dict[int, dict[str, list[str]]],
                        actor: Any = None, **_kwargs: Any) -> None:
    # Inside the import's transaction: the reports are flagged with the corrected values, or not at all.
    from reports.corrections import reports_mark_corrected

    reports_mark_corrected(visit_ids=visit_ids, changes=changes, actor=actor)
