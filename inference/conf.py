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
    """The shortest interval between two token messages of one job."""
    return float(getattr(settings, "INFERENCE_BROADCAST_EVERY_S", 0.1))


def broadcasts_per_s() -> float:
    """What one worker process sends to the channel layer per second at most, all its jobs together:
    with many jobs streaming at once each job's interval grows (64 jobs: 0.32 s) instead of the
    websocket servers' load (bench/inference_stack.py, bench/ws_fanout.py)."""
    return float(getattr(settings, "INFERENCE_BROADCASTS_PER_S", 200))


def engine_process() -> bool:
    """Run local model engines ("transformers") in a child process of the worker (the default)."""
    return bool(getattr(settings, "INFERENCE_ENGINE_PROCESS", True))


def engine_cpus() -> str:
    """The CPUs of the engine process (`"0-3"`, Linux's cpu-list format; empty: the worker's own).
    A model's own `options["cpus"]` wins over it."""
    return str(getattr(settings, "INFERENCE_ENGINE_CPUS", "") or "")
