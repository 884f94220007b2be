"""The import as a user meets it: queued on commit, run by a real Celery worker over Redis, with
progress pushed over the websocket to whoever may watch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from clinical.models import CheckupVisit, ImportBatch, Patient
from tests.checkups.test_import import GOOD
from tests.conftest import Personas, login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _cookie(client: Client) -> bytes:
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def _connect(client: Client, batch_id: int) -> WebsocketCommunicator:
    from config.asgi import application

    communicator = WebsocketCommunicator(application, f"/ws/imports/{batch_id}/",
                                         headers=[(b"cookie", _cookie(client)), (b"origin", b"http://testserver")])
    return communicator


def test_an_upload_is_run_by_a_real_worker_and_its_progress_reaches_the_websocket(
    personas: Personas, examinees: dict[str, Patient], celery_worker_thread: None, tmp_path: Path,
    settings: Any,
) -> None:
    settings.VAR_DIR = tmp_path
    client = login(Client(), personas.staff_a)
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post("/imports/", {"facility": personas.facility_a.pk,
                                         "file": SimpleUploadedFile("c.csv", GOOD.encode())})
    assert response.status_code == 302
    batch = ImportBatch.objects.get()

    async def watch() -> list[dict[str, Any]]:
        communicator = await _connect(client, batch.pk)
        connected, _ = await communicator.connect()
        assert connected
        messages = [await communicator.receive_json_from(timeout=5)]
        while messages[-1]["status"] not in ("succeeded", "failed"):
            messages.append(await communicator.receive_json_from(timeout=20))
        await communicator.disconnect()
        return messages

    started = time.monotonic()
    messages = asyncio.run(watch())
    assert messages[-1]["status"] == "succeeded" and messages[-1]["percent"] == 100
    assert time.monotonic() - started < 20
    batch.refresh_from_db()
    assert batch.status == "succeeded" and CheckupVisit.objects.count() == 2


def test_a_physician_of_another_facility_cannot_watch_an_import(personas: Personas, tmp_path: Path,
                                                                settings: Any) -> None:
    batch = ImportBatch.objects.create(facility=personas.facility_a, file_name="x.csv", sha256="0" * 64,
                                       stored_path=str(tmp_path / "x.csv"), created_by=personas.staff_a)
    outsider = login(Client(), personas.physician_b)

    async def attempt() -> tuple[bool, Any]:
        communicator = await _connect(outsider, batch.pk)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    connected, code = asyncio.run(attempt())
    assert not connected and code == 4404
    from audit.models import AuditEvent

    assert AuditEvent.objects.filter(kind="access_denied", object_id=str(batch.pk), channel="websocket").exists()
