"""Real Celery worker processes over Redis against the test database: a worker killed with SIGKILL
mid-job, a broker message lost before any worker saw it, a model that cannot load. The database
row is the truth; the sweeper puts lost work back on the queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from clinical.models import CheckupVisit
from inference import services
from inference.models import InferenceJob, JobStatus, ModelVersion
from reports.models import ReportRevision
from tests.conftest import Personas, close_other_connections
from tests.inference.conftest import make_visit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    if not settings.REDIS_URL or connection.vendor != "postgresql":
        pytest.skip("needs REDIS_URL and PostgreSQL: the production topology")
    from config.celery import app

    app.control.purge()
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "MEDLMM_VAR_DIR": str(settings.VAR_DIR), "PYTHONUNBUFFERED": "1"}
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,gpu", "--pool", "threads",
             "--concurrency", "4", "-n", f"{name}@%h", "-l", "INFO", "--without-gossip", "--without-mingle"],
            cwd=settings.BASE_DIR, env={**env, **extra_env}, stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    app.control.purge()
    close_other_connections()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _expire_leases() -> None:
    # What the clock would do: the dead worker no longer renews its leases.
    InferenceJob.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def _template(delay: float = 0.0) -> ModelVersion:
    return services.model_version_register(name="テンプレート下書き", version="template-ja-v1", engine="template",
                                           location="template-ja-v1", tasks=["checkup_summary"],
                                           options={"chunk_chars": 2, "delay": delay}, queue="default", enabled=True)


def test_it_finishes_every_job_exactly_once_after_a_worker_is_killed_mid_job(
    personas: Personas, worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    visits = [make_visit(personas.facility_a, mrn=f"A{i:04d}") for i in range(3)]
    _template(delay=0.03)  # several seconds a draft: long enough to kill the worker in the middle
    jobs = [services.job_create(actor=personas.physician_a, visit=v) for v in visits]
    first = worker("first")
    _wait(lambda: InferenceJob.objects.filter(status=JobStatus.RUNNING, completion_tokens__gt=0).count() == 3,
          60, "all jobs running")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert set(InferenceJob.objects.values_list("status", flat=True)) == {JobStatus.RUNNING}
    assert not ReportRevision.objects.exists()

    _expire_leases()
    assert sorted(services.jobs_sweep().requeued) == sorted(j.pk for j in jobs)
    worker("second")
    _wait(lambda: InferenceJob.objects.filter(status=JobStatus.SUCCEEDED).count() == 3, 90, "all jobs succeeded")
    time.sleep(1)  # anything that would finish a job twice has had its chance
    for job in InferenceJob.objects.all():
        assert job.attempts == 2 and job.status == JobStatus.SUCCEEDED
        assert ReportRevision.objects.filter(source_job=job).count() == 1
        assert AuditEvent.objects.filter(object_id=str(job.pk), object_type="inference.inferencejob",
                                         details__stage="succeeded").count() == 1
    assert ReportRevision.objects.count() == 3 and set(ReportRevision.objects.values_list("number", flat=True)) == {1}


def test_it_reenqueues_a_job_whose_broker_message_was_lost(
    personas: Personas, visit_a: CheckupVisit, worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    from config.celery import app

    _template()
    job = services.job_create(actor=personas.physician_a, visit=visit_a)  # its message is now in Redis
    assert app.control.purge() >= 1  # … and now it is gone (a Redis restart without persistence)
    worker("only")
    time.sleep(3)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED  # nobody knows of it but the database

    _expire_leases()
    assert services.jobs_sweep().resent == [job.pk]
    _wait(lambda: InferenceJob.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).exists(), 60, "the job")
    assert ReportRevision.objects.filter(source_job=job).count() == 1


def test_it_fails_the_jobs_of_a_model_that_cannot_load_and_keeps_working(
    personas: Personas, worker: Callable[..., subprocess.Popen[bytes]], tmp_path: Path,
) -> None:
    broken = services.model_version_register(name="broken", version="1", engine="transformers",
                                             location=str(tmp_path / "no-such-checkpoint"),
                                             tasks=["checkup_summary"], options={"device": "cpu"}, enabled=True)
    template = _template()
    proc = worker("only")
    bad = services.job_create(actor=personas.physician_a, visit=make_visit(personas.facility_a, mrn="A0001"),
                              model_version=broken)
    _wait(lambda: InferenceJob.objects.filter(pk=bad.pk, status=JobStatus.FAILED).exists(), 60, "the failure")
    bad.refresh_from_db()
    assert "モデルを読み込めません" in bad.error and "checkpoint not found" in bad.error
    good = services.job_create(actor=personas.physician_a, visit=make_visit(personas.facility_a, mrn="A0002"),
                               model_version=template)
    _wait(lambda: InferenceJob.objects.filter(pk=good.pk, status=JobStatus.SUCCEEDED).exists(), 60, "the next job")
    assert proc.poll() is None




def test_its_job_threads_share_a_database_pool_smaller_than_their_number(
    personas: Personas, worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """Production pools connections (8 by default) and a GPU worker runs more threads than that:
    a thread holds a connection only while it writes, never while the engine generates."""
    _template(delay=0.03)  # a few seconds a draft: longer than the pool makes a thread wait
    jobs = [services.job_create(actor=personas.physician_a, visit=make_visit(personas.facility_a, mrn=f"P{i:04d}"))
            for i in range(4)]
    worker("pooled", DB_CONN_MAX_AGE="60", DB_POOL_MAX_SIZE="2", DB_POOL_TIMEOUT_S="2")
    _wait(lambda: InferenceJob.objects.filter(status=JobStatus.SUCCEEDED).count() == 4, 90, "all jobs succeeded")
    assert {j.attempts for j in InferenceJob.objects.filter(pk__in=[j.pk for j in jobs])} == {1}


def test_it_runs_a_local_model_in_an_engine_process_of_its_own_and_fails_noise_with_the_reason(
    personas: Personas, worker: Callable[..., subprocess.Popen[bytes]], tmp_path: Path,
) -> None:
    """The production setting: the GPU worker's engine is a child process. The tiny checkpoint's
    weights are random, so its draft is noise: the job streams tokens and then fails with the reason
    (never a silent partial report)."""
    import psutil

    from ml.tiny import build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint(tmp_path / "tiny", kind="causal", seed=0)
    services.model_version_register(name="tiny", version="1", engine="transformers", location=str(checkpoint),
                                    tasks=["checkup_summary"], options={"device": "cpu"}, max_new_tokens=24,
                                    enabled=True)
    proc = worker("gpu", INFERENCE_ENGINE_PROCESS="1", INFERENCE_ENGINE_CPUS="0")
    job = services.job_create(actor=personas.physician_a, visit=make_visit(personas.facility_a, mrn="T0001"))
    _wait(lambda: InferenceJob.objects.filter(pk=job.pk, status=JobStatus.FAILED).exists(), 120, "the draft")
    job.refresh_from_db()
    assert job.completion_tokens == 24 and job.partial_text and job.first_token_at is not None
    assert "下書きの形式が不正です" in job.error and not ReportRevision.objects.filter(source_job=job).exists()
    hosts = [c for c in psutil.Process(proc.pid).children(recursive=True) if "ml.engines.engine_host" in c.cmdline()]
    assert len(hosts) == 1
    assert hosts[0].cpu_affinity() == [0], "INFERENCE_ENGINE_CPUS keeps the engine process on its CPUs"
    from config.celery import app

    # What `celery -A config inspect engine_stats` shows an operator: the engine process's counters.
    [reply] = app.control.broadcast("engine_stats", reply=True, timeout=10)
    [engines] = reply.values()
    [stats] = engines.values()
    # (the warm-up at the worker's start drafts once too)
    assert stats["pid"] == hosts[0].pid and stats["prefill_rows"] >= 1 and stats["generated_tokens"] >= 24
    assert sum(bucket["steps"] for bucket in stats["decode"].values()) == stats["steps"] >= 23
    assert set(psutil.Process(proc.pid).cpu_affinity()) == set(os.sched_getaffinity(0)), "the worker is not moved"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert psutil.wait_procs(hosts, timeout=15)[1] == [], "the engine process outlived its worker"
