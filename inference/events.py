"""The messages a job sends to websocket groups, in one place, so the consumer, the JSON polling
view and the worker agree on their shape."""

from __future__ import annotations

from typing import Any

from inference.models import InferenceJob, JobStatus


def job_group(job_id: int) -> str:
    return f"job.{job_id}"


def worklist_group(facility_id: int) -> str:
    return f"worklist.{facility_id}"


def status_label(status: str) -> str:
    """The status's name in the active language. Django's `get_status_display()` rebuilds a dict of
    every choice per call, translating each label to hash it: six catalogue lookups for one label,
    24 µs, paid twice per draft on the worker's path from the engine's last step to the client
    (job state and worklist message; py-spy of bench/inference_stack.py's group commit). One here."""
    try:
        return str(JobStatus(status).label)
    except ValueError:  # not a status of this version (a row written by a newer one): as Django shows it
        return status


def progress_percent(job: InferenceJob) -> int:
    if job.status == JobStatus.SUCCEEDED:
        return 100
    limit = job.model_version.max_new_tokens or 1
    return min(99, int(100 * job.completion_tokens / limit))


def job_state(job: InferenceJob) -> dict[str, Any]:
    """The whole state of a job: what a (re)connecting client gets first. `text` is the persisted
    partial text while running, the whole draft once finished."""
    final = job.is_final
    text = job.partial_text
    return {
        "type": "job.state",
        "job": job.pk,
        "status": job.status,
        "status_label": status_label(job.status),
        "final": final,
        "attempts": job.attempts,
        "offset": 0,
        "text": text,
        "completion_tokens": job.completion_tokens,
        "progress": progress_percent(job),
        "error": job.error,
        "report_text": job.report_text,
        "grounding_issues": len((job.grounding or {}).get("issues", [])),
    }


def token_message(job_id: int, offset: int, text: str, completion_tokens: int, progress: int) -> dict[str, Any]:
    """New text at `offset` (characters of the draft before it): a client that already has more
    than `offset` characters replaces its tail, so repeats and reconnects never duplicate text."""
    return {"type": "job.token", "job": job_id, "offset": offset, "text": text,
            "completion_tokens": completion_tokens, "progress": progress}


def worklist_message(job: InferenceJob) -> dict[str, Any]:
    patient = job.patient
    return {
        "type": "worklist.draft",
        "job": job.pk,
        "status": job.status,
        "status_label": status_label(job.status),
        "task": job.task,
        "model": str(job.model_version),
        "is_template": job.model_version.is_template,
        "patient": patient.full_name if patient else "",
        "mrn": patient.mrn if patient else "",
        "flagged": job.flagged,
        "url": f"/inference/jobs/{job.pk}/",
    }
