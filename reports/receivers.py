"""Reports listen to inference (dependencies point one way: inference knows nothing of reports)."""

from __future__ import annotations

from typing import Any

from inference.models import InferenceJob


def on_draft_ready(sender: Any, *, job: InferenceJob, **_kwargs: Any) -> None:
    if job.model_version.shadow:
        return  # shadow drafts are kept on the job for comparison; physicians never see them
    from reports.services import revision_create_from_draft

    revision_create_from_draft(job=job)
