"""DICOM benchmark (issue 4): Orthanc 1.10 (PostgreSQL index + DICOMweb plugins) against ours on
PostgreSQL, side by side in one run, same files, same clients, same machine.

1. C-STORE: DCMTK storescu pushes N instances (CT_small.dcm with fresh UIDs, 20 per study) over one
   association: instances/s.
2. STOW-RS: dicomweb-client, 4 threads, 10 instances per request, another N instances: instances/s.
3. QIDO-RS: both indexes filled with S studies (one small object each, through STOW-RS), then
   dicomweb-client searches studies by PatientID, one at a time: p50/p95 latency (and, as side
   figures, a date-range search and a modality search, limit 100).

    .venv/bin/python bench/dicom_bench.py [--instances 2000] [--studies 100000] [--workers 1]

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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import pydicom
from dicomweb_client.api import DICOMwebClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_data import ct_instances, index_instances, write_files  # noqa: E402
from dicom_servers import ROOT, Orthanc, Ours  # noqa: E402

Server = Orthanc | Ours


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def client_factory(server: Server) -> Callable[[], DICOMwebClient]:
    local = threading.local()

    def get() -> DICOMwebClient:
        if not hasattr(local, "client"):
            local.client = DICOMwebClient(url=server.dicomweb_url, session=server.session())
        return local.client

    return get


def bench_cstore(server: Server, files_dir: Path, expected: int, env: dict[str, str]) -> dict[str, Any]:
    before = server.count_instances()
    started = time.perf_counter()
    run = subprocess.run(["storescu", "-aec", server.aet, "127.0.0.1", str(server.dicom_port), "+sd", str(files_dir)],
                         capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    stored = server.count_instances() - before
    if run.returncode or stored != expected:
        raise RuntimeError(f"C-STORE to {server.name}: rc={run.returncode}, stored {stored}/{expected}: {run.stderr}")
    return {"instances": expected, "seconds": round(seconds, 2), "per_s": round(expected / seconds, 1),
            "ms_each": round(1000 * seconds / expected, 1)}


def stow(server: Server, datasets: Iterable[list[pydicom.Dataset]], threads: int) -> tuple[float, int]:
    get = client_factory(server)
    failures = 0

    def send(batch: list[pydicom.Dataset]) -> int:
        response = get().store_instances(batch)
        return len(getattr(response, "FailedSOPSequence", []) or [])

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for failed in pool.map(send, datasets):
            failures += failed
    return time.perf_counter() - started, failures


def bench_stow(server: Server, items: list[bytes], threads: int, per_request: int) -> dict[str, Any]:
    datasets = [pydicom.dcmread(io.BytesIO(d)) for d in items]
    before = server.count_instances()
    seconds, failures = stow(server, chunks(datasets, per_request), threads)
    stored = server.count_instances() - before
    if failures or stored != len(items):
        raise RuntimeError(f"STOW-RS to {server.name}: {failures} failures, stored {stored}/{len(items)}")
    return {"instances": len(items), "threads": threads, "per_request": per_request, "seconds": round(seconds, 2),
            "per_s": round(len(items) / seconds, 1)}


def fill_index(server: Server, studies: int) -> dict[str, Any]:
    def batches() -> Iterator[list[pydicom.Dataset]]:
        for chunk in chunks(index_instances(studies), 100):
            yield [pydicom.dcmread(io.BytesIO(data)) for _pid, data in chunk]

    seconds, failures = stow(server, batches(), 4)
    return {"studies": studies, "seconds": round(seconds, 1), "per_s": round(studies / seconds, 1),
            "failures": failures, "indexed_studies": server.count_studies()}


def latencies(call: Callable[[], int], n: int, warmup: int, expect: Callable[[int], bool]) -> dict[str, Any]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        count = call()
        times.append((time.perf_counter() - started) * 1000)
        if not expect(count):
            raise RuntimeError(f"unexpected result count {count}")
    times.sort()
    return {"queries": n, "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * (n - 1))], 2), "mean_ms": round(statistics.fmean(times), 2)}


def bench_qido(server: Server, patients: int, n: int, seed: int = 11) -> dict[str, Any]:
    client = DICOMwebClient(url=server.dicomweb_url, session=server.session())
    rng = random.Random(seed)
    by_patient = latencies(
        lambda: len(client.search_for_studies(search_filters={"PatientID": f"P{rng.randrange(patients):07d}"})),
        n, 50, lambda c: c == 2)
    months = iter([f"{y}{m:02d}" for y in range(2015, 2025) for m in range(1, 13)] * 10)
    by_date = latencies(
        lambda: len(client.search_for_studies(
            search_filters={"StudyDate": (lambda ym: f"{ym}01-{ym}28")(next(months))}, limit=100)),
        100, 10, lambda c: c > 0)
    by_modality = latencies(
        lambda: len(client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"}, limit=100)),
        50, 5, lambda c: c == 100)
    return {"by_patient_id": by_patient, "date_range_limit_100": by_date, "modality_limit_100": by_modality}


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 2) if theirs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes for ours")
    parser.add_argument("--no-fsync", action="store_true", help="ours without fsync per file (as Orthanc writes)")
    parser.add_argument("--tcp-nodelay", action="store_true", help="set TCP_NODELAY=1 in storescu's environment")
    parser.add_argument("--skip", default="", help="comma list of phases to skip: cstore,stow,qido")
    parser.add_argument("--work", default="/tmp/medlmm-dicom-bench")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    servers: list[Server] = [Orthanc(work), Ours(work, workers=args.workers, fsync=not args.no_fsync)]
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": vars(args), "servers": {s.name: {} for s in servers},
    }
    storescu_env = {**os.environ, **({"TCP_NODELAY": "1"} if args.tcp_nodelay else {})}
    try:
        for server in servers:
            server.start()
        if "cstore" not in skip:
            files = work / "cstore"
            write_files(ct_instances(args.instances, tag="C"), files)
            for server in servers:
                results["servers"][server.name]["cstore"] = r = bench_cstore(server, files, args.instances, storescu_env)
                print(f"C-STORE  {server.name}: {r['per_s']} instances/s ({r['ms_each']} ms each)", flush=True)
        if "stow" not in skip:
            items = ct_instances(args.instances, tag="S")
            for server in servers:
                results["servers"][server.name]["stow"] = r = bench_stow(server, items, threads=4, per_request=10)
                print(f"STOW-RS  {server.name}: {r['per_s']} instances/s", flush=True)
        if "qido" not in skip:
            for server in servers:
                results["servers"][server.name]["fill"] = r = fill_index(server, args.studies)
                print(f"index    {server.name}: {r['studies']} studies in {r['seconds']} s ({r['per_s']}/s), "
                      f"{r['indexed_studies']} studies indexed", flush=True)
            for server in servers:
                results["servers"][server.name]["qido"] = r = bench_qido(server, args.studies // 2, args.queries)
                print(f"QIDO-RS  {server.name}: {r}", flush=True)
    finally:
        for server in servers:
            server.stop()
    orthanc, ours = (results["servers"][s.name] for s in servers)
    summary = {}
    for phase in ("cstore", "stow"):
        if phase in ours:
            summary[f"{phase}_ratio"] = ratio(ours[phase]["per_s"], orthanc[phase]["per_s"])
    if "qido" in ours:
        for key in ("p50_ms", "p95_ms"):
            summary[f"qido_{key}_ratio"] = ratio(ours["qido"]["by_patient_id"][key], orthanc["qido"]["by_patient_id"][key])
    results["summary"] = summary
    out = ROOT / "var" / "bench" / "dicom.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(summary, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
