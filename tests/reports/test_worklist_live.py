"""Every save and sign-off tells the facility's open worklists over ws/worklist/ (ids only, no PHI),
through the real ASGI application and the Redis channel layer; other facilities hear nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from reports import services
from reports.models import Report
from tests.conftest import PASSWORD, Personas, close_other_connections, login

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _close_thread_connections() -> Iterator[None]:
    yield
    close_other_connections()


def _communicator(client: Client) -> WebsocketCommunicator:
    from config.asgi import application

    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    return WebsocketCommunicator(application, "/ws/worklist/",
                                 headers=[(b"cookie", cookie), (b"origin", b"http://testserver")])


async def _next_report_message(communicator: WebsocketCommunicator) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        if message["type"] == "worklist.report":
            return message


def test_a_save_and_a_sign_off_reach_the_facilitys_worklists_only(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    mine, other = login(Client(), personas.physician_a), login(Client(), personas.physician_b)

    async def watch() -> tuple[dict[str, Any], dict[str, Any], bool]:
        a, b = _communicator(mine), _communicator(other)
        assert (await a.connect())[0] and (await b.connect())[0]
        assert (await a.receive_json_from())["type"] == "worklist.hello"
        await b.receive_json_from()
        await sync_to_async(services.revision_save)(report=report, actor=personas.physician_a, base_number=1,
                                                    text="所見を確認しました。")
        saved = await _next_report_message(a)
        await sync_to_async(services.report_sign)(report=report, actor=personas.physician_a, revision_number=2,
                                                  method="password", credential=PASSWORD)
        signed = await _next_report_message(a)
        quiet = await b.receive_nothing(timeout=0.5)
        await a.disconnect()
        await b.disconnect()
        return saved, signed, quiet

    saved, signed, quiet = asyncio.run(watch())
    assert saved == {"type": "worklist.report", "report": report.pk, "url": f"/reports/{report.pk}/"}
    assert signed["report"] == report.pk
    assert quiet
