"""Inference settings with their defaults. Values come from `config/settings.py` (which reads the
environment); the defaults here apply until a deployment sets them."""

from __future__ import annotations

from django.conf import settings


def lease_s() -> float:
    """How long a claim holds without a heartbeat before the sweeper may give the job to another worker."""
    return float(getattr(settings, "INFERENCE_LEASE_S", 60))


def requeue_after_s() -> float:
    """How long a job may sit QUEUED before the sweeper sends its message again (a lost message)."""
    return float(getattr(settings, "INFERENCE_REQUEUE_AFTER_S", 300))


def max_attempts() -> int:
    return int(getattr(settings, "INFERENCE_MAX_ATTEMPTS", 3))


def job_timeout_s() -> float:
    """Wall-clock limit of one generation; the thread pool has no Celery time limits, so we enforce it."""
    return float(getattr(settings, "INFERENCE_JOB_TIMEOUT_S", 600))


def auto_draft_default() -> bool:
    return bool(getattr(settings, "INFERENCE_AUTO_DRAFT", True))


def persist_every_s() -> float:
    return float(getattr(settings, "INFERENCE_PERSIST_EVERY_S", 0.2))


def broadcast_every_s() -> float:
    return float(getattr(settings, "INFERENCE_BROADCAST_EVERY_S", 0.1))
