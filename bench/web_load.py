"""Load benchmark (issue 7): 50 concurrent users on loopback against our server, run as in
production, on the database bench/load_seed.py seeded (1,000,000 visits, 100,000 reports):
the physician's worklist, the checkup worklist, a visit page and the audit search.
Goal: p95 ≤ 150 ms on each, no errors.

    .venv/bin/python bench/load_seed.py                  # once (see bench/README.md)
    .venv/bin/python bench/web_load.py --duration 120    # then as often as needed

The server is uvicorn serving config.asgi with `--workers` processes (2 by default, one per core),
DEBUG off, DATABASE_URL to the seeded database with DB_CONN_MAX_AGE=60 (so the shipped PostgreSQL
pool is on: DB_POOL_MAX_SIZE connections per worker), REDIS_URL with REDIS_DB_BASE=--redis-db-base.
The clients are wrk (Debian `wrk`), one process per endpoint so each has its own latency
histogram (bench/web_load.lua); each request takes a random session of the endpoint's personas
(logged in, second factor passed: `load_seed.py --sessions-only`) and a random id of that
user's facility. Users think between requests (--think, mean seconds, uniform ±50%); --think 0
is a closed loop (every user fires again at once): a saturation test, not 50 people.

Every response that is not 2xx counts as an error (a 302 to the login or 2FA page included), and
so do wrk's socket errors and timeouts (--timeout). Writes var/bench/web_load.json."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from typing import Any

import requests
from proc_stats import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
VAR_DIR = os.environ.get("MEDLMM_VAR_DIR", "/tmp/medlmm-load-bench-var")  # shared with load_seed: same SECRET_KEY
WORK = Path("/tmp/medlmm-web-load")
LUA = ROOT / "bench" / "web_load.lua"
ENDPOINTS = ("worklist", "checkups", "visit", "audit")
DESCRIPTIONS = {
    "worklist": "physician's worklist",
    "checkups": "checkup worklist (/visits/)",
    "visit": "visit page (/visits/<id>/)",
    "audit": "audit search (/audit/)",
}


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}", "DB_CONN_MAX_AGE": "60", "REDIS_URL": REDIS,
           "REDIS_DB_BASE": str(args.redis_db_base), "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
           "MEDLMM_VAR_DIR": VAR_DIR, "DJANGO_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DB_POOL_MAX_SIZE", None)  # the shipped default (pool on when DB_CONN_MAX_AGE > 0)
    return env


def mint_sessions(args: argparse.Namespace) -> dict[str, Any]:
    out = WORK / "sessions.json"
    env = {**os.environ, "MEDLMM_VAR_DIR": VAR_DIR}
    subprocess.run([sys.executable, str(ROOT / "bench" / "load_seed.py"), "--db", args.db, "--sessions-only",
                    "--sessions-per-user", "8", "--samples", "20000", "--out", str(out)], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def start_server(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    log = open(WORK / "server.log", "wb")  # open as long as the server runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(args.port),
         "--workers", str(args.workers), "--lifespan", "off", "--no-access-log"],
        cwd=ROOT, env=server_env(args), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: see {WORK / 'server.log'}")
        try:
            # 503 without Celery workers (none run here); up once it answers and reaches the database.
            if requests.get(f"http://127.0.0.1:{args.port}/healthz", timeout=5).json()["checks"]["database"]["ok"]:
                return proc
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError("server did not come up")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def targets(data: dict[str, Any], worklist_path: str, rng: random.Random, n: int = 20000) -> dict[str, list[str]]:
    """Per endpoint, `n` lines "path<TAB>cookie": a persona of a facility with ids of that facility."""
    name = data["cookie_name"]

    def cookie(username: str) -> str:
        return f"{name}={rng.choice(data['sessions'][username])}"

    facilities = list(data["facilities"].values())
    out: dict[str, list[str]] = {e: [] for e in ENDPOINTS}
    for _ in range(n):
        f = rng.choice(facilities)
        users = f["users"]
        out["worklist"].append(f"{worklist_path}\t{cookie(users['physician']['username'])}")
        page = rng.choice(("", "?page=2", "?page=3", "?page=5", "?follow_up=1", "?follow_up=1&page=2",
                           "?date_from=2025-06-01&date_to=2025-06-30"))
        out["checkups"].append(f"/visits/{page}\t{cookie(users['staff']['username'])}")
        reader = users["physician" if rng.random() < 0.5 else "staff"]["username"]
        out["visit"].append(f"/visits/{rng.choice(f['visits'])}/\t{cookie(reader)}")
        r = rng.random()
        if r < 0.6:
            query = f"?patient_id={rng.choice(f['patients'])}"
        elif r < 0.8:
            query = f"?user={rng.choice(list(users.values()))['username']}"
        else:
            query = f"?user_id={rng.choice(list(users.values()))['id']}&kind=phi_read"
        out["audit"].append(f"/audit/{query}\t{cookie(users['auditor']['username'])}")
    return out


def preflight(port: int, lines: dict[str, list[str]]) -> dict[str, str]:
    """A few requests per endpoint before the run: a failure here is a setup problem (a missing
    URL, a session that does not pass the second factor), reported as such, not as load."""
    problems = {}
    for endpoint, rows in lines.items():
        for row in rows[:5]:
            path, cookie = row.split("\t", 1)
            r = requests.get(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie}, allow_redirects=False,
                             timeout=60)
            if r.status_code != 200:
                problems[endpoint] = f"GET {path} → {r.status_code} {r.headers.get('Location', '')}".strip()
                break
    return problems


def baseline(port: int, lines: dict[str, list[str]], n: int) -> dict[str, dict[str, float]]:
    """One request at a time per endpoint (after the warm-up, before the load): the service time
    without queueing, to read the loaded figures against."""
    out = {}
    session = requests.Session()
    for endpoint, rows in lines.items():
        times = []
        for row in rows[-n:]:
            path, cookie = row.split("\t", 1)
            t = time.perf_counter()
            session.get(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie}, allow_redirects=False, timeout=60)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        if times:
            out[endpoint] = {"p50_ms": round(times[len(times) // 2], 1), "max_ms": round(times[-1], 1)}
    return out


def choose_worklist(args: argparse.Namespace, data: dict[str, Any]) -> tuple[str, str]:
    """The reports worklist when it is served, else the inference drafts worklist."""
    if args.worklist == "inference":
        return "/inference/worklist/", "chosen with --worklist inference"
    f = next(iter(data["facilities"].values()))
    cookie = f"{data['cookie_name']}={data['sessions'][f['users']['physician']['username']][0]}"
    r = requests.get(f"http://127.0.0.1:{args.port}/reports/", headers={"Cookie": cookie}, allow_redirects=False,
                     timeout=60)
    if r.status_code == 200 or args.worklist == "reports":
        return "/reports/", f"GET /reports/ → {r.status_code}"
    return "/inference/worklist/", f"GET /reports/ → {r.status_code}: the reports worklist is not served; " \
                                   "measuring the inference drafts worklist instead"


def run_wrk(endpoint: str, conns: int, seconds: int, args: argparse.Namespace, out: Path) -> subprocess.Popen[bytes]:
    think_ms = args.think * 1000
    env = {**os.environ, "WRK_TARGETS": str(WORK / f"{endpoint}.tsv"), "WRK_OUT": str(out),
           "WRK_THINK_MIN_MS": str(int(think_ms * 0.5)), "WRK_THINK_MAX_MS": str(int(think_ms * 1.5)),
           "WRK_SEED": str(ENDPOINTS.index(endpoint) * 7919 + 17)}
    return subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", f"--timeout={args.timeout}s", "-s", str(LUA),
                             f"http://127.0.0.1:{args.port}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def process_groups(server: subprocess.Popen[bytes], db: str) -> dict[str, list[int]]:
    """The server's processes, the PostgreSQL backends connected to the benchmark's database (not
    the other databases of a shared server) and Redis (shared: whatever else uses it counts too)."""
    import psutil

    groups: dict[str, list[int]] = {"server": [server.pid], "postgres (this db)": [], "redis": []}
    groups["server"] += [c.pid for c in psutil.Process(server.pid).children(recursive=True)]
    for proc in psutil.process_iter(["name", "cmdline"]):
        name = proc.info["name"] or ""
        if name.startswith("postgres") and f" {db} " in " ".join(proc.info["cmdline"] or []) + " ":
            groups["postgres (this db)"].append(proc.pid)
        elif name.startswith("redis-server"):
            groups["redis"].append(proc.pid)
    return groups


def audit_rows(db: str) -> int:
    out = subprocess.run(["psql", f"{PG}/{db}", "-tAc", "SELECT last_seq FROM audit_auditchainhead WHERE id = 1"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip() or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", default="medlmm_load_bench")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8051)
    parser.add_argument("--duration", type=int, default=120, help="seconds measured")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of load before measuring (discarded)")
    parser.add_argument("--mix", default="worklist=15,checkups=10,visit=15,audit=10",
                        help="concurrent users per endpoint (default: 50 in all)")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean think time between a user's requests, seconds (0: closed loop)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds before wrk counts a request as timed out")
    parser.add_argument("--worklist", choices=("auto", "reports", "inference"), default="auto")
    parser.add_argument("--redis-db-base", type=int, default=4)
    parser.add_argument("--goal-ms", type=float, default=150.0)
    parser.add_argument("--baseline", type=int, default=10,
                        help="requests per endpoint sent one at a time before the load (0: none)")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "web_load.json"))
    args = parser.parse_args()
    mix = {k: int(v) for k, v in (part.split("=") for part in args.mix.split(","))}
    if set(mix) - set(ENDPOINTS):
        parser.error(f"--mix names: {', '.join(ENDPOINTS)}")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    load_start = os.getloadavg()
    data = mint_sessions(args)
    server = start_server(args)
    try:
        worklist_path, worklist_note = choose_worklist(args, data)
        lines = targets(data, worklist_path, random.Random(2026))
        for endpoint, rows in lines.items():
            (WORK / f"{endpoint}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        problems = preflight(args.port, lines)
        for endpoint, problem in problems.items():
            print(f"PREFLIGHT {endpoint}: {problem}")
        active = {e: c for e, c in mix.items() if c > 0}
        if args.warmup:
            warm = [run_wrk(e, c, args.warmup, args, WORK / f"warmup-{e}.json") for e, c in active.items()]
            for proc in warm:
                proc.communicate()
        single = baseline(args.port, {e: lines[e] for e in active}, args.baseline) if args.baseline else {}
        audit_before = audit_rows(args.db)
        groups = process_groups(server, args.db)
        cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        t0 = time.perf_counter()
        procs = {e: run_wrk(e, c, args.duration, args, WORK / f"{e}.json") for e, c in active.items()}
        groups["wrk"] = [p.pid for p in procs.values()]
        cpu_before["wrk"] = 0.0
        cpu_wrk = 0.0
        while any(p.poll() is None for p in procs.values()):
            cpu_wrk = max(cpu_wrk, cpu_seconds(groups["wrk"]))  # gone once wrk exits: sample while it runs
            time.sleep(1.0)
        wall = time.perf_counter() - t0
        cpu = {name: cpu_seconds(pids) - cpu_before[name] for name, pids in groups.items() if name != "wrk"}
        cpu["wrk"] = cpu_wrk
        outputs = {e: (p.stdout.read().decode(errors="replace") if p.stdout else "") for e, p in procs.items()}
        audit_after = audit_rows(args.db)
    finally:
        stop_server(server)
    log_text = (WORK / "server.log").read_text(encoding="utf-8", errors="replace")
    tracebacks = log_text.count("Traceback (most recent call last)")

    results: dict[str, Any] = {}
    for endpoint, conns in active.items():
        path = WORK / f"{endpoint}.json"
        if not path.exists():
            results[endpoint] = {"users": conns, "failed": outputs[endpoint][-2000:]}
            continue
        raw = json.loads(path.read_text())
        e, s = raw["errors"], raw["status"]
        errors = s["3xx"] + s["4xx"] + s["5xx"] + s["other"] + e["connect"] + e["read"] + e["write"] + e["timeout"]
        lat = {k: v / 1000 for k, v in raw["latency_us"].items()}
        results[endpoint] = {
            "description": DESCRIPTIONS[endpoint], "path": worklist_path if endpoint == "worklist" else None,
            "users": conns, "requests": raw["requests"], "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "errors": errors, "status": s, "socket_errors": e, "latency_ms": lat,
            "p95_over_goal": lat["p95"] / args.goal_ms, "one_at_a_time_ms": single.get(endpoint),
            "pass": errors == 0 and lat["p95"] <= args.goal_ms and raw["requests"] > 0,
        }
    total_requests = sum(r.get("requests", 0) for r in results.values())
    report = {
        "goal": f"p95 ≤ {args.goal_ms:.0f} ms on each endpoint, no errors",
        "config": {"db": args.db, "workers": args.workers, "duration_s": args.duration, "warmup_s": args.warmup,
                   "users": sum(active.values()), "mix": active, "think_s_mean": args.think,
                   "think_s_range": [args.think * 0.5, args.think * 1.5], "timeout_s": args.timeout,
                   "worklist": worklist_path, "worklist_note": worklist_note,
                   "server": "uvicorn config.asgi, DEBUG off, DB_CONN_MAX_AGE=60 (psycopg pool on), Redis"},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_start, "loadavg_after": os.getloadavg()},
        "preflight_problems": problems,
        "endpoints": results,
        "total": {"requests": total_requests, "rps": total_requests / wall,
                  "errors": sum(r.get("errors", 0) for r in results.values())},
        "cpu_percent_of_one_core": {k: round(100 * v / wall, 1) for k, v in cpu.items()},
        "audit_events_written": audit_after - audit_before,
        "server_tracebacks": tracebacks,
        "pass": all(r.get("pass", False) for r in results.values()) and not problems,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print_report(report, args.goal_ms)
    print(f"written to {out}; server log {WORK / 'server.log'}")


def print_report(report: dict[str, Any], goal_ms: float) -> None:
    c = report["config"]
    print(f"\n{c['users']} users, {c['duration_s']} s, think {c['think_s_mean']} s (uniform "
          f"{c['think_s_range'][0]:.2f}–{c['think_s_range'][1]:.2f} s), uvicorn × {c['workers']}, "
          f"{report['machine']['cpus']} CPUs, load average before {report['machine']['loadavg_before'][0]:.2f}")
    print(f"worklist: {c['worklist']} ({c['worklist_note']})")
    header = (f"{'endpoint':<34} {'users':>5} {'requests':>9} {'req/s':>7} {'errors':>6} {'p50 ms':>8} "
              f"{'p95 ms':>8} {'p99 ms':>8} {'p95/goal':>8}")
    print(header)
    print("-" * len(header))
    for endpoint, r in report["endpoints"].items():
        if "failed" in r:
            print(f"{endpoint:<34} wrk failed: {r['failed'][-300:]}")
            continue
        lat = r["latency_ms"]
        print(f"{r['description']:<34} {r['users']:>5} {r['requests']:>9,} {r['rps']:>7.1f} {r['errors']:>6} "
              f"{lat['p50']:>8.1f} {lat['p95']:>8.1f} {lat['p99']:>8.1f} {r['p95_over_goal']:>7.2f}× "
              f"{'PASS' if r['pass'] else 'FAIL'}")
        if r.get("one_at_a_time_ms"):
            print(f"{'':<34} one request at a time: p50 {r['one_at_a_time_ms']['p50_ms']} ms, "
                  f"max {r['one_at_a_time_ms']['max_ms']} ms")
        if r["errors"]:
            print(f"{'':<34} statuses {r['status']}, socket errors {r['socket_errors']}")
    t = report["total"]
    print(f"total {t['requests']:,} requests, {t['rps']:.1f} req/s, {t['errors']} errors; "
          f"{report['audit_events_written']:,} audit events written; server tracebacks {report['server_tracebacks']}")
    print("CPU (% of one core): " + ", ".join(f"{k} {v}" for k, v in report["cpu_percent_of_one_core"].items()))
    print(f"RESULT web load: {'PASS' if report['pass'] else 'FAIL'} (goal p95 ≤ {goal_ms:.0f} ms, no errors)")


if __name__ == "__main__":
    main()
