"""Benchmark (issue 5): what the stack costs on top of the engine. The tiny transformers checkpoint,
N concurrent drafts (default 64):

- direct: the same N requests submitted straight to the engine (`TransformersEngine` in this
  process) from N threads, with the token merging the worker's threads get;
- stack: N job rows queued by the arrival path in one transaction → Celery (Redis) → a GPU worker
  process (`celery worker -Q gpu --pool threads --concurrency N`, settings as shipped: its engine in
  a child process, pooled database connections) → the channel layer (Redis) → N websocket
  clients (Channels' communicator on the real ASGI application, in this process), timed until every
  client holds the final state. One job runs through the stack first, untimed (warm worker).

Prints both times and their ratio, the rows' timeline (queued, started, first token, finished) and
the CPU seconds each party used during the stack run: with 2 cores the stack's own processes and
the engine compete for the same cores, which the direct run has to itself.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
        .venv/bin/python bench/inference_stack.py [N] [max_new_tokens] [--in-process] [--one-by-one]

`--in-process`: the worker as a thread of this process. `--one-by-one`: rows created one after
another by `job_create` (N users pressing 下書きを作成). `MEDLMM_BENCH_PYSPY=<file>`: sample the
worker with py-spy meanwhile. It creates and drops its own database `medlmm_bench_inf` and uses
Redis databases 13–15. Not a test: it prints figures."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 64
NEW_TOKENS = int(sys.argv[2]) if len(sys.argv) > 2 else 128
ONE_BY_ONE = "--one-by-one" in sys.argv
# Default: the GPU worker is its own process, as production runs it (`celery worker -Q gpu --pool
# threads`); --in-process runs the worker as a thread of this process, beside the websocket clients
# (one interpreter lock for engine, worker threads and clients: that measured 4-5x the direct time).
IN_PROCESS = "--in-process" in sys.argv
BENCH_DB = "medlmm_bench_inf"
base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
server = base.rsplit("/", 1)[0]
subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB}"], check=True)
subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {BENCH_DB}"], check=True)
os.environ["DATABASE_URL"] = f"{server}/{BENCH_DB}"
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379")
os.environ["REDIS_DB_BASE"] = "13"
os.environ.setdefault("MEDLMM_VAR_DIR", "/tmp/medlmm-bench-inf-var")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

import django  # noqa: E402

django.setup()
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

settings.AXES_ENABLED = False
settings.INFERENCE_AUTO_DRAFT = False  # fixtures' visits queue nothing of their own


def _cpu(worker_pid: int) -> dict[str, float]:
    """CPU seconds so far of the worker, this process (websocket clients + ASGI app), Redis, PostgreSQL."""
    import psutil

    sys.path.insert(0, str(ROOT / "bench"))
    from proc_stats import cpu_seconds

    def named(name: str) -> list[int]:
        return [p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith(name)]

    children = [c.pid for c in psutil.Process(worker_pid).children(recursive=True)]
    return {"worker": cpu_seconds([worker_pid]), "engine process": cpu_seconds(children),
            "bench+ws": cpu_seconds([os.getpid()]),
            "redis": cpu_seconds(named("redis-server")), "postgres": cpu_seconds(named("postgres"))}


def main() -> None:
    from celery.contrib.testing.worker import start_worker
    from channels.testing import WebsocketCommunicator
    from django.db import connections
    from django.test import Client

    from clinical import services as clinical_services
    from config.asgi import application
    from config.celery import app
    from inference import conf, services
    from inference.inputs import prepare
    from inference.models import InferenceJob
    from ml.engines import build_engine
    from ml.tiny import build_tiny_checkpoint
    from tests.inference.conftest import make_visit

    call_command("migrate", "--noinput", verbosity=0)
    facility = clinical_services.facility_create(code="BENCH", name="ベンチ健診センター")
    staff = clinical_services.user_create(username="bench_staff", password="Bench-Password-42!",  # noqa: S106
                                          display_name="ベンチ")
    clinical_services.membership_grant(user=staff, facility=facility, role="staff")
    checkpoint = build_tiny_checkpoint(Path(tempfile.mkdtemp()) / "tiny", kind="causal", seed=0)
    services.model_version_register(name="tiny", version="bench", engine="transformers",
                                    location=str(checkpoint), tasks=["checkup_summary"],
                                    options={"device": "cpu", "max_batch_size": N},
                                    max_new_tokens=NEW_TOKENS, enabled=True)
    visits = [make_visit(facility, mrn=f"B{i:05d}") for i in range(N)]
    spare = make_visit(facility, mrn="WARMUP")
    # The engine itself, in this process; the worker builds its own through the pool, as in
    # production (in a child process of its own unless INFERENCE_ENGINE_PROCESS=0).
    engine: Any = build_engine("transformers", str(checkpoint), device="cpu", max_batch_size=N)
    engine.warmup()
    # The same merging of tokens the worker's threads get with N jobs streaming (a stronger baseline
    # than waking every thread for every token).
    coalesce_s = max(conf.broadcast_every_s(), N / conf.broadcasts_per_s())

    # --- direct: the engine alone ------------------------------------------------------------------
    probe = [services.job_create(actor=staff, visit=v) for v in visits]  # only to build identical requests
    requests = [prepare(InferenceJob.objects.select_related("model_version", "visit", "patient").get(pk=j.pk))
                for j in probe]
    InferenceJob.objects.filter(pk__in=[j.pk for j in probe]).update(status="cancelled")
    app.control.purge()
    direct_tokens: list[int] = []

    def direct_one(i: int) -> None:
        result: Any = engine.submit_sync(requests[i].request, lambda _e: None, None, coalesce_s)
        direct_tokens.append(result.completion_tokens)

    started = time.perf_counter()
    threads = [threading.Thread(target=direct_one, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    direct_s = time.perf_counter() - started

    # --- the stack ---------------------------------------------------------------------------------
    client = Client()
    client.force_login(staff)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    async def watch(job_id: int) -> dict[str, Any]:
        ws = WebsocketCommunicator(application, f"/ws/jobs/{job_id}/",
                                   headers=[(b"cookie", cookie), (b"origin", b"http://testserver")])
        connected, _ = await ws.connect(timeout=30)
        assert connected
        while True:
            message = await ws.receive_json_from(timeout=60)
            if message["type"] == "job.state" and message["final"]:
                await ws.disconnect()
                return message

    async def warm_up() -> None:
        # One job through the whole stack before the clock starts: the worker has loaded and warmed
        # its model at start (the preload), and this takes the first-job costs of the rest (imports
        # on the prepare path, the worker threads' first connections) out of the figure, as they are
        # out of a worker that has been running.
        settings.INFERENCE_AUTO_DRAFT = True
        [job] = await asyncio.to_thread(services.jobs_create_for_arrival, visit_ids=[spare.pk])
        settings.INFERENCE_AUTO_DRAFT = False
        await watch(job.pk)

    async def run_stack() -> list[dict[str, Any]]:
        if ONE_BY_ONE:  # N users each pressing "draft": rows created one after another
            jobs = [await asyncio.to_thread(services.job_create, actor=staff, visit=v) for v in visits]
        else:  # N visits arriving together (an import): the path that drafts arrivals, one transaction
            settings.INFERENCE_AUTO_DRAFT = True  # that path drafts only where auto-drafting is on
            jobs = await asyncio.to_thread(services.jobs_create_for_arrival, visit_ids=[v.pk for v in visits])
        assert len(jobs) == N
        return list(await asyncio.gather(*(watch(j.pk) for j in jobs)))

    if IN_PROCESS:
        with start_worker(app, pool="threads", concurrency=N, queues=["gpu"], perform_ping_check=False,
                          loglevel="WARNING", shutdown_timeout=30):
            asyncio.run(warm_up())
            started = time.perf_counter()
            finals = asyncio.run(run_stack())
            stack_s = time.perf_counter() - started
    else:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--pool", "threads",
             "--concurrency", str(N), "-n", "benchgpu@%h", "-l", "WARNING", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=dict(os.environ))
        try:
            deadline = time.monotonic() + 120
            while not app.control.ping(timeout=1.0):
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError("the GPU worker did not start")
            asyncio.run(warm_up())
            # MEDLMM_BENCH_PYSPY=<file>: sample the worker with py-spy (raw stacks) during the run.
            profile = os.environ.get("MEDLMM_BENCH_PYSPY")
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(worker.pid), "--nonblocking", "-r", "100",
                                    "--format", "raw", "-o", profile]) if profile else None
            cpu0 = _cpu(worker.pid)
            started = time.perf_counter()
            finals = asyncio.run(run_stack())
            stack_s = time.perf_counter() - started
            cpu = {k: v - cpu0[k] for k, v in _cpu(worker.pid).items()}
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            print("CPU seconds during the stack run: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    statuses = {m["status"] for m in finals}
    from django.db.models import Max, Min

    measured = InferenceJob.objects.exclude(pk__in=[j.pk for j in probe]).exclude(visit=spare)
    span = measured.aggregate(
        q0=Min("queued_at"), q1=Max("queued_at"), s0=Min("started_at"), s1=Max("started_at"),
        f0=Min("first_token_at"), f1=Max("first_token_at"), e0=Min("finished_at"), e1=Max("finished_at"))
    errors = sorted(set(measured.exclude(error="").values_list("error", flat=True)))
    t0 = span["q0"]
    print("timeline (s after the first row): " + ", ".join(
        f"{k}={(v - t0).total_seconds():.2f}" for k, v in span.items() if v is not None))
    stack_tokens = sum(m["completion_tokens"] for m in finals)
    connections.close_all()

    print(f"engine: tiny causal checkpoint on CPU, {N} concurrent drafts, max_new_tokens={NEW_TOKENS}")
    print(f"direct (engine only):          {direct_s:7.2f} s  {sum(direct_tokens) / direct_s:8.0f} tok/s")
    where = "worker thread in this process" if IN_PROCESS else (
        "worker process, engine in its own" if settings.INFERENCE_ENGINE_PROCESS else "worker process")
    print(f"stack  (row→Celery→ws client, {where}): {stack_s:7.2f} s  {stack_tokens / stack_s:8.0f} tok/s  "
          f"(final states: {sorted(statuses)})")
    for error in errors[:5]:
        print(f"  error: {error[:300]}")
    print(f"ratio stack/direct: {stack_s / direct_s:.3f}  (overhead {100 * (stack_s / direct_s - 1):.1f}%)")


if __name__ == "__main__":
    try:
        main()
    finally:
        from django.db import connections

        connections.close_all()
        subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"],
                       check=False)
