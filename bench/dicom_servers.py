"""The two archives of the DICOM benchmark, each on its own fresh PostgreSQL database:

- Orthanc 1.10 (Debian `orthanc`) with its PostgreSQL index plugin 4.0 (`orthanc-postgresql`)
  and DICOMweb plugin 1.7 (`orthanc-dicomweb`): files on disk, index in PostgreSQL.
- ours, as the production launcher runs it: uvicorn serving config.asgi (`--workers` as given)
  and `manage.py dicom_scp`, on PostgreSQL, files in the content-addressed store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PLUGINS = Path("/usr/share/orthanc/plugins")


def recreate_database(name: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True)
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)


def wait_http(url: str, timeout: float = 120, **kwargs: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2, **kwargs).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


class Orthanc:
    name = "Orthanc 1.10.1 + PostgreSQL 4.0 + DICOMweb 1.7"
    aet = "ORTHANC"

    def __init__(self, work: Path, http_port: int = 8042, dicom_port: int = 4242) -> None:
        self.work, self.http_port, self.dicom_port = work / "orthanc", http_port, dicom_port
        self.database = "orthanc_dicom_bench"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dicomweb_url = f"http://127.0.0.1:{http_port}/dicom-web"

    def start(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        recreate_database(self.database)
        config = {
            "Name": "bench", "StorageDirectory": str(self.work / "storage"), "IndexDirectory": str(self.work / "index"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.aet,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True, "StorageCompression": False, "OverwriteInstances": False,
            "Plugins": [str(PLUGINS / "libOrthancPostgreSQLIndex.so"), str(PLUGINS / "libOrthancDicomWeb.so")],
            "PostgreSQL": {"EnableIndex": True, "EnableStorage": False, "Host": "127.0.0.1", "Port": 5432,
                           "Database": self.database, "Username": "postgres", "Password": "", "Lock": False},
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        }
        path = self.work / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        log = open(self.work / "orthanc.log", "wb")
        self.proc = subprocess.Popen(["Orthanc", str(path)], stdout=log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.http_port}/system")

    def stop(self) -> None:
        stop(self.proc)

    def session(self) -> requests.Session:
        return requests.Session()

    def count_instances(self) -> int:
        return int(requests.get(f"http://127.0.0.1:{self.http_port}/statistics", timeout=30).json()["CountInstances"])

    def count_studies(self) -> int:
        return int(requests.get(f"http://127.0.0.1:{self.http_port}/statistics", timeout=30).json()["CountStudies"])


class Ours:
    """Our server. A second instance can share the first one's database (`primary`) to measure
    another configuration against the same index: it stores into its own facility and its user
    may also read the primary's facility."""

    aet = "MEDLMM"

    def __init__(self, work: Path, http_port: int = 8043, dicom_port: int | None = 11113, workers: int = 1,
                 fsync: bool = True, pool: bool = True, primary: Ours | None = None) -> None:
        self.work, self.http_port, self.workers = work / f"ours-{http_port}", http_port, workers
        self.dicom_port = dicom_port or 0
        self.fsync, self.pool, self.primary = fsync, pool, primary
        self.database = "medlmm_dicom_bench"
        self.facility = "BENCH" if primary is None else f"BENCH{http_port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dicomweb_url = f"http://127.0.0.1:{http_port}/dicomweb"
        self.token = ""
        self.name = f"Med-LMM (uvicorn × {workers}, {'settings as shipped' if pool else 'without DB pool'})"

    def env(self) -> dict[str, str]:
        store = (self.primary or self).work / "store"
        return {
            **os.environ,
            "DATABASE_URL": f"{PG}/{self.database}", "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
            "REDIS_DB_BASE": "13", "MEDLMM_VAR_DIR": str(self.work / "var"), "DICOM_STORE_ROOT": str(store),
            "DJANGO_LOG_LEVEL": "WARNING", "DICOM_STORE_FSYNC": "1" if self.fsync else "0",
            # Shipped settings pool PostgreSQL connections; DB_POOL_MAX_SIZE=0 measures without.
            "DJANGO_SETTINGS_MODULE": "config.settings", "DB_POOL_MAX_SIZE": "8" if self.pool else "0",
            "DB_CONN_MAX_AGE": "60",
        }

    def manage(self, *args: str) -> str:
        run = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True,
                             text=True, check=False)
        if run.returncode:
            raise RuntimeError(run.stderr)
        return run.stdout

    def start(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        if self.primary is None:
            recreate_database(self.database)
            self.manage("migrate", "--noinput", "-v0")
        user = f"bench_{self.http_port}"
        setup = (
            "from clinical import services as cs\n"
            "from clinical.models import Facility\n"
            "from clinical.dicom.services import access_token_issue, dicom_node_register\n"
            f"f = cs.facility_create(code='{self.facility}', name='ベンチマーク {self.facility}')\n"
            f"u = cs.user_create(username='{user}', password='Bench-Password-4242')\n"
            "cs.membership_grant(user=u, facility=f, role='staff')\n"
            + ("dicom_node_register(facility=f, ae_title='STORESCU')\n" if self.primary is None else
               "cs.membership_grant(user=u, facility=Facility.objects.get(code='BENCH'), role='staff')\n")
            + "print('TOKEN=' + access_token_issue(user=u, name='bench')[1])\n"
        )
        out = self.manage("shell", "-c", setup)
        self.token = next(line[6:] for line in out.splitlines() if line.startswith("TOKEN="))
        log = open(self.work / "server.log", "wb")  # open as long as the servers run
        py = sys.executable
        self.procs = [
            subprocess.Popen([py, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port",
                              str(self.http_port), "--lifespan", "off", "--no-access-log", "--workers",
                              str(self.workers)], cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT),
        ]
        if self.dicom_port:
            self.procs.append(subprocess.Popen(
                [py, "manage.py", "dicom_scp", "--host", "127.0.0.1", "--port", str(self.dicom_port), "--ae-title",
                 self.aet], cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT))
        wait_http(f"http://127.0.0.1:{self.http_port}/dicomweb/studies")  # 401 until authenticated: up
        time.sleep(1.0)  # the SCP binds its port after Django starts

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        session.headers["X-Facility"] = self.facility  # where STOW-RS stores
        return session

    def _count(self, table: str) -> int:
        # The table and facility code are our own constants, not input.
        query = f"SELECT count(*) FROM {table} t JOIN clinical_facility f ON f.id = t.facility_id WHERE f.code = '{self.facility}'"  # noqa: E501, S608
        out = subprocess.run(["psql", f"{PG}/{self.database}", "-tAc", query], capture_output=True, text=True,
                             check=True)
        return int(out.stdout.strip())

    def count_instances(self) -> int:
        return self._count("dicom_instance")

    def count_studies(self) -> int:
        return self._count("dicom_study")
