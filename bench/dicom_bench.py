"""DICOM benchmark (issue 4): Orthanc 1.10 (PostgreSQL index + DICOMweb plugins) against ours on
PostgreSQL, side by side in one run, same files, same clients, same machine.

1. C-STORE: DCMTK storescu pushes N instances (CT_small.dcm with fresh UIDs, 20 per study) over one
   association: instances/s.
2. STOW-RS: dicomweb-client, 4 threads, 10 instances per request, another N instances: instances/s.
3. QIDO-RS: both indexes filled with S studies (one small object each, through STOW-RS), then
   dicomweb-client searches studies by PatientID, one at a time: p50/p95 latency (and, as side
   figures, a date-range search and a modality search, limit 100).

    .venv/bin/python bench/dicom_bench.py [--instances 2000] [--studies 100000] [--queries 500]

Needs the Debian packages orthanc, orthanc-postgresql, orthanc-dicomweb, dcmtk, and PostgreSQL and
Redis running locally. Creates and drops its own databases (orthanc_dicom_bench,
medlmm_dicom_bench); writes results to var/bench/dicom.json. Not a test: it prints figures."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import pydicom
from dicomweb_client.api import DICOMwebClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_data import ct_instances, index_instances, write_files
from dicom_servers import ROOT, Orthanc, Ours

Server = Orthanc | Ours


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def client_factory(server: Server) -> Callable[[], DICOMwebClient]:
    local = threading.local()

    def get() -> DICOMwebClient:
        if not hasattr(local, "client"):
            # A generous timeout: a 100-study request can wait seconds for the audit chain when
            # four of them run at once on a busy machine; that is measured, not an error.
            local.client = DICOMwebClient(url=server.dicomweb_url, session=server.session(), timeout=600)
        return local.client

    return get


def _orders(servers: list[Server], rounds: int) -> Iterator[tuple[int, list[Server]]]:
    """Round r runs the servers in alternating order, so that load from anything else on the
    machine falls on both alike."""
    for r in range(rounds):
        yield r, (servers if r % 2 == 0 else servers[::-1])


def bench_cstore(servers: list[Server], dirs: list[Path], per_round: int, env: dict[str, str]) -> dict[str, Any]:
    seconds = {s.name: 0.0 for s in servers}
    for r, order in _orders(servers, len(dirs)):
        for server in order:
            before = server.count_instances()
            started = time.perf_counter()
            run = subprocess.run(["storescu", "-aec", server.aet, "127.0.0.1", str(server.dicom_port), "+sd",
                                  str(dirs[r])], capture_output=True, text=True, env=env, check=False)
            seconds[server.name] += time.perf_counter() - started
            stored = server.count_instances() - before
            if run.returncode or stored != per_round:
                raise RuntimeError(f"C-STORE to {server.name}: rc={run.returncode}, {stored}/{per_round}: {run.stderr}")
    total = per_round * len(dirs)
    return {name: {"instances": total, "seconds": round(t, 2), "per_s": round(total / t, 1),
                   "ms_each": round(1000 * t / total, 1)} for name, t in seconds.items()}


def stow(server: Server, datasets: Iterable[Sequence[pydicom.Dataset]], threads: int) -> tuple[float, int]:
    get = client_factory(server)
    failures = 0

    def send(batch: Sequence[pydicom.Dataset]) -> int:
        response = get().store_instances(list(batch))
        return len(getattr(response, "FailedSOPSequence", []) or [])

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for failed in pool.map(send, datasets):
            failures += failed
    return time.perf_counter() - started, failures


def bench_stow(
    servers: list[Server], items: list[bytes], rounds: int, threads: int, per_request: int
) -> dict[str, Any]:
    datasets = [pydicom.dcmread(io.BytesIO(d)) for d in items]
    size = len(datasets) // rounds
    seconds = {s.name: 0.0 for s in servers}
    for r, order in _orders(servers, rounds):
        part = datasets[r * size : (r + 1) * size]
        for server in order:
            before = server.count_instances()
            took, failures = stow(server, chunks(part, per_request), threads)
            seconds[server.name] += took
            stored = server.count_instances() - before
            if failures or stored != len(part):
                raise RuntimeError(f"STOW-RS to {server.name}: {failures} failures, stored {stored}/{len(part)}")
    total = size * rounds
    return {name: {"instances": total, "threads": threads, "per_request": per_request, "seconds": round(t, 2),
                   "per_s": round(total / t, 1)} for name, t in seconds.items()}


def fill_index(servers: list[Server], studies: int, rounds: int = 10) -> dict[str, Any]:
    seconds = {s.name: 0.0 for s in servers}
    objects = list(index_instances(studies))
    size = -(-studies // rounds)
    for r, order in _orders(servers, rounds):
        part = objects[r * size : (r + 1) * size]
        for server in order:
            batches = ([pydicom.dcmread(io.BytesIO(data)) for _pid, data in chunk] for chunk in chunks(part, 100))
            took, failures = stow(server, batches, 4)
            seconds[server.name] += took
            if failures:
                raise RuntimeError(f"filling {server.name}: {failures} objects refused")
    return {s.name: {"studies": studies, "seconds": round(seconds[s.name], 1),
                     "per_s": round(studies / seconds[s.name], 1), "indexed_studies": s.count_studies()}
            for s in servers}


def bench_qido(servers: list[Server], patients: int, n: int, seed: int = 11) -> dict[str, Any]:
    """Each query goes to both servers (alternating which goes first), same parameters."""
    clients = {s.name: DICOMwebClient(url=s.dicomweb_url, session=s.session(), timeout=60) for s in servers}
    rng = random.Random(seed)
    months = [f"{y}{m:02d}" for y in range(2015, 2025) for m in range(1, 13)]
    kinds: dict[str, tuple[int, Callable[[int], dict[str, Any]], Callable[[int], bool]]] = {
        "by_patient_id": (n, lambda i: {"search_filters": {"PatientID": f"P{rng.randrange(patients):07d}"}},
                          lambda c: c == 2),
        "date_range_limit_100": (max(n // 5, 20), lambda i: {
            "search_filters": {"StudyDate": f"{months[i % 120]}01-{months[i % 120]}28"}, "limit": 100},
            lambda c: c >= 0),
        "modality_limit_100": (max(n // 10, 20), lambda i: {"search_filters": {"ModalitiesInStudy": "MR"},
                                                            "limit": 100}, lambda c: c >= 0),
    }
    out: dict[str, dict[str, Any]] = {s.name: {} for s in servers}
    for kind, (count, params, expect) in kinds.items():
        times: dict[str, list[float]] = {s.name: [] for s in servers}
        for i in range(count + 10):
            kwargs = params(i)
            found = {}
            for server in (servers if i % 2 == 0 else servers[::-1]):
                started = time.perf_counter()
                found[server.name] = len(clients[server.name].search_for_studies(**kwargs))
                took = (time.perf_counter() - started) * 1000
                if i >= 10:  # the first ten are warm-up
                    times[server.name].append(took)
            # Both must give the same answer, and the answer must be plausible.
            if len(set(found.values())) != 1 or not expect(next(iter(found.values()))):
                raise RuntimeError(f"{kind}: result counts {found} for {kwargs}")
        for name, values in times.items():
            values.sort()
            out[name][kind] = {"queries": len(values), "p50_ms": round(statistics.median(values), 2),
                               "p95_ms": round(values[int(0.95 * (len(values) - 1))], 2),
                               "mean_ms": round(statistics.fmean(values), 2)}
    return out


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 2) if theirs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes for ours")
    parser.add_argument("--no-fsync", action="store_true", help="ours without fsync per file (as Orthanc writes)")
    parser.add_argument("--no-pool-variant", action="store_true",
                        help="skip ours without PostgreSQL connection pooling (DB_POOL_MAX_SIZE=0)")
    parser.add_argument("--tcp-nodelay", action="store_true", help="set TCP_NODELAY=1 in storescu's environment")
    parser.add_argument("--skip", default="", help="comma list of phases to skip: cstore,stow,qido")
    parser.add_argument("--work", default="/tmp/medlmm-dicom-bench")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    ours = Ours(work, workers=args.workers, fsync=not args.no_fsync)
    servers: list[Server] = [Orthanc(work), ours]
    if not args.no_pool_variant:
        # Same database and store as `ours`; its own facility for what it stores, and read access
        # to ours' facility, so its QIDO-RS searches the same 100,000 studies.
        servers.append(Ours(work, http_port=8044, dicom_port=None, workers=args.workers, fsync=not args.no_fsync,
                            pool=False, primary=ours))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": vars(args), "servers": {s.name: {} for s in servers},
    }
    storescu_env = {**os.environ, **({"TCP_NODELAY": "1"} if args.tcp_nodelay else {})}
    try:
        for server in servers:
            server.start()
        results["load_before"] = os.getloadavg()
        if "cstore" not in skip:
            rounds = 4
            items = ct_instances(args.instances, tag="C")
            size = args.instances // rounds
            dirs = [write_files(items[r * size : (r + 1) * size], work / "cstore" / str(r))[0].parent
                    for r in range(rounds)]
            for name, r in bench_cstore([s for s in servers if s.dicom_port], dirs, size, storescu_env).items():
                results["servers"][name]["cstore"] = r
                print(f"C-STORE  {name}: {r['per_s']} instances/s ({r['ms_each']} ms each)", flush=True)
        if "stow" not in skip:
            items = ct_instances(args.instances, tag="S")
            for name, r in bench_stow(servers, items, rounds=4, threads=4, per_request=10).items():
                results["servers"][name]["stow"] = r
                print(f"STOW-RS  {name}: {r['per_s']} instances/s", flush=True)
        if "qido" not in skip:
            for name, r in fill_index(servers[:2], args.studies).items():
                results["servers"][name]["fill"] = r
                print(f"index    {name}: {r['studies']} studies in {r['seconds']} s ({r['per_s']}/s), "
                      f"{r['indexed_studies']} studies indexed", flush=True)
            for name, r in bench_qido(servers, args.studies // 2, args.queries).items():
                results["servers"][name]["qido"] = r
                print(f"QIDO-RS  {name}: {r}", flush=True)
        results["load_after"] = os.getloadavg()
    finally:
        for server in servers:
            server.stop()
    orthanc = results["servers"][servers[0].name]
    summary: dict[str, Any] = {}
    for server in servers[1:]:
        mine = results["servers"][server.name]
        row = {}
        for phase in ("cstore", "stow"):
            if phase in mine:
                row[f"{phase}_per_s_ratio"] = ratio(mine[phase]["per_s"], orthanc[phase]["per_s"])
        if "qido" in mine:
            for key in ("p50_ms", "p95_ms"):
                row[f"qido_{key}_ratio"] = ratio(mine["qido"]["by_patient_id"][key],
                                                 orthanc["qido"]["by_patient_id"][key])
        summary[server.name] = row
    results["summary"] = summary
    out = ROOT / "var" / "bench" / "dicom.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(summary, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
