"""The Celery app. The broker only carries ids; the database row is the truth for a job
(house rule 4), so delivery is at-least-once and every task is written to run twice safely."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("medlmm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=(Queue("default"), Queue("gpu")),
    task_default_queue="default",
    # Routing by name, in one place: everything runs on "default" unless a model's jobs are sent
    # to "gpu" explicitly (inference picks the queue per model version).
    # inference.run_job is sent with an explicit queue per model version (template → default, GPU
    # models → gpu); the route below is only its fallback. The sweeper runs on default.
    task_routes={"medlmm.*": {"queue": "default"}, "clinical.*": {"queue": "default"},
                 "inference.*": {"queue": "default"}},
    # The sweeper re-enqueues jobs whose lease lapsed (lost broker message, killed worker):
    # run `celery -A config beat` beside the workers in production.
    beat_schedule={"inference-sweep": {"task": "inference.sweep", "schedule": 30.0}},
    # A task is acknowledged after it ran, and re-delivered if its worker process died
    # (acks_late alone still acks a task whose process was killed: celery#4976, anchors.md).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # Long GPU tasks must not be hoarded by one worker; the GPU worker raises this to its batch size.
    worker_prefetch_multiplier=1,
    task_soft_time_limit=15 * 60,
    task_time_limit=20 * 60,
    task_track_started=True,
    result_expires=24 * 3600,
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
    timezone="Asia/Tokyo",
    enable_utc=True,
)
app.autodiscover_tasks()


@app.task(name="medlmm.ping")
def ping() -> str:
    """Used by /healthz and the launcher test to prove a worker really consumes the default queue."""
    return "pong"
