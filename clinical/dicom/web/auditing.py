"""Audit of DICOMweb reads without a disk flush per request.

A read changes nothing, so its audit event is a transaction of its own; with PostgreSQL's default
synchronous commit that transaction waits for a WAL flush (≈ 5–20 ms on this machine kind), more
than the search itself, on every QIDO query and every frame the viewer fetches. Here that commit
is asynchronous (`SET LOCAL synchronous_commit TO OFF`): the event is written and hash-chained
exactly as before, but a database crash may lose the last fraction of a second of read events.
WAL is replayed in order, so what is lost is always a tail, never a hole in the chain; the next
synchronous commit (any write) flushes it. Writes (ingest, reconciliation) stay synchronous.

DICOMWEB_READ_AUDIT_ASYNC = False (setting or environment) turns this off."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection, transaction

from audit.services import audit_record
from config.env import env_bool


def _async_enabled() -> bool:
    configured = getattr(settings, "DICOMWEB_READ_AUDIT_ASYNC", None)
    return env_bool("DICOMWEB_READ_AUDIT_ASYNC", True) if configured is None else bool(configured)


def audit_read_event(**kwargs: Any) -> None:
    """`audit_record(**kwargs)` for a PHI read or search, committed asynchronously."""
    if not (_async_enabled() and connection.vendor == "postgresql"):
        audit_record(**kwargs)
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        audit_record(**kwargs)
