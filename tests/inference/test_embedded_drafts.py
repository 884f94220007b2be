"""The embedded demo (`make run`: SQLite, in-memory broker) drafts through the same claim, progress
writes and final write as a GPU worker on PostgreSQL: the README's first command must keep
producing drafts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.embedded import embedded_manage


@pytest.mark.slow
def test_the_embedded_demo_drafts_flagged_visits_on_sqlite(tmp_path: Path) -> None:
    manage = embedded_manage(tmp_path)
    for command in (("migrate", "-v0"), ("seed_demo",), ("seed_models",)):
        done = manage(*command)
        assert done.returncode == 0, done.stderr[-3000:]
    # The worker's heartbeat (progress and lease writes) ran on SQLite too, without an error.
    assert "Traceback" not in done.stderr and "failed" not in done.stderr, done.stderr[-3000:]
    db = sqlite3.connect(tmp_path / "medlmm.sqlite3")
    jobs = db.execute("SELECT status, worker_id, attempts, error FROM inference_inferencejob").fetchall()
    revisions = db.execute("SELECT count(*) FROM reports_reportrevision").fetchone()[0]
    db.close()
    assert jobs, "no demo drafts"
    assert all(status == "succeeded" and worker and attempts == 1 for status, worker, attempts, _e in jobs), jobs
    assert revisions >= len(jobs)
