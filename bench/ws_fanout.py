"""Websocket fan-out benchmark (issue 7): one ASGI process with 1,000 authenticated subscribers
to draft streams (`ws/jobs/<id>/`); token delivery from the GPU worker's broadcast to the
browser. Goal: p95 ≤ 100 ms.

    .venv/bin/python bench/ws_fanout.py                        # 1,000 subscribers, 60 s
    .venv/bin/python bench/ws_fanout.py --clients 200 --duration 20

- Server: uvicorn serving config.asgi, one worker, the Redis channel layer (REDIS_DB_BASE =
  --redis-db-base; the layer's database, base + 2, is flushed first), DEBUG off, PostgreSQL.
- Data: its own small database (`medlmm_ws_bench`, seeded by bench/load_seed.py; --reuse-db keeps
  it); --jobs running jobs of facility A, claimed as a worker claims them.
- Clients: --client-procs separate processes (asyncio + `websockets`), each subscriber with a
  physician's session (second factor passed) and the Origin a browser sends; subscribers are
  spread evenly over the jobs. --worklist-clients more subscribe to `ws/worklist/`.
- Publisher (this process): per job a thread feeding --token-rate tokens/s into the GPU worker's
  own stream code (`inference.runner._Stream`: it persists the text every 200 ms and broadcasts
  the new text at most every 100 ms through `inference.broadcasting`, the worker's sender), with
  the send time and a sequence number added to each token message. Clients measure receive −
  send (same clock, same machine), count what they missed, and rebuild the text from the deltas
  and offsets as the page does; the rebuilt text must equal what was generated.

The clients and the publisher use the same CPU cores as the server (2 here): the figures are
a pessimistic bound for the server alone, and the output says how much CPU each side took.
Writes var/bench/ws_fanout.json."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_stats import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
VAR_DIR = os.environ.get("MEDLMM_VAR_DIR", "/tmp/medlmm-load-bench-var")  # shared with load_seed: same SECRET_KEY
WORK = Path("/tmp/medlmm-ws-fanout")
TOKENS = ("所見", "：", "血圧", "は", "収縮期", "148", " mmHg", "と", "高値", "です", "。", "LDL", "コレステ", "ロール",
          "も", "162", " mg/dL", "で", "受診", "勧奨", "判定値", "を", "超えて", "います", "。", "\n")


# --- client processes (no Django) ---------------------------------------------------------------

def client_main(spec_path: str, out_path: str) -> None:
    asyncio.run(_client(json.loads(Path(spec_path).read_text(encoding="utf-8")), Path(out_path)))


async def _client(spec: dict[str, Any], out: Path) -> None:
    from websockets.asyncio.client import ClientConnection, connect

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    def snapshot() -> None:  # streaming stopped: what each page shows before the job's final state
        for r in results:
            r["text_at_end_sha256"] = hashlib.sha256(r["text"].encode()).hexdigest()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, snapshot)
    sem = asyncio.Semaphore(spec["concurrency"])
    results: list[dict[str, Any]] = []
    ready: list[asyncio.Future[None]] = []
    started_at = time.time()

    async def consume(ws: ClientConnection, r: dict[str, Any]) -> None:
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "job.token":
                offset = int(msg["offset"])
                r["text"] = r["text"][:offset] + msg["text"]
                if "bench_sent" in msg:
                    r["lat"].append(round((now - msg["bench_sent"]) * 1000, 2))
                    r["age"].append(round((now - msg["bench_token_t"]) * 1000, 2))
                    r["seqs"].add(msg["bench_seq"])
            elif kind == "job.state":
                r["text"] = msg.get("text") or ""
            elif kind == "worklist.draft" and "bench_sent" in msg:
                r["lat"].append(round((now - msg["bench_sent"]) * 1000, 2))
                r["seqs"].add(msg["bench_seq"])

    async def one(conn: dict[str, Any], done: asyncio.Future[None]) -> None:
        r: dict[str, Any] = {"job": conn.get("job"), "ok": False, "error": "", "lat": [], "age": [], "seqs": set(),
                             "text": "", "connect_ms": None, "closed": None}
        results.append(r)
        ws = None
        try:
            async with sem:
                t = time.perf_counter()
                ws = await connect(spec["url"] + conn["path"], open_timeout=120, max_size=2 ** 22,
                                   compression=None if spec.get("no_deflate") else "deflate",
                                   additional_headers={"Cookie": conn["cookie"], "Origin": spec["origin"]})
                first = json.loads(await asyncio.wait_for(ws.recv(), 120))  # job.state / worklist.hello
                r["connect_ms"] = round((time.perf_counter() - t) * 1000, 2)
                r["connected_at"] = time.time()
            if first.get("type") == "job.state":
                r["text"] = first.get("text") or ""
            r["ok"] = True
        except Exception as exc:  # a refused or timed-out subscriber is a result, not a crash
            r["error"] = f"{type(exc).__name__}: {exc}"[:200]
            if ws is not None:
                await ws.close()
            return
        finally:
            if not done.done():
                done.set_result(None)
        task = asyncio.create_task(consume(ws, r))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # the server closed it before the end: a dropped subscriber
            r["closed"] = f"{ws.close_code} {ws.close_reason}".strip()
            if task.exception() is not None:
                r["closed"] += f" {type(task.exception()).__name__}"
        else:
            task.cancel()
        stopper.cancel()
        try:
            await asyncio.wait_for(ws.close(), 5)
        except Exception:  # noqa: S110  (closing at the end: nothing left to measure)
            pass

    loop = asyncio.get_running_loop()
    tasks = []
    for conn in spec["conns"]:
        fut: asyncio.Future[None] = loop.create_future()
        ready.append(fut)
        tasks.append(asyncio.create_task(one(conn, fut)))
    await asyncio.gather(*ready)
    ok = sum(1 for r in results if r["ok"])
    print(f"READY {ok} {len(results) - ok} {started_at} {time.time()}", flush=True)
    await stop.wait()
    await asyncio.wait(tasks, timeout=20)
    for r in results:
        r["seqs"] = len(r["seqs"])
        text = r.pop("text")
        r["text_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        r["text_len"] = len(text)
    out.write_text(json.dumps({"results": results}), encoding="utf-8")


# --- orchestration (Django in this process: setup and the publisher) -----------------------------

def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def env_for(args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}", "DB_CONN_MAX_AGE": "60", "REDIS_URL": REDIS,
           "REDIS_DB_BASE": str(args.redis_db_base), "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
           "MEDLMM_VAR_DIR": VAR_DIR, "DJANGO_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DB_POOL_MAX_SIZE", None)
    return env


class Publisher:
    """Streams tokens for each job through the worker's own `_Stream`, stamping each broadcast."""

    def __init__(self, jobs: list[Any], worker_id: str, rate: float) -> None:
        from inference import runner

        self.jobs, self.worker_id, self.rate = jobs, worker_id, rate
        self.sent: dict[int, int] = {j.pk: 0 for j in jobs}  # token messages per job
        self.tokens: dict[int, int] = {j.pk: 0 for j in jobs}
        self.texts: dict[int, str] = {}
        self.pending: dict[int, deque[tuple[int, float]]] = {j.pk: deque() for j in jobs}  # (end offset, time)
        self.lock = threading.Lock()
        self._original = runner.token_message
        runner.token_message = self._stamped

    def _stamped(self, job_id: int, offset: int, text: str, completion_tokens: int, progress: int) -> dict[str, Any]:
        message = self._original(job_id, offset, text, completion_tokens, progress)
        pending = self.pending[job_id]
        while pending and pending[0][0] <= offset:
            pending.popleft()  # tokens sent in earlier messages
        self.sent[job_id] += 1
        message.update(bench_seq=self.sent[job_id], bench_sent=time.time(),
                       bench_token_t=pending[0][1] if pending else time.time())
        return message

    def finish(self) -> None:
        """What the worker's `job_finish` sends on commit: the persisted whole text as the job's state
        (a page that missed deltas at the end of the stream completes from it)."""
        from inference import services
        from inference.broadcasting import broadcast
        from inference.events import job_group, job_state
        from inference.models import InferenceJob

        for job in self.jobs:
            services.job_progress(job_id=job.pk, worker_id=self.worker_id, partial_text=self.texts[job.pk],
                                  completion_tokens=self.tokens[job.pk], prompt_tokens=0, first_token=False)
            broadcast(job_group(job.pk), job_state(InferenceJob.objects.select_related("model_version").get(pk=job.pk)))

    def run(self, seconds: float) -> None:
        threads = [threading.Thread(target=self._job, args=(job, seconds, i / max(1, len(self.jobs)) / self.rate))
                   for i, job in enumerate(self.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _job(self, job: Any, seconds: float, phase: float) -> None:
        from django.db import connection

        from inference import runner
        from ml.protocol import Token

        stream = runner._Stream(job=job, held=runner._Held(worker_id=self.worker_id),
                                limit=max(1, job.model_version.max_new_tokens))
        interval = 1.0 / self.rate
        start = time.monotonic() + phase
        n = 0
        while True:
            due = start + n * interval
            if due - start > seconds:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            token = TOKENS[n % len(TOKENS)]
            n += 1
            self.pending[job.pk].append((len(stream.text) + len(token), time.time()))
            stream.on_event(Token(request_id=f"bench-{job.pk}", text=token, completion_tokens=n))
        stream.send(time.monotonic())  # the worker's final flush
        self.tokens[job.pk] = n
        self.texts[job.pk] = stream.text
        connection.close()


class OverCapacity(logging.Handler):
    """Counts channels_redis's "N of M channels over capacity in group G" (logged at INFO by the
    sender): messages the channel layer dropped because the server's queue in Redis was full."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events = 0
        self.channels = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "over capacity" in record.getMessage():
            self.events += 1
            self.channels += int(str(record.args[0])) if isinstance(record.args, tuple) and record.args else 0


def worklist_loop(facility_id: int, jobs: list[Any], seconds: float, counter: dict[str, int]) -> None:
    """One draft finished per second, as the worklist hears of it (ids, no PHI)."""
    from inference.broadcasting import broadcast
    from inference.events import worklist_group, worklist_message

    messages = [worklist_message(j) for j in jobs]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        counter["sent"] += 1
        broadcast(worklist_group(facility_id), {**messages[counter["sent"] % len(messages)],
                                                "bench_seq": counter["sent"], "bench_sent": time.time()})
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", default="medlmm_ws_bench")
    parser.add_argument("--reuse-db", action="store_true", help="keep the database of an earlier run")
    parser.add_argument("--clients", type=int, default=1000, help="subscribers to job streams")
    parser.add_argument("--jobs", type=int, default=10, help="running jobs the subscribers are spread over")
    parser.add_argument("--worklist-clients", type=int, default=0, help="subscribers to ws/worklist/ besides")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes in flight per client process")
    parser.add_argument("--token-rate", type=float, default=30.0, help="tokens/s generated per job")
    parser.add_argument("--duration", type=int, default=60, help="seconds of streaming measured")
    parser.add_argument("--no-deflate", action="store_true",
                        help="clients do not offer permessage-deflate (browsers do; this isolates its cost)")
    parser.add_argument("--port", type=int, default=8052)
    parser.add_argument("--redis-db-base", type=int, default=4)
    parser.add_argument("--goal-ms", type=float, default=100.0)
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "ws_fanout.json"))
    parser.add_argument("--client", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(*args.client)
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    import shutil

    import requests

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    load_before = os.getloadavg()
    seed_env = {**os.environ, "MEDLMM_VAR_DIR": VAR_DIR}
    seed = [sys.executable, str(ROOT / "bench" / "load_seed.py"), "--db", args.db]
    if not args.reuse_db:
        subprocess.run([*seed, "--visits", str(max(200, args.jobs)), "--reports", "0", "--audit-events", "0",
                        "--no-vacuum"], cwd=ROOT, env=seed_env, check=True, stdout=subprocess.DEVNULL)
    per_user = max(1, min(200, (args.clients + args.worklist_clients) // 4))
    subprocess.run([*seed, "--sessions-only", "--sessions-per-user", str(per_user), "--samples", "10",
                    "--out", str(WORK / "sessions.json")], cwd=ROOT, env=seed_env, check=True,
                   stdout=subprocess.DEVNULL)
    sessions = json.loads((WORK / "sessions.json").read_text(encoding="utf-8"))

    os.environ.update({**env_for(args), "DB_POOL_MAX_SIZE": "0"})  # the publisher's threads keep their own
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import redis

    from clinical.models import CheckupVisit
    from inference import services
    from inference.models import InferenceJob, JobStatus, ModelVersion

    redis.Redis.from_url(f"{REDIS}/{args.redis_db_base + 2}").flushdb()  # stale group members of earlier runs
    facility = sessions["facilities"]["LOADA"]
    worker_id = f"bench-ws-fanout:{os.getpid()}"
    model = ModelVersion.objects.get(engine="template")
    visits = facility["visits"][: args.jobs]
    while len(visits) < args.jobs:
        visits.append(visits[len(visits) % len(facility["visits"])])
    InferenceJob.objects.filter(worker_id=worker_id, status=JobStatus.RUNNING).update(status=JobStatus.FAILED)
    jobs = []
    for i in range(args.jobs):
        visit = CheckupVisit.objects.get(pk=visits[i])
        job = InferenceJob.objects.create(facility_id=facility["id"], visit=visit, patient_id=visit.patient_id,
                                          model_version=model, task="checkup_summary")
        claimed = services.job_claim(job_id=job.pk, worker_id=worker_id)
        assert claimed is not None
        jobs.append(claimed)

    log = open(WORK / "server.log", "wb")  # open as long as the server runs
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                               "--port", str(args.port), "--workers", "1", "--lifespan", "off", "--no-access-log",
                               "--ws-per-message-deflate", "false"],  # as config/launcher.py runs it
                              cwd=ROOT, env=env_for(args), stdout=log, stderr=subprocess.STDOUT)
    clients: list[subprocess.Popen[str]] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{args.port}/healthz", timeout=5).json()
                if health["checks"]["database"]["ok"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"server did not come up: see {WORK / 'server.log'}")
            time.sleep(0.5)

        physician = facility["users"]["physician"]["username"]
        keys = sessions["sessions"][physician]
        cookie_name = sessions["cookie_name"]
        conns = [{"path": f"/ws/jobs/{jobs[i % len(jobs)].pk}/", "job": jobs[i % len(jobs)].pk,
                  "cookie": f"{cookie_name}={keys[i % len(keys)]}"} for i in range(args.clients)]
        conns += [{"path": "/ws/worklist/", "job": None, "cookie": f"{cookie_name}={keys[i % len(keys)]}"}
                  for i in range(args.worklist_clients)]
        for k in range(args.client_procs):
            spec = {"url": f"ws://127.0.0.1:{args.port}", "origin": f"http://127.0.0.1:{args.port}",
                    "concurrency": args.concurrency, "no_deflate": args.no_deflate,
                    "conns": conns[k::args.client_procs]}
            (WORK / f"client-{k}.json").write_text(json.dumps(spec), encoding="utf-8")
        t_spawn = time.time()
        clients = [subprocess.Popen([sys.executable, __file__, "--client", str(WORK / f"client-{k}.json"),
                                     str(WORK / f"client-{k}-out.json")], cwd=ROOT, stdout=subprocess.PIPE,
                                    text=True) for k in range(args.client_procs)]
        readies = []
        for proc in clients:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith("READY"):
                raise RuntimeError(f"a client process failed: {line!r}")
            _r, ok, failed, started, done = line.split()
            readies.append((int(ok), int(failed), float(started), float(done)))
        connect_wall = max(r[3] for r in readies) - min(r[2] for r in readies)
        print(f"{sum(r[0] for r in readies):,} subscribers connected in {connect_wall:.1f} s "
              f"({sum(r[1] for r in readies)} failed; client processes started "
              f"{min(r[2] for r in readies) - t_spawn:.1f} s after spawning)", flush=True)

        exceptions = {"connect": _exceptions()}
        import psutil

        groups = {"server": [server.pid, *(c.pid for c in psutil.Process(server.pid).children(recursive=True))],
                  "clients": [c.pid for c in clients], "publisher (this process)": [os.getpid()],
                  "redis": [p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis")],
                  "postgres (this db)": [p.pid for p in psutil.process_iter(["name", "cmdline"])
                                         if (p.info["name"] or "").startswith("postgres")
                                         and f" {args.db} " in " ".join(p.info["cmdline"] or []) + " "]}
        cpu_before = {k: cpu_seconds(v) for k, v in groups.items()}
        over = OverCapacity()
        layer_log = logging.getLogger("channels_redis.core")
        layer_log.addHandler(over)
        layer_log.setLevel(logging.INFO)
        layer_log.propagate = False  # counted, not printed
        publisher = Publisher(jobs, worker_id, args.token_rate)
        counter = {"sent": 0}
        side = threading.Thread(target=worklist_loop, args=(facility["id"], jobs, args.duration, counter),
                                daemon=True) if args.worklist_clients else None
        t0 = time.perf_counter()
        if side:
            side.start()
        publisher.run(args.duration)
        if side:
            side.join()
        publish_wall = time.perf_counter() - t0
        time.sleep(3.0)  # let the last messages arrive
        cpu = {k: cpu_seconds(v) - cpu_before[k] for k, v in groups.items()}
        exceptions["streaming"] = _exceptions() - exceptions["connect"]
        for proc in clients:
            proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        publisher.finish()
        time.sleep(3.0)
        for proc in clients:
            proc.send_signal(signal.SIGTERM)
        for proc in clients:
            proc.wait(timeout=120)
        time.sleep(2.0)
        exceptions["disconnect"] = _exceptions() - exceptions["connect"] - exceptions["streaming"]
        for job in jobs:
            services.job_fail(job_id=job.pk, worker_id=worker_id, reason="ベンチマーク終了", stage="bench")
    finally:
        for proc in clients:
            if proc.poll() is None:
                proc.kill()
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    exceptions["layer_over_capacity_sends"] = over.events
    report(args, publisher, counter, connect_wall, publish_wall, cpu, load_before, exceptions)


def _exceptions() -> int:
    """Unhandled exceptions the server logged so far (uvicorn: "Exception in ASGI application")."""
    return (WORK / "server.log").read_text(encoding="utf-8", errors="replace").count("Exception in ASGI application")


def report(args: argparse.Namespace, publisher: Publisher, counter: dict[str, int], connect_wall: float,
           publish_wall: float, cpu: dict[str, float], load_before: tuple[float, float, float],
           exceptions: dict[str, int]) -> None:
    results = []
    for k in range(args.client_procs):
        results += json.loads((WORK / f"client-{k}-out.json").read_text(encoding="utf-8"))["results"]
    job_subs = [r for r in results if r["job"] is not None]
    wl_subs = [r for r in results if r["job"] is None]
    lat = [x for r in job_subs for x in r["lat"]]
    age = [x for r in job_subs for x in r["age"]]
    expected = sum(publisher.sent[r["job"]] for r in job_subs if r["ok"])
    received = sum(r["seqs"] for r in job_subs if r["ok"])
    digests = {pk: hashlib.sha256(text.encode()).hexdigest() for pk, text in publisher.texts.items()}
    mismatched = sum(1 for r in job_subs if r["ok"] and r["text_sha256"] != digests[r["job"]])
    incomplete_at_end = sum(1 for r in job_subs if r["ok"] and r.get("text_at_end_sha256") != digests[r["job"]])
    connect = [r["connect_ms"] for r in results if r["connect_ms"] is not None]
    failed = [r["error"] for r in results if not r["ok"]]
    dropped = [r["closed"] for r in results if r["closed"]]
    wl_lat = [x for r in wl_subs for x in r["lat"]]
    tokens = sum(publisher.tokens.values())
    messages = sum(publisher.sent.values())

    def ms(values: list[float]) -> dict[str, float | None]:
        return {f"p{p}": percentile(values, p) for p in (50, 95, 99)} | {"max": max(values) if values else None}

    delivery = ms(lat)
    p95 = delivery["p95"]
    out: dict[str, Any] = {
        "goal": f"token delivery p95 ≤ {args.goal_ms:.0f} ms with {args.clients:,} subscribers on one ASGI process",
        "config": {"clients": args.clients, "jobs": args.jobs, "subscribers_per_job": args.clients / args.jobs,
                   "worklist_clients": args.worklist_clients, "client_processes": args.client_procs,
                   "token_rate_per_job": args.token_rate, "duration_s": args.duration,
                   "permessage_deflate": not args.no_deflate,
                   "server": "uvicorn config.asgi × 1 worker, channels_redis, DEBUG off",
                   "publisher": "inference.runner._Stream → inference.broadcasting (the GPU worker's path)"},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "note": "clients and publisher share the server's CPU cores"},
        "connect": {"ok": len(connect), "failed": len(failed), "wall_s": round(connect_wall, 2),
                    "per_connection_ms": ms(connect), "errors": sorted(set(failed))[:5]},
        "published": {"tokens": tokens, "messages": messages, "messages_per_s": round(messages / publish_wall, 1),
                      "frames_expected": expected, "frames_per_s": round(expected / publish_wall, 1)},
        "delivery_ms": delivery,
        "token_age_ms": ms(age),
        "lost": expected - received, "lost_share": (expected - received) / expected if expected else None,
        "texts_incomplete_when_streaming_stopped": incomplete_at_end, "texts_wrong_after_final_state": mismatched,
        "dropped_subscribers": len(dropped), "dropped_reasons": sorted(set(dropped))[:5],
        "worklist": {"subscribers": len(wl_subs), "sent": counter["sent"], "received": sum(r["seqs"] for r in wl_subs),
                     "delivery_ms": ms(wl_lat)} if wl_subs else None,
        "cpu_percent_of_one_core": {k: round(100 * v / publish_wall, 1) for k, v in cpu.items()},
        "server_exceptions": exceptions,
        "p95_over_goal": p95 / args.goal_ms if p95 is not None else None,
    }
    out["pass"] = bool(p95 is not None and p95 <= args.goal_ms and out["lost"] == 0 and not failed
                       and not mismatched and not dropped and not exceptions["connect"] + exceptions["streaming"])
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")

    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}"

    c = out["connect"]
    print(f"\n{args.clients:,} subscribers on {args.jobs} jobs ({args.clients // max(1, args.jobs)} each) + "
          f"{args.worklist_clients} on the worklist; {args.client_procs} client processes; "
          f"{args.token_rate:g} tokens/s per job for {args.duration} s; load average before {load_before[0]:.2f}")
    print(f"{'figure':<44} {'value':>10} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    cm = c["per_connection_ms"]
    print(f"{'connect (handshake + first state), ms':<44} {c['ok']:>10,} {f(cm['p50']):>8} {f(cm['p95']):>8} "
          f"{f(cm['p99']):>8} {f(cm['max']):>8}")
    print(f"{'  all subscribers connected in, s':<44} {c['wall_s']:>10.1f}   failed {c['failed']}")
    print(f"{'token delivery (broadcast → client), ms':<44} {len(lat):>10,} {f(delivery['p50']):>8} "
          f"{f(delivery['p95']):>8} {f(delivery['p99']):>8} {f(delivery['max']):>8}")
    ta = out["token_age_ms"]
    print(f"{'token age incl. the 100 ms coalescing, ms':<44} {'':>10} {f(ta['p50']):>8} {f(ta['p95']):>8} "
          f"{f(ta['p99']):>8} {f(ta['max']):>8}")
    if out["worklist"]:
        w = out["worklist"]["delivery_ms"]
        print(f"{'worklist message delivery, ms':<44} {len(wl_lat):>10,} {f(w['p50']):>8} {f(w['p95']):>8} "
              f"{f(w['p99']):>8} {f(w['max']):>8}")
    pub = out["published"]
    print(f"published {pub['tokens']:,} tokens in {pub['messages']:,} messages ({pub['messages_per_s']}/s); "
          f"{pub['frames_expected']:,} frames due to subscribers ({pub['frames_per_s']:,}/s)")
    print(f"lost {out['lost']:,} frames ({(out['lost_share'] or 0) * 100:.2f}%); rebuilt texts incomplete when "
          f"streaming stopped {incomplete_at_end}, still wrong after the final state {mismatched}; "
          f"subscribers dropped {len(dropped)}")
    print(f"server exceptions: {exceptions['connect']} while connecting, {exceptions['streaming']} while streaming, "
          f"{exceptions['disconnect']} while the subscribers disconnected (all at once); "
          f"{exceptions['layer_over_capacity_sends']} group sends the channel layer dropped (server queue full)")
    print("CPU (% of one core, during streaming): "
          + ", ".join(f"{k} {v}" for k, v in out["cpu_percent_of_one_core"].items()))
    print(f"NOTE: the {args.client_procs} client processes and the publisher run on the same {os.cpu_count()} cores as "
          "the server; their CPU is listed above.")
    print(f"RESULT ws fan-out: {'PASS' if out['pass'] else 'FAIL'} (p95 {f(p95)} ms vs goal {args.goal_ms:.0f} ms = "
          f"{out['p95_over_goal'] or 0:.2f}×; also required: no loss, no failed or dropped subscribers, "
          "no server exceptions before the disconnect)")
    print(f"written to {path}; server log {WORK / 'server.log'}")


if __name__ == "__main__":
    main()
