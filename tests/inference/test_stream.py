"""Drafts streamed over websockets, and cancelling a generation while it runs. The job runs in a
worker thread (the task body), watchers connect through the real ASGI application."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from audit.models import AuditEvent
from clinical.models import CheckupVisit
from inference import engine_pool, runner, services
from inference.events import token_message
from inference.models import InferenceJob, JobStatus, ModelVersion
from reports.models import ReportRevision
from tests.conftest import Personas, close_other_connections, login
from tests.inference.conftest import VALID_DRAFT

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _close_thread_connections() -> Any:
    yield
    close_other_connections()


def _communicator(client: Client, path: str) -> WebsocketCommunicator:
    from config.asgi import application

    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    return WebsocketCommunicator(application, path, headers=[(b"cookie", cookie), (b"origin", b"http://testserver")])


def _in_thread(job_id: int) -> tuple[threading.Thread, list[str]]:
    out: list[str] = []

    def run() -> None:
        from django.db import connection

        try:
            out.append(runner.run_job(job_id))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _apply(text: str, message: dict[str, Any]) -> str:
    if message["type"] == "job.state":
        return str(message["text"])
    assert message["offset"] <= len(text), "a hole in the streamed text"
    return text[: message["offset"]] + message["text"]


def test_it_streams_the_draft_token_by_token_to_a_watcher(
    personas: Personas, visit_a: CheckupVisit, canned: Callable[..., ModelVersion],
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a,
                              model_version=canned(VALID_DRAFT, chunk=3, delay=0.01))
    client = login(Client(), personas.physician_a)

    async def watch() -> list[dict[str, Any]]:
        communicator = _communicator(client, f"/ws/jobs/{job.pk}/")
        connected, _ = await communicator.connect()
        assert connected
        messages = [await communicator.receive_json_from(timeout=5)]
        thread, _out = await sync_to_async(_in_thread)(job.pk)
        while not (messages[-1]["type"] == "job.state" and messages[-1]["final"]):
            messages.append(await communicator.receive_json_from(timeout=10))
        await communicator.disconnect()
        await sync_to_async(thread.join)()
        return messages

    messages = asyncio.run(watch())
    assert messages[0]["status"] == "queued" and messages[0]["text"] == ""
    text = ""
    tokens = [m for m in messages if m["type"] == "job.token"]
    for m in messages[:-1]:
        text = _apply(text, m)
    # The deltas rebuild the draft without a hole; its tail comes with the final state, which
    # carries the whole text (no last delta of its own: the same text twice).
    assert VALID_DRAFT.startswith(text) and text
    assert len(tokens) >= 3 and tokens[-1]["progress"] > 0
    final = messages[-1]
    assert final["status"] == "succeeded" and final["text"] == VALID_DRAFT and final["progress"] == 100
    assert AuditEvent.objects.filter(kind="phi_read", object_id=str(job.pk), channel="websocket").exists()


def test_a_token_reaches_the_watcher_without_a_hop_to_a_database_thread(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Channels' own dispatch closes stale database connections in a thread before every message;
    our consumers touch the database only in `database_sync_to_async` calls, which do that
    themselves (config/consumers.py), so a token costs no thread hop."""
    import channels.consumer

    hops: list[int] = []

    async def counted() -> None:
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    client = login(Client(), personas.physician_a)

    async def watch() -> dict[str, Any]:
        communicator = _communicator(client, f"/ws/jobs/{job.pk}/")
        assert (await communicator.connect())[0]
        await communicator.receive_json_from(timeout=5)
        await get_channel_layer().group_send(f"job.{job.pk}", token_message(job.pk, 0, "胸部", 1, 1))
        token = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return token

    token = asyncio.run(watch())
    assert (token["type"], token["text"]) == ("job.token", "胸部")
    assert hops == []


def test_it_gives_a_reconnecting_client_the_persisted_text_first_and_fills_any_hole(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    services.job_claim(job_id=job.pk, worker_id="w:1")
    services.job_progress(job_id=job.pk, worker_id="w:1", partial_text="ABC", completion_tokens=3, prompt_tokens=9,
                          first_token=True)
    client = login(Client(), personas.physician_a)
    layer = get_channel_layer()

    async def reconnect() -> str:
        communicator = _communicator(client, f"/ws/jobs/{job.pk}/")
        assert (await communicator.connect())[0]
        first = await communicator.receive_json_from(timeout=5)
        assert first["type"] == "job.state" and first["text"] == "ABC" and first["status"] == "running"
        text = first["text"]
        # "DE" was broadcast before this client joined and is not persisted yet: "FG" lands after a hole.
        await layer.group_send(f"job.{job.pk}", token_message(job.pk, 5, "FG", 7, 1))
        assert await communicator.receive_nothing(timeout=0.3)
        await sync_to_async(services.job_progress)(job_id=job.pk, worker_id="w:1", partial_text="ABCDEFG",
                                                   completion_tokens=7, prompt_tokens=9, first_token=False)
        await layer.group_send(f"job.{job.pk}", token_message(job.pk, 7, "H", 8, 1))
        for _ in range(2):
            text = _apply(text, await communicator.receive_json_from(timeout=5))
        await layer.group_send(f"job.{job.pk}", token_message(job.pk, 5, "FGH", 8, 1))  # a repeat: nothing new
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return text

    assert asyncio.run(reconnect()) == "ABCDEFGH"


@pytest.mark.slow
def test_a_watcher_of_a_job_that_waits_longer_than_five_seconds_still_gets_its_tokens(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """A queued job may wait minutes for the GPU. redis-py 8 reads with a 5 s timeout, as long as
    channels_redis' blocking pop: the consumer died with "Timeout reading" before the first token."""
    if "RedisChannelLayer" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.skip("needs the Redis channel layer (REDIS_URL)")
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    client = login(Client(), personas.physician_a)
    layer = get_channel_layer()

    async def wait_then_stream() -> dict[str, Any]:
        communicator = _communicator(client, f"/ws/jobs/{job.pk}/")
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from(timeout=5))["status"] == "queued"
        assert await communicator.receive_nothing(timeout=6.5, interval=0.5)
        await layer.group_send(f"job.{job.pk}", token_message(job.pk, 0, "胸部", 2, 1))
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    message = asyncio.run(wait_then_stream())
    assert (message["type"], message["text"]) == ("job.token", "胸部")


def test_it_closes_the_stream_of_another_facilitys_job_and_audits_it(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    outsider = login(Client(), personas.physician_b)

    async def attempt() -> tuple[bool, Any]:
        communicator = _communicator(outsider, f"/ws/jobs/{job.pk}/")
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert asyncio.run(attempt()) == (False, 4404)
    assert AuditEvent.objects.filter(kind="access_denied", object_id=str(job.pk), channel="websocket",
                                     username="physician_b").exists()


def test_a_refused_watcher_gets_nothing_the_job_sent_while_it_was_being_checked(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """The consumer joins the job's group before it checks the user (so an allowed client misses
    nothing); a token sent during the check must not reach a client that is then refused."""
    from asgiref.sync import async_to_sync
    from django.db.models.signals import post_save

    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    outsider = login(Client(), personas.physician_b)

    def send_during_the_check(sender: Any, instance: AuditEvent, **kwargs: Any) -> None:
        if instance.kind == "access_denied":  # written by the check itself, before it answers
            async_to_sync(get_channel_layer().group_send)(
                f"job.{job.pk}", token_message(job.pk, 0, "秘密の所見", 1, 1))

    async def attempt() -> tuple[bool, Any, bool]:
        communicator = _communicator(outsider, f"/ws/jobs/{job.pk}/")
        connected, code = await communicator.connect()
        silent = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return connected, code, silent

    post_save.connect(send_during_the_check, sender=AuditEvent)
    try:
        assert asyncio.run(attempt()) == (False, 4404, True)
    finally:
        post_save.disconnect(send_during_the_check, sender=AuditEvent)


def test_it_pushes_a_finished_draft_to_the_physicians_of_its_facility_only(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    mine, other = login(Client(), personas.physician_a), login(Client(), personas.physician_b)

    async def watch() -> tuple[dict[str, Any], bool]:
        a, b = _communicator(mine, "/ws/worklist/"), _communicator(other, "/ws/worklist/")
        assert (await a.connect())[0] and (await b.connect())[0]
        assert (await a.receive_json_from())["facilities"] == [personas.facility_a.pk]
        assert (await b.receive_json_from())["facilities"] == [personas.facility_b.pk]
        await sync_to_async(runner.run_job)(job.pk)
        pushed = await a.receive_json_from(timeout=5)
        quiet = await b.receive_nothing(timeout=0.5)
        await a.disconnect()
        await b.disconnect()
        return pushed, quiet

    pushed, quiet = asyncio.run(watch())
    assert pushed["type"] == "worklist.draft" and pushed["job"] == job.pk and pushed["status"] == "succeeded"
    assert pushed["is_template"] is True and pushed["mrn"] == "A0001"
    assert quiet


def test_it_stops_the_generation_when_a_running_job_is_cancelled(
    personas: Personas, visit_a: CheckupVisit, canned: Callable[..., ModelVersion],
) -> None:
    mv = canned(VALID_DRAFT, chunk=1, delay=0.02)  # about 5 s if nobody stops it
    job = services.job_create(actor=personas.physician_a, visit=visit_a, model_version=mv)
    thread, out = _in_thread(job.pk)
    deadline = time.monotonic() + 10
    while not InferenceJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, completion_tokens__gt=0).exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    assert services.job_cancel(job=job, actor=personas.physician_a)
    thread.join(timeout=5)
    assert not thread.is_alive() and out == ["lost"]
    assert time.monotonic() - started < 2  # stopped at the next progress write, not at the end
    engine: Any = engine_pool.get_engine(mv)
    assert engine.cancelled == {f"job-{job.pk}-1"}
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.completion_tokens < len(VALID_DRAFT)
    assert not ReportRevision.objects.exists()
