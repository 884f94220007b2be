"""Celery tasks of inference: thin wrappers over `runner` and `services` (the row is the truth).

`run_job` is sent to the queue of its model (`default` for the template, `gpu` otherwise). A GPU
worker runs `--pool threads --concurrency <batch size>`: the tasks' threads feed one engine, which
batches them. The thread pool has no Celery time limits, so the runner enforces its own."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from audit.context import RequestContext, acting, new_request_id
from config import heap
from inference import conf
from inference import control as _control  # noqa: F401  (registers `celery inspect engine_stats`)

log = logging.getLogger(__name__)


# No result and no STARTED state in the result backend: the job row is the truth and nobody reads
# the task's result; storing both cost each job two Redis round trips (and, per new worker thread, a
# connection) on the GPU worker's hot path.
@shared_task(name="inference.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             track_started=False, soft_time_limit=conf.job_timeout_s() + 60, time_limit=conf.job_timeout_s() + 120)
def run_job(job_id: int) -> str:
    from inference.runner import run_job as run

    with acting(RequestContext(request_id=new_request_id(), channel="task")):
        return run(job_id)


@shared_task(name="inference.sweep")
def sweep() -> dict[str, list[int]]:
    from inference.services import jobs_sweep

    with acting(RequestContext(request_id=new_request_id(), channel="task")):
        result = jobs_sweep()
    return {"requeued": result.requeued, "resent": result.resent, "failed": result.failed}


def _preload(queues: set[str]) -> None:
    """Load every enabled model whose jobs this worker consumes, once, before its first job."""
    from django.db import close_old_connections

    from inference import engine_pool
    from inference.models import ModelVersion

    try:
        for mv in ModelVersion.objects.filter(enabled=True, queue__in=list(queues)):
            try:
                seconds = engine_pool.preload(mv)
                log.info("preloaded %s (warm-up %s s)", mv, seconds)
            except Exception as exc:  # a broken model fails its jobs with the reason; the worker stays up
                log.error("model %s failed to load at worker start: %s", mv, exc)
    except Exception:
        log.warning("inference preload skipped", exc_info=True)
    finally:
        close_old_connections()
        heap.settle()  # what the preload built lives as long as the worker


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_kwargs: Any) -> None:
    try:
        queues = set(sender.app.amqp.queues.consume_from or {})
    except Exception:
        queues = set()
    if queues:
        threading.Thread(target=_preload, args=(queues,), name="inference-preload", daemon=True).start()
