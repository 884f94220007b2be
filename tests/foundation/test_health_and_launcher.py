"""/healthz answers for the database, Redis and the Celery workers; the production launcher brings
up web + one worker per queue against the real PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_reports_each_dependency_and_fails_without_workers() -> None:
    response = Client().get("/healthz")
    body = response.json()
    assert body["checks"]["database"]["ok"] is True
    if settings.REDIS_URL:
        assert body["checks"]["redis"]["ok"] is True
        # No worker runs in this test process: the check must say so, not pretend.
        assert body["checks"]["celery"]["ok"] is False and response.status_code == 503
        assert body["status"] == "fail"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback)
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_production_launcher_serves_healthz_with_both_queues(tmp_path: Path) -> None:
    if not (settings.REDIS_URL and "postgresql" in settings.DATABASES["default"]["ENGINE"]):
        pytest.skip("needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    port = _free_port()
    env = dict(os.environ)
    # The launcher migrates and serves the test database this session created.
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["REDIS_DB_BASE"] = "13"
    env["CELERY_DEFAULT_CONCURRENCY"] = "1"
    env["CELERY_GPU_CONCURRENCY"] = "1"
    env["DICOM_SCP_HOST"] = "127.0.0.1"
    env["DICOM_SCP_PORT"] = str(_free_port())
    env["MEDLMM_VAR_DIR"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "config.launcher", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        status, body = 0, {}  # type: tuple[int, Any]
        while time.monotonic() < deadline:
            try:
                status, body = _get_json(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert status == 200, body
        assert body["checks"]["database"]["vendor"] == "postgresql"
        served = {q for qs in body["checks"]["celery"]["queues"].values() for q in qs}
        assert served == {"default", "gpu"}
        # The DICOM C-STORE SCP the launcher started answers a C-ECHO from a registered modality.
        from pynetdicom import AE

        from clinical.dicom.models import DicomNode
        from clinical.models import Facility

        DicomNode.objects.create(facility=Facility.objects.create(code="L01", name="ランチャー検証"),
                                 ae_title="TESTSCU")

        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", int(env["DICOM_SCP_PORT"]), ae_title="MEDLMM")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
