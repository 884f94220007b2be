"""Database connections of a worker's long-lived threads (job threads, the heartbeat, the group
committer)."""

from __future__ import annotations

from django.db import connection


def release_connection() -> None:
    """Hand this thread's database connection back to the pool (production pools connections, and
    has fewer of them than a GPU worker has job threads). Without a pool it stays open for the
    thread's next query, as CONN_MAX_AGE intends."""
    if (connection.settings_dict.get("OPTIONS") or {}).get("pool") and not connection.in_atomic_block:
        connection.close()
