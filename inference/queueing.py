"""Sending job tasks to Celery once the rows that name them are committed.

An arrival of many visits queues a job per visit in a few transactions; each task message then cost
the sending process ≈ 0.35 ms of CPU, most of it kombu's Redis transport building a client and a
round trip per message (64 messages: 22 ms, on the core the GPU worker shares on a small host,
before the last job could start). kombu's publish batch (`Producer.batch`, kombu ≥ 5.7) sends the
messages built meanwhile in one pipeline: 64 in 11.5 ms (the same messages in one process). The
first job goes out alone before the others are built, so the worker starts on it at once, and the
rest in pipelines that grow fourfold (3, 12, 48, …; `growing_spans`, which also cuts an arrival into
transactions). With the other 63 in one pipeline the engine prefilled the first draft, then decoded
it alone 16–17 times until the second one came, which waited for all 63 messages to be built and
flushed (bench/inference_stack.py).

A message that is never delivered (Redis down at that moment, or a batch whose pipeline failed:
kombu then cannot say which of its messages arrived; the pipelines after a failed one are not
sent) leaves its job QUEUED with its lease running:
the sweeper re-sends it (`services.jobs_sweep`), and the worker's claim is conditional, so a job
sent twice still runs once. The error still reaches the caller, as a single send's did."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction


def send_jobs(jobs: Sequence[tuple[int, str]]) -> None:
    """Send `run_job` for each (job id, queue), in order: the first at once, the rest in pipelines
    of growing size (`growing_spans`)."""
    if not jobs:
        return
    from config.celery import app
    from inference.tasks import run_job

    first_id, first_queue = jobs[0]
    run_job.apply_async(args=[first_id], queue=first_queue)
    for start, end in growing_spans(len(jobs), 1)[1:]:
        with app.producer_or_acquire() as producer, producer.batch():
            for job_id, queue in jobs[start:end]:
                run_job.apply_async(args=[job_id], queue=queue, producer=producer)


def growing_spans(n: int, first: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive parts of `n` items, each ending at four times where the one
    before ended: [0, first), [first, 4 first), [4 first, 16 first), … Few round trips (or
    transactions) for many items, and the first few go out before the many are built."""
    spans: list[tuple[int, int]] = []
    start, bound = 0, first
    while start < n:
        end = min(n, bound)
        spans.append((start, end))
        start, bound = end, 4 * bound
    return spans


def send_jobs_on_commit(jobs: Sequence[tuple[int, str]]) -> None:
    """`send_jobs` once the caller's transaction commits (at once outside one); nothing on rollback."""
    if jobs:
        pending = list(jobs)
        transaction.on_commit(lambda: send_jobs(pending))
