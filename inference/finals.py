"""A job's final write as a plan: the values its row gets and what follows once it has them.

When a batch of drafts ends, the worker's group commit (`inference.group_commit`) writes the rows
of all the jobs waiting at that moment in one statement per kind of write (`finals_write`: a
failure, a finished draft), then runs each job's `then` (its audit event, its report, the
broadcasts of its final state) in that job's own context, all in one transaction. A statement per
job (session 7) cost 4–8 ms a job in a busy worker, the jobs' rows written one after another while
the engine had nothing left to do (bench/inference_stack.py).

Outside a worker's group (`final_commit`) a plan is written alone, the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from inference.models import ACTIVE, InferenceJob, JobStatus
from inference.returning import load_related, merge_values, update_returning, update_rows_returning

# A time already written stays (the heartbeat may have written the first token's time).
KEEP = frozenset({"first_token_at"})
# None: what the row already has (a failure before any text keeps the text the heartbeat wrote).
FILL = frozenset({"partial_text", "completion_tokens", "prompt_tokens"})


@dataclass(frozen=True)
class FinalWrite:
    """A job's final values, written only while the job is still `worker_id`'s (RUNNING), or, with
    no worker, while it is active at all (the sweeper, an operator). `then` runs with the row the
    write left, in the same transaction (audit, report, broadcasts on commit). `claimed`: the
    instance the worker claimed; its model version and patient are the row's (a job's links do not
    change while it runs), so they are not read again."""

    job_id: int
    worker_id: str | None
    values: dict[str, Any]
    then: Callable[[InferenceJob], None]
    claimed: InferenceJob | None = None

    def settle(self, job: InferenceJob | None) -> InferenceJob | None:
        """Run `then` if the write found the job; the row, or None if the job was no longer ours."""
        if job is not None:
            self.then(job)
        return job


def finals_write(plans: Sequence[FinalWrite]) -> list[InferenceJob | None]:
    """Write the rows of `plans` (in the caller's transaction) and return each plan's row as it now
    is, with its model version and patient, or None where the job was no longer the worker's. One
    statement per kind of write (the same fields), one per plan with no worker."""
    jobs: list[InferenceJob | None] = [None] * len(plans)
    kinds: dict[tuple[str, ...], list[int]] = {}
    for i, plan in enumerate(plans):
        if plan.worker_id is None:
            rows = update_returning(InferenceJob.objects.filter(id=plan.job_id, status__in=ACTIVE),
                                    merge_values(plan.values, keep=KEEP, fill=FILL, model=InferenceJob),
                                    related=("model_version", "patient"))
            jobs[i] = rows[0] if rows else None
        else:
            kinds.setdefault(tuple(plan.values), []).append(i)
    for same in kinds.values():
        # Two plans for one job (one worker thread per job: never, but one statement must not get
        # the same row twice): the second goes into a later statement and finds the job final.
        batches: list[list[int]] = []
        for i in same:
            batch = next((b for b in batches if all(plans[k].job_id != plans[i].job_id for k in b)), None)
            if batch is None:
                batches.append(batch := [])
            batch.append(i)
        for batch in batches:
            written = update_rows_returning(
                InferenceJob,
                [({"id": plans[i].job_id, "status": JobStatus.RUNNING, "worker_id": plans[i].worker_id},
                  plans[i].values) for i in batch],
                keep=KEEP, fill=FILL)
            for i in batch:
                jobs[i] = written.get(plans[i].job_id)
    unlinked: list[InferenceJob] = []
    for job, plan in zip(jobs, plans, strict=True):
        if job is None or plan.worker_id is None:
            continue
        if plan.claimed is not None and job.model_version_id == plan.claimed.model_version_id and (
                job.patient_id == plan.claimed.patient_id):
            job.model_version = plan.claimed.model_version
            job.patient = plan.claimed.patient
        else:
            unlinked.append(job)
    for name in ("model_version", "patient"):
        load_related(unlinked, name)
    return jobs


def final_commit(plan: FinalWrite) -> InferenceJob | None:
    """Write one plan and run its `then`, in one transaction (the caller's, if it has one: no
    savepoint, as inside a group)."""
    with transaction.atomic(savepoint=False):
        return plan.settle(finals_write([plan])[0])
