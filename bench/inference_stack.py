"""Benchmark (issue 5): what the stack costs on top of the engine. N concurrent drafts (default 64):

- direct: the same N requests submitted straight to the engine (`TransformersEngine` in a child
  process, as the worker runs it) from N threads, with the token merging the worker's threads get;
- stack: N job rows queued by the arrival path (transactions of 4, 12, 48, …) → Celery (Redis) → a GPU worker
  process (`celery worker -Q gpu --pool threads --concurrency N`, settings as shipped: its engine in
  a child process, pooled database connections) → the channel layer (Redis) → N websocket
  clients (Channels' communicator on the real ASGI application, in this process), timed until every
  client holds the final state. One job runs through the stack first, untimed (the worker's
  preload), then a round of N, untimed (the worker's threads, as in a worker that has been running;
  `--cold`: none); then `--singles` drafts one at a time (a user pressing 下書きを作成 at low load): first token at the
  websocket and the whole draft, from the moment the row is created.

Prints both times and their ratio, the rows' timeline (queued, started, first token, finished) and
the CPU seconds each party used during the stack run: with 2 cores the stack's own processes and
the engine compete for the same cores, which the direct run has to itself.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
        .venv/bin/python bench/inference_stack.py [N] [max_new_tokens] [--in-process] [--one-by-one]

The GPU figure (a lent H100/H200, `bench/device/run.sh`): an llm-jp-3 shaped random checkpoint,
compiled; the direct run's engine is then in a child process that exits before the worker starts
(two copies of a 13B model and their caches would not fit); `bench/inference_gpu.py` gives the
engine-level single-draft figures in the same device call:

    python bench/inference_stack.py 64 256 --shape llm-jp-3-13b --checkpoint /tmp/ck/13b \
        --device cuda --compile --json out.json

`--in-process`: the worker as a thread of this process. `--one-by-one`: rows created one after
another by `job_create` (N users pressing 下書きを作成). `MEDLMM_BENCH_PYSPY=<prefix>`: sample the
worker and this process with py-spy (`<prefix>.worker`, `<prefix>.ws`). It creates and drops its own
database `medlmm_bench_inf` and uses Redis databases 13–15. Not a test: it prints figures."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.engines.cpus import parse_cpus  # noqa: E402  (ml/ never imports Django)
from ml.tiny import SHAPES  # noqa: E402

# Reports per minute of a compiled static batch of 64 on one H200 (anchors.md, GPU section).
ANCHOR_BATCH64 = {"llm-jp-3-1.8b": 1882.0, "llm-jp-3-13b": 490.0}


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("n", nargs="?", type=int, default=64, help="concurrent drafts")
    p.add_argument("new_tokens", nargs="?", type=int, default=128, help="max_new_tokens of the model")
    p.add_argument("--in-process", action="store_true", help="the worker as a thread of this process")
    p.add_argument("--one-by-one", action="store_true", help="rows created one after another by job_create")
    p.add_argument("--shape", default="tiny-causal", choices=["tiny-causal", *SHAPES],
                   help="tiny-causal: the tests' tiny checkpoint; else a random checkpoint of that shape")
    p.add_argument("--checkpoint", help="checkpoint directory (built there when it holds none)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="the engine's compiled decode (CUDA graphs on a GPU)")
    p.add_argument("--compile-shapes", default="dynamic", choices=["dynamic", "static"],
                   help="with --compile: one symbolic batch graph, or one graph per batch bucket")
    p.add_argument("--prompt", type=int, default=0,
                   help="pick the visit's items so that its prompt is about this many tokens (0: every item)")
    p.add_argument("--singles", type=int, default=3, help="drafts run one at a time after the warm-up")
    p.add_argument("--no-direct", action="store_true", help="skip the engine-only run")
    p.add_argument("--rounds", type=int, default=3,
                   help="direct and stack runs taken in turns (CPU; on a GPU one of each): the ratio is their median")
    p.add_argument("--cold", action="store_true",
                   help="no warm-up round of N jobs: the timed round also creates the worker's N threads")
    p.add_argument("--engine-cpus", default="",
                   help="CPUs of the engine process in both runs (\"0\", \"0-3\"); this process, the worker and "
                        "the clients then run on the others, as on a GPU host whose engine has cores of its own")
    p.add_argument("--pin-services", action="store_true",
                   help="with --engine-cpus: PostgreSQL and Redis (already running, every process and thread) "
                        "also on the other CPUs for the run, their CPUs given back at exit (needs the right to "
                        "change them: root or their owner)")
    p.add_argument("--leave-at-once", action="store_true",
                   help="each client disconnects as soon as it holds its final state, inside the timed round "
                        "(default: the pages stay open until every client holds its draft, as a physician's page does)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args()


ARGS = _parse()
ENGINE_CPUS = parse_cpus(ARGS.engine_cpus)
if ENGINE_CPUS:
    # Before any thread or child starts: they inherit this thread's CPUs (the worker too); the
    # engine processes move to theirs when they start (ml/engines/engine_host.py).
    _others = set(os.sched_getaffinity(0)) - ENGINE_CPUS
    if not _others or not ENGINE_CPUS <= set(os.sched_getaffinity(0)):
        sys.exit(f"--engine-cpus {ARGS.engine_cpus}: needs CPUs of this machine and leaves none for the rest "
                 f"(this machine: {sorted(os.sched_getaffinity(0))})")
    os.sched_setaffinity(0, _others)
PINNED_SERVICES: list[str] = []
if ARGS.pin_services:
    if not ENGINE_CPUS:
        sys.exit("--pin-services needs --engine-cpus")
    import atexit

    import psutil

    _given_back: list[tuple[int, set[int]]] = []
    for _proc in psutil.process_iter(["name"]):
        if (_proc.info["name"] or "").startswith(("postgres", "redis-server")):
            try:
                for _thread in _proc.threads():  # Redis's I/O threads too; new PostgreSQL backends inherit
                    _given_back.append((_thread.id, os.sched_getaffinity(_thread.id)))
                    os.sched_setaffinity(_thread.id, _others)
                PINNED_SERVICES.append(f"{_proc.info['name']}:{_proc.pid}")
            except (OSError, psutil.Error) as _exc:
                sys.exit(f"--pin-services: cannot move {_proc.info['name']} ({_proc.pid}): {_exc}")

    @atexit.register
    def _give_back_services() -> None:
        for tid, cpus in _given_back:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass  # gone meanwhile (a backend that ended)
N = ARGS.n
NEW_TOKENS = ARGS.new_tokens
ONE_BY_ONE = ARGS.one_by_one
# Default: the GPU worker is its own process, as production runs it (`celery worker -Q gpu --pool
# threads`); --in-process runs the worker as a thread of this process, beside the websocket clients
# (one interpreter lock for engine, worker threads and clients: that measured 4-5x the direct time).
IN_PROCESS = ARGS.in_process
BENCH_DB = "medlmm_bench_inf"
base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
server = base.rsplit("/", 1)[0]


def _admin(sql: str) -> None:
    """CREATE/DROP DATABASE through psycopg (no psql needed where the bench runs)."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql.encode())  # our own fixed statements


_admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
_admin(f"CREATE DATABASE {BENCH_DB}")
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

# A full 特定健診 visit (every numeric item of the catalogue): the prompt a real checkup gives.
VISIT_VALUES = {"height_cm": "170.2", "weight_kg": "68.4", "bmi": "23.6", "waist_cm": "86.0", "dbp": "96",
                "tg": "180", "hdl": "48", "ldl": "142", "non_hdl": "170", "fbg": "112", "hba1c": "6.8",
                "ast": "32", "alt": "41", "ggt": "65", "egfr": "72.5", "creatinine": "0.92",
                "uric_acid": "7.4", "hb": "14.8"}


def make_visit(facility: Any, mrn: str, items: int = len(VISIT_VALUES), sbp: str = "152") -> Any:
    """A screened visit with blood pressure and the first `items` other values of `VISIT_VALUES`."""
    import datetime as dt

    from clinical.intake.items import BY_KEY
    from clinical.models import CheckupVisit, Observation, Patient, ScreeningResult

    patient = Patient.objects.create(facility=facility, mrn=mrn, family_name="山田", given_name="太郎",
                                     family_name_kana="ヤマダ", given_name_kana="タロウ", sex="M",
                                     birth_date=dt.date(1970, 4, 1))
    visit = CheckupVisit.objects.create(facility=facility, patient=patient, exam_date=dt.date(2024, 6, 1),
                                        course="tokutei", status="screened", follow_up=True)
    values = {"sbp": sbp, **dict(list(VISIT_VALUES.items())[:items])}
    Observation.objects.bulk_create(
        Observation(visit=visit, item=item, value_num=Decimal(value), unit=BY_KEY[item].unit, source="bench")
        for item, value in values.items())
    Observation.objects.create(visit=visit, item="urine_protein", value_text="±", source="bench")
    ScreeningResult.objects.create(visit=visit, ruleset="mhlw-2024", ruleset_version="4", follow_up=True,
                                   items={"sbp": "referral", "hba1c": "referral"},
                                   reasons=[f"収縮期血圧 {sbp} mmHg ≥ 受診勧奨判定値 140 mmHg",
                                            "HbA1c 6.8 % ≥ 受診勧奨判定値 6.5 %"])
    return visit


def _items_for_prompt(facility: Any, mv: Any, checkpoint: Path, target: int) -> tuple[int, int]:
    """(items per visit, prompt tokens): the visit whose prompt, as the engine encodes it, comes
    closest to `target` tokens (the anchors' drafts read 640; 0: every item). Trial visits are
    rolled back."""
    from django.db import transaction
    from transformers import AutoTokenizer

    from inference.inputs import prepare
    from inference.models import InferenceJob
    from ml.engines.transformers_engine import build_messages

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    counts = []
    with transaction.atomic():
        for k in range(len(VISIT_VALUES) + 1):
            visit = make_visit(facility, mrn=f"TRIAL{k}", items=k)
            job = InferenceJob(visit=visit, patient=visit.patient, model_version=mv, task="checkup_summary")
            request = prepare(job).request
            encoded: Any = tokenizer.apply_chat_template(build_messages(request, None), add_generation_prompt=True,
                                                         tokenize=True, return_dict=True)
            ids = encoded["input_ids"]
            counts.append((abs(len(ids) - target), k, len(ids)))
        transaction.set_rollback(True)
    _, k, tokens = min(counts) if target else counts[-1]
    return k, tokens


def _checkpoint() -> tuple[Path, str]:
    """(checkpoint directory, what it is); built once, reused when --checkpoint already holds one."""
    from ml.tiny import build_shaped_checkpoint, build_tiny_checkpoint

    where = Path(ARGS.checkpoint) if ARGS.checkpoint else Path(tempfile.mkdtemp()) / ARGS.shape
    if not (where / "config.json").exists():
        if ARGS.shape == "tiny-causal":
            build_tiny_checkpoint(where, kind="causal", seed=0)
        else:
            build_shaped_checkpoint(where, ARGS.shape, device=ARGS.device)
            if ARGS.device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()  # this process keeps no GPU memory: the engines are elsewhere
    what = "tiny causal checkpoint" if ARGS.shape == "tiny-causal" else f"random {ARGS.shape}-shaped checkpoint"
    return where, f"{what} on {ARGS.device}{', compiled' if ARGS.compile else ''}"


def _cpu_of(pid: int | None) -> float:
    import psutil

    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


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


def _engine_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the generation thread did between two `stats()`: prefills, decode steps per batch
    bucket, and the seconds it was busy with them (the rest of the round it waited for work)."""
    decode = {}
    for b, bucket in after.get("decode", {}).items():
        was = before.get("decode", {}).get(b, {"steps": 0, "seconds": 0.0})
        steps = bucket["steps"] - was["steps"]
        if steps:
            decode[b] = {"steps": steps, "ms_per_step": round(1000 * (bucket["seconds"] - was["seconds"]) / steps, 2)}
    prefill_s = after.get("prefill_s", 0.0) - before.get("prefill_s", 0.0)
    step_s = sum(d["steps"] * d["ms_per_step"] / 1000 for d in decode.values())
    return {"busy_s": round(prefill_s + step_s, 3), "prefill_s": round(prefill_s, 3),
            "last_step_at": after.get("last_step_at", 0.0), "woke_at": after.get("woke_at", 0.0),
            "prefills": after.get("prefills", 0) - before.get("prefills", 0),
            "prefill_rows": after.get("prefill_rows", 0) - before.get("prefill_rows", 0),
            "steps": after.get("steps", 0) - before.get("steps", 0), "decode_s": round(step_s, 3), "decode": decode,
            # events the engine process sent (tokens merged there over each request's window) and messages
            "pipe_events": after.get("pipe_events", 0) - before.get("pipe_events", 0),
            "pipe_messages": after.get("pipe_messages", 0) - before.get("pipe_messages", 0)}


def _engine_line(what: str, delta: dict[str, Any], round_s: float) -> str:
    buckets = ", ".join(f"b={b} {d['steps']} × {d['ms_per_step']:.1f} ms"
                        for b, d in sorted(delta["decode"].items(), key=lambda kv: int(kv[0])))
    return (f"engine during the last {what} round: busy {delta['busy_s']:.2f} s of {round_s:.2f} s "
            f"(prefill {delta['prefill_s']:.2f} s in {delta['prefills']} for {delta['prefill_rows']} requests; "
            f"{delta['steps']} decode steps {delta['decode_s']:.2f} s: {buckets}; "
            f"{delta['pipe_events']} events in {delta['pipe_messages']} messages to its caller)")


def main() -> dict[str, Any]:
    from celery.contrib.testing.worker import start_worker

    try:  # channels.testing imports daphne for its live-server case, which this bench does not use
        import daphne.testing  # noqa: F401
    except ImportError:  # the GPU machine's kit carries no daphne (twisted): stand in for that import only
        import types

        sys.modules["daphne"] = types.ModuleType("daphne")
        sys.modules["daphne.testing"] = types.SimpleNamespace(DaphneProcess=None)  # type: ignore[assignment]
    from channels.testing import WebsocketCommunicator
    from django.db import connections
    from django.db.models import Max, Min
    from django.test import Client

    from clinical import services as clinical_services
    from config import heap
    from config.asgi import application
    from config.celery import app
    from inference import conf, services
    from inference.inputs import prepare
    from inference.models import InferenceJob
    from ml.engines import build_engine

    figures: dict[str, Any] = {"n": N, "max_new_tokens": NEW_TOKENS, "shape": ARGS.shape, "device": ARGS.device,
                               "compile": ARGS.compile, "compile_shapes": ARGS.compile_shapes}
    call_command("migrate", "--noinput", verbosity=0)
    facility = clinical_services.facility_create(code="BENCH", name="ベンチ健診センター")
    staff = clinical_services.user_create(username="bench_staff", password="Bench-Password-42!",  # noqa: S106
                                          display_name="ベンチ")
    clinical_services.membership_grant(user=staff, facility=facility, role="staff")
    started = time.perf_counter()
    checkpoint, what = _checkpoint()
    figures["checkpoint_s"] = round(time.perf_counter() - started, 1)
    options: dict[str, Any] = {"device": ARGS.device, "max_batch_size": N}
    if ENGINE_CPUS:  # the direct engine and the worker's (through the model's options) alike
        options["cpus"] = ARGS.engine_cpus
    figures["engine_cpus"] = sorted(ENGINE_CPUS) if ENGINE_CPUS else "shared"
    figures["other_cpus"] = sorted(os.sched_getaffinity(0))
    figures["pinned_services"] = PINNED_SERVICES
    if ARGS.compile:
        options.update(compile=True, compile_shapes=ARGS.compile_shapes)

    def register() -> Any:
        # No SHA-256 of a random checkpoint (26 GB for the 13B shape: half a minute of hashing per run).
        return services.model_version_register(
            name=ARGS.shape, version="bench", engine="transformers", location=str(checkpoint),
            tasks=["checkup_summary"], options=options, max_new_tokens=NEW_TOKENS, enabled=True, weights_sha256="")

    items, tokens = _items_for_prompt(facility, register(), checkpoint, ARGS.prompt)
    print(f"visits with {items + 1} measured items: prompt {tokens} tokens (asked for {ARGS.prompt or 'all items'})")
    # A compiled decode step reads the whole cache window: size it to the task, as an operator
    # registering a model would (ModelVersion.options.max_seq_len).
    options["max_seq_len"] = tokens + NEW_TOKENS + 8
    register()
    # On a GPU the direct engine and the worker's cannot both hold the model: one direct run, closed
    # before the worker starts. On the CPU direct and stack runs alternate, the engine kept between
    # its runs, so that both see the same machine (this one's speed drifts by ±30% over minutes).
    rounds = max(1, ARGS.rounds) if ARGS.device == "cpu" else 1
    round_visits = [[make_visit(facility, mrn=f"B{r}-{i:05d}", items=items) for i in range(N)] for r in range(rounds)]
    spare = make_visit(facility, mrn="WARMUP", items=items)
    warm_round = [] if ARGS.cold else [make_visit(facility, mrn=f"W{i:05d}", items=items) for i in range(N)]
    singles = [make_visit(facility, mrn=f"S{i:05d}", items=items) for i in range(ARGS.singles)]
    # The same merging of tokens the worker's threads get with N jobs streaming (a stronger baseline
    # than waking every thread for every token).
    coalesce_s = max(conf.broadcast_every_s(), N / conf.broadcasts_per_s())

    # --- direct: the engine alone, in this process -------------------------------------------------
    direct_times: list[float] = []
    direct_walls: list[tuple[float, float]] = []  # each round's start and end, wall clock
    stack_walls: list[tuple[float, float]] = []
    engine_direct: list[dict[str, Any]] = []  # what the engine's generation thread did in each round
    probe: list[Any] = []
    engine: Any = None
    direct_tokens: list[int] = []
    prompt_tokens: list[int] = []
    if not ARGS.no_direct:
        probe = [services.job_create(actor=staff, visit=v) for v in round_visits[0]]  # only to build the requests
        requests = [prepare(InferenceJob.objects.select_related("model_version", "visit", "patient").get(pk=j.pk))
                    for j in probe]
        InferenceJob.objects.filter(pk__in=[j.pk for j in probe]).update(status="cancelled")
        app.control.purge()
        # The engine in a child process of this one, as the worker runs it (`ml.engines.process_engine`):
        # this process's own state (every round's clients, rows and messages) slowed an engine in
        # it by round (direct 4.97 / 5.84 / 6.92 s at 256 tokens). On a GPU the child exits when
        # closed and the worker then gets the whole GPU (two copies of a 13B model would not fit).
        engine = build_engine("transformers", str(checkpoint), **options, process=True)
        engine.warmup()

    def run_direct() -> None:
        direct_tokens.clear()
        prompt_tokens.clear()
        tag = uuid.uuid4().hex[:6]

        def direct_one(i: int) -> None:
            request = dataclasses.replace(requests[i].request, request_id=f"{requests[i].request.request_id}-{tag}")
            result: Any = engine.submit_sync(request, lambda _e: None, None, coalesce_s)
            direct_tokens.append(result.completion_tokens)
            prompt_tokens.append(result.prompt_tokens)

        started, wall = time.perf_counter(), time.time()
        threads = [threading.Thread(target=direct_one, args=(i,)) for i in range(N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        direct_times.append(time.perf_counter() - started)
        direct_walls.append((wall, time.time()))

    if engine is not None and rounds == 1:
        stats0 = engine.stats()
        run_direct()
        engine_direct.append(_engine_delta(stats0, engine.stats()))
        engine.close()
        engine = None

    # --- the stack ---------------------------------------------------------------------------------
    client = Client()
    client.force_login(staff)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    still_open: list[Any] = []  # with --leave-at-once off: the round's pages, closed after its clock stopped

    async def watch(job_id: int, since: float | None = None, stay: bool = False) -> dict[str, Any]:
        """Follow a job's websocket to its final state; with `since`, note when the first token came.
        `stay`: the page stays open (a physician reading the draft), closed after the round."""
        ws = WebsocketCommunicator(application, f"/ws/jobs/{job_id}/",
                                   headers=[(b"cookie", cookie), (b"origin", b"http://testserver")])
        connected, _ = await ws.connect(timeout=30)
        assert connected
        first: float | None = None
        while True:
            message = await ws.receive_json_from(timeout=600)
            if first is None and (message["type"] == "job.token" or message.get("text")):
                first = time.perf_counter()
            if message["type"] == "job.state" and message["final"]:
                # The clock stops when the client holds the final state, not after its disconnect.
                message["_at"], message["_wall"] = time.perf_counter(), time.time()
                if since is not None:
                    message["_first_token_s"] = (first or message["_at"]) - since
                    message["_final_s"] = message["_at"] - since
                if stay:
                    still_open.append(ws)
                else:
                    await ws.disconnect()
                return message

    async def warm_up() -> None:
        # One job through the whole stack before the clock starts: the worker loads and warms its
        # model at start (the preload; this job waits for it), and this takes the first-job costs of
        # the rest (imports on the prepare path, the worker threads' first connections) out of the
        # figure, as they are out of a worker that has been running.
        settings.INFERENCE_AUTO_DRAFT = True
        [job] = await asyncio.to_thread(services.jobs_create_for_arrival, visit_ids=[spare.pk])
        settings.INFERENCE_AUTO_DRAFT = False
        await watch(job.pk)
        # Then a round of N, untimed: Celery's thread pool creates its threads on demand, and each
        # new thread opens its database connection and builds its own result-backend client
        # (Celery keeps one per thread) on its first job. A worker that has been running has them.
        if warm_round:
            settings.INFERENCE_AUTO_DRAFT = True
            jobs = await asyncio.to_thread(services.jobs_create_for_arrival, visit_ids=[v.pk for v in warm_round])
            settings.INFERENCE_AUTO_DRAFT = False
            await asyncio.gather(*(watch(j.pk) for j in jobs))

    async def one_at_a_time() -> list[dict[str, Any]]:
        """A user presses 下書きを作成 with nothing else running: row → … → websocket."""
        finals = []
        for v in singles:
            t0 = time.perf_counter()
            job = await asyncio.to_thread(services.job_create, actor=staff, visit=v)
            finals.append(await watch(job.pk, since=t0))
        return finals

    async def run_stack(visits: list[Any]) -> list[dict[str, Any]]:
        if ONE_BY_ONE:  # N users each pressing "draft": rows created one after another
            jobs = [await asyncio.to_thread(services.job_create, actor=staff, visit=v) for v in visits]
        else:  # N visits arriving together (an import): the path that drafts arrivals
            settings.INFERENCE_AUTO_DRAFT = True  # that path drafts only where auto-drafting is on
            jobs = await asyncio.to_thread(services.jobs_create_for_arrival, visit_ids=[v.pk for v in visits])
            settings.INFERENCE_AUTO_DRAFT = False
        assert len(jobs) == N
        return list(await asyncio.gather(*(watch(j.pk, stay=not ARGS.leave_at_once) for j in jobs)))

    async def close_pages() -> None:
        await asyncio.gather(*(ws.disconnect() for ws in still_open))
        still_open.clear()

    stack_times: list[float] = []
    engine_stack: list[dict[str, Any]] = []

    def worker_engine_stats() -> dict[str, Any]:
        """The worker's engine counters, through Celery's remote control as an operator asks
        (`celery inspect engine_stats`); in-process, straight from the pool."""
        from inference.engine_pool import engines_stats

        if IN_PROCESS:
            engines = engines_stats()
        else:
            replies = app.control.broadcast("engine_stats", reply=True, timeout=10, limit=1)
            engines = next(iter(replies[0].values())) if replies else {}
        return next(iter(engines.values()), {})

    cpu_rounds: list[dict[str, float]] = []
    single_finals: list[dict[str, Any]] = []
    finals: list[dict[str, Any]] = []

    async def session(worker_pid: int | None) -> None:
        """Everything after the worker's spawn on one event loop, as a websocket server runs
        (channels_redis binds its receiving to the loop: a second `asyncio.run` in this process left
        some clients of a later run waiting for group messages that never came)."""
        nonlocal single_finals, finals
        await warm_up()
        # From the worker's spawn to its first draft: model load + compile/warm-up + one job.
        figures["worker_ready_s"] = round(time.perf_counter() - spawned, 1)
        single_finals = await one_at_a_time()
        # This process is the websocket server and its clients, and also the harness: it imported
        # torch and transformers for the direct engine and the checkpoint after the application
        # froze its own start (config/asgi.py). Those live to the end too: freeze them as a server
        # freezes its imports, or a full collection walking them (0.25 s) lands in a timed round.
        heap.settle()
        for visits in round_visits:
            if engine is not None:
                idle0 = _cpu(worker_pid) if worker_pid else {}
                engine0 = _cpu_of(engine.pid)
                stats0 = await asyncio.to_thread(engine.stats)
                await asyncio.to_thread(run_direct)
                engine_direct.append(_engine_delta(stats0, await asyncio.to_thread(engine.stats)))
                if worker_pid:  # an idle worker should use nothing while the engine runs alone
                    idle = _cpu(worker_pid)
                    used = _cpu_of(engine.pid) - engine0
                    print(f"CPU seconds during a direct run: direct engine process {used:.2f}, "
                          + ", ".join(f"{k} {idle[k] - idle0[k]:.2f}" for k in idle))
            cpu0 = _cpu(worker_pid) if worker_pid else {}
            stats0 = await asyncio.to_thread(worker_engine_stats)
            started, wall = time.perf_counter(), time.time()
            finals = await run_stack(visits)
            stack_times.append(max(m["_at"] for m in finals) - started)
            stack_walls.append((wall, max(m["_wall"] for m in finals)))
            await close_pages()
            engine_stack.append(_engine_delta(stats0, await asyncio.to_thread(worker_engine_stats)))
            if worker_pid:
                cpu_rounds.append({k: round(v - cpu0[k], 2) for k, v in _cpu(worker_pid).items()})

    spawned = time.perf_counter()
    if IN_PROCESS:
        with start_worker(app, pool="threads", concurrency=N, queues=["gpu"], perform_ping_check=False,
                          loglevel="WARNING", shutdown_timeout=30):
            asyncio.run(session(None))
    else:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--pool", "threads",
             "--concurrency", str(N), "-n", "benchgpu@%h", "-l", "WARNING", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=dict(os.environ))
        spies: list[subprocess.Popen[bytes]] = []
        try:
            deadline = time.monotonic() + 120
            while not app.control.ping(timeout=1.0):
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError("the GPU worker did not start")
            # MEDLMM_BENCH_PYSPY=<prefix>: sample the threads holding the interpreter lock (Python's
            # CPU time) of the worker and of this process (ASGI app + clients) from the worker's
            # start, as raw stacks in <prefix>.worker and <prefix>.ws.
            profile = os.environ.get("MEDLMM_BENCH_PYSPY")
            spies = [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--gil", "--nonblocking", "-r", "200",
                                       "--format", "raw", "-o", f"{profile}.{name}"], stdout=subprocess.DEVNULL)
                     for name, pid in (("worker", worker.pid), ("ws", os.getpid()))] if profile else []
            asyncio.run(session(worker.pid))
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            worker.terminate()
            worker.wait(timeout=60)
    if engine is not None:
        engine.close()
    # The last round's rows give the timeline and the delivery lag; every round gives a ratio.
    visits = round_visits[-1]
    stack_s = statistics.median(stack_times)
    direct_s = statistics.median(direct_times) if direct_times else None
    ratios = [st / dt for st, dt in zip(stack_times, direct_times, strict=False)]
    cpu = {k: round(statistics.median(c[k] for c in cpu_rounds), 2) for k in cpu_rounds[0]} if cpu_rounds else {}
    measured = InferenceJob.objects.filter(visit__in=visits).exclude(pk__in=[j.pk for j in probe])
    span = measured.aggregate(
        q0=Min("queued_at"), q1=Max("queued_at"), s0=Min("started_at"), s1=Max("started_at"),
        f0=Min("first_token_at"), f1=Max("first_token_at"), e0=Min("finished_at"), e1=Max("finished_at"))
    errors = sorted(set(measured.exclude(error="").values_list("error", flat=True)))
    # From the row's finished_at (written by the worker) to the client holding the final state.
    finished = {pk: at.timestamp() for pk, at in measured.values_list("pk", "finished_at") if at is not None}
    lags = sorted(m["_wall"] - finished[m["job"]] for m in finals if m["job"] in finished)
    if engine_stack and finished and engine_stack[-1]["last_step_at"]:
        # The tail of the last round: the engine's last decode step → the last row finished → the
        # last client holding its final state (all wall clock, one machine).
        last_step = engine_stack[-1]["last_step_at"]
        figures["tail_s"] = {"engine_last_step_to_last_row": round(max(finished.values()) - last_step, 3),
                             "engine_last_step_to_last_client": round(max(m["_wall"] for m in finals) - last_step, 3)}
    t0 = span["q0"]
    timeline = {k: round((v - t0).total_seconds(), 2) for k, v in span.items() if v is not None}
    # Every round's timeline too: one slow round (jobs claimed late) shows which step was late.
    timeline_rounds = []
    for rv in round_visits:
        sp = InferenceJob.objects.filter(visit__in=rv).exclude(pk__in=[j.pk for j in probe]).aggregate(
            q0=Min("queued_at"), s0=Min("started_at"), s1=Max("started_at"), f0=Min("first_token_at"),
            f1=Max("first_token_at"), e1=Max("finished_at"))
        if (q0 := sp["q0"]) is not None:
            timeline_rounds.append({k: round((v - q0).total_seconds(), 3) for k, v in sp.items() if v is not None})
    figures["timeline_rounds"] = timeline_rounds
    stack_tokens = sum(m["completion_tokens"] for m in finals)
    prompt = measured.aggregate(p=Max("prompt_tokens"))["p"]
    connections.close_all()

    figures.update(
        stack_s=round(stack_s, 3), stack_tokens_per_s=round(stack_tokens / stack_s, 1),
        stack_reports_per_min=round(N / stack_s * 60, 1),
        completion_tokens=sorted({m["completion_tokens"] for m in finals}),
        prompt_tokens=prompt, final_statuses=sorted({m["status"] for m in finals}), timeline=timeline, cpu_s=cpu,
        single_first_token_ws_s=[round(m["_first_token_s"], 3) for m in single_finals],
        single_draft_ws_s=[round(m["_final_s"], 3) for m in single_finals], errors=[e[:300] for e in errors[:5]],
        final_delivery_lag_s={"p50": round(statistics.median(lags), 3), "max": round(lags[-1], 3)} if lags else None)
    if direct_s is not None:
        figures.update(direct_s=round(direct_s, 3), direct_tokens_per_s=round(sum(direct_tokens) / direct_s, 1),
                       direct_rounds_s=[round(t, 3) for t in direct_times], prompt_tokens=max(prompt_tokens))
    figures["stack_rounds_s"] = [round(t, 3) for t in stack_times]
    figures["stack_walls"] = stack_walls  # each round's start and end (wall clock): to line up other processes' logs
    # Where a round's time went, by the engine's own clock: from the round's start to the engine's
    # first request (`woke_at`), the engine busy (prefills and decode steps), from its last step to
    # the round's end (the last client holding its final state; direct: the last thread returning).
    # The stack's overhead is the sum of the differences; these do not depend on the engine's speed.
    parts = {}
    for what, walls, deltas in (("direct", direct_walls, engine_direct), ("stack", stack_walls, engine_stack)):
        rows = [(d["woke_at"] - w0, d["busy_s"], w1 - d["last_step_at"]) for (w0, w1), d in zip(walls, deltas,
                                                                                                 strict=False)
                if d.get("woke_at") and d.get("last_step_at")]
        if rows:
            parts[what] = {k: round(statistics.median(r[i] for r in rows), 3)
                           for i, k in enumerate(("start_to_first_request_s", "engine_busy_s", "last_step_to_end_s"))}
    figures["round_parts"] = parts
    figures["engine_direct_rounds"], figures["engine_stack_rounds"] = engine_direct, engine_stack
    if ratios:
        figures["ratio_stack_to_direct"] = round(statistics.median(ratios), 3)
        figures["ratio_rounds"] = [round(r, 3) for r in ratios]
    if ARGS.shape in ANCHOR_BATCH64:
        anchor = ANCHOR_BATCH64[ARGS.shape]
        figures["ratio_to_compiled_static_batch"] = round(figures["stack_reports_per_min"] / anchor, 3)

    print(f"engine: {what}, {N} concurrent drafts, max_new_tokens={NEW_TOKENS}, prompt {prompt} tokens")
    print("CPUs: " + (f"engine process {figures['engine_cpus']}, everything else {figures['other_cpus']}"
                      if ENGINE_CPUS else f"shared by every process ({figures['other_cpus']})")
          + (f"; PostgreSQL and Redis there too ({len(PINNED_SERVICES)} processes)" if PINNED_SERVICES
             else "; PostgreSQL and Redis where the system runs them" if ENGINE_CPUS else ""))
    if cpu:
        print("CPU seconds during a stack run (median of rounds): "
              + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    print("timeline (s after the first row): " + ", ".join(f"{k}={v:.2f}" for k, v in timeline.items()))
    if engine_direct:
        print(_engine_line("direct", engine_direct[-1], direct_times[-1]))
    if engine_stack:
        print(_engine_line("stack", engine_stack[-1], stack_times[-1]))
    for what, p in figures["round_parts"].items():
        print(f"{what} round (medians): start → engine's first request {p['start_to_first_request_s']:.3f} s, "
              f"engine busy {p['engine_busy_s']:.3f} s, engine's last step → end {p['last_step_to_end_s']:.3f} s")
    if "tail_s" in figures:
        print(f"engine's last decode step → last row's finished_at (when its worker had the result) "
              f"{figures['tail_s']['engine_last_step_to_last_row']:.3f} s"
              f" → last client holds its final state {figures['tail_s']['engine_last_step_to_last_client']:.3f} s")
    if lags:
        print(f"row finished → client holds the final state: median {statistics.median(lags):.3f} s, "
              f"max {lags[-1]:.3f} s")
    if direct_s is not None:
        print(f"direct (engine only):          {direct_s:7.2f} s  {figures['direct_tokens_per_s']:8.0f} tok/s")
    where = "worker thread in this process" if IN_PROCESS else (
        "worker process, engine in its own" if settings.INFERENCE_ENGINE_PROCESS else "worker process")
    print(f"stack  (row→Celery→ws client, {where}): {stack_s:7.2f} s  {figures['stack_tokens_per_s']:8.0f} tok/s  "
          f"{figures['stack_reports_per_min']:.1f} reports/min  (final states: {figures['final_statuses']}, "
          f"tokens per draft {figures['completion_tokens']})")
    print(f"worker spawn → first draft done (load + warm-up + one job): {figures['worker_ready_s']:.1f} s")
    if single_finals:
        first = statistics.median(figures["single_first_token_ws_s"])
        whole = statistics.median(figures["single_draft_ws_s"])
        print(f"one draft at a time, row → websocket: first token {first:.3f} s, whole draft {whole:.3f} s "
              f"(median of {len(single_finals)})")
    for error in figures["errors"]:
        print(f"  error: {error}")
    if ratios:
        ratio = statistics.median(ratios)
        print("rounds (direct / stack s): " + ", ".join(f"{d:.2f} / {t:.2f}" for d, t in zip(direct_times, stack_times,
                                                                                              strict=False)))
        print(f"ratio stack/direct: {ratio:.3f} median of {len(ratios)} rounds "
              f"({', '.join(f'{r:.2f}' for r in ratios)}; overhead {100 * (ratio - 1):.1f}%)")
    if "ratio_to_compiled_static_batch" in figures:
        print(f"ratio to the compiled static batch of 64 ({ANCHOR_BATCH64[ARGS.shape]:.0f} reports/min, H200): "
              f"{figures['ratio_to_compiled_static_batch']:.3f}  (goal ≥ 1.0 for the 13B shape)")
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(figures, ensure_ascii=False, indent=2))
    return figures


if __name__ == "__main__":
    try:
        main()
    finally:
        from django.db import connections

        connections.close_all()
        _admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
