"""Shared fixtures: the personas every test talks about (staff of A, physician of A, physician of
B, admin of A, auditor of A), logged-in clients for them, and audit helpers."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from clinical import services
from clinical.models import Facility, Role, User

PASSWORD = "Correct-Horse-42"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # Hashing cost is not under test; PBKDF2's 1M rounds would dominate the suite.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _engines_in_this_process(settings: Any) -> None:
    # Tests that build a tiny engine through the pool keep it in the test process (a child process
    # per test would cost seconds of imports each); tests/inference/test_engine_process.py and the
    # live worker tests run the production setting.
    settings.INFERENCE_ENGINE_PROCESS = False


@pytest.fixture(autouse=True)
def _isolated_caches(settings: Any) -> None:
    """Each test starts with empty caches: a cached nav answer or a rate-limit count left by an
    earlier test (or an earlier run, in Redis) must not change what a test sees or counts."""
    from django.core.cache import cache

    settings.CACHES = {**settings.CACHES, "ratelimit": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}}
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test gets its own channel layer instance: channels_redis binds locks to the event loop
    that first used them, and every test runs its websockets in a new loop (asyncio.run), so a
    layer kept from an earlier test fails with "bound to a different event loop"."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@dataclass
class Personas:
    facility_a: Facility
    facility_b: Facility
    staff_a: User
    physician_a: User
    physician_b: User
    admin_a: User
    auditor_a: User

    def all(self) -> dict[str, User]:
        return {n: getattr(self, n) for n in ("staff_a", "physician_a", "physician_b", "admin_a", "auditor_a")}


def _user(username: str, facility: Facility, role: str, totp: bool) -> User:
    user = services.user_create(username=username, password=PASSWORD, display_name=f"{username} 氏")
    services.membership_grant(user=user, facility=facility, role=role)
    if totp:
        TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    return user


@pytest.fixture
def personas(db: None) -> Personas:
    a = services.facility_create(code="A01", name="A健診センター")
    b = services.facility_create(code="B01", name="B総合病院")
    return Personas(
        facility_a=a,
        facility_b=b,
        staff_a=_user("staff_a", a, Role.STAFF, totp=False),
        physician_a=_user("physician_a", a, Role.PHYSICIAN, totp=True),
        physician_b=_user("physician_b", b, Role.PHYSICIAN, totp=True),
        admin_a=_user("admin_a", a, Role.ADMIN, totp=True),
        auditor_a=_user("auditor_a", a, Role.AUDITOR, totp=False),
    )


def login(client: Client, user: User, *, second_factor: bool = True) -> Client:
    """Log `user` in; with second_factor, as if they had also passed TOTP."""
    client.force_login(user)
    if second_factor:
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is not None:
            session = client.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()
    return client


@pytest.fixture
def client_for(personas: Personas) -> Callable[[str], Client]:
    def make(name: str) -> Client:
        return login(Client(), getattr(personas, name))

    return make


@pytest.fixture
def audit_events() -> Callable[..., list[AuditEvent]]:
    def events(**filters: Any) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(**filters).order_by("seq"))

    return events


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One chromium for the session. Playwright's sync API keeps an event loop running in this
    thread while it is open, so browser tests are ordered last (pytest_collection_modifyitems):
    asyncio.run() in any later test would fail."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    # The sync ORM calls tests make between page actions run beside Playwright's loop: safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def celery_worker_thread() -> Iterator[None]:
    """A real Celery worker (solo pool, in a thread of this process) consuming the test Redis broker."""
    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: the production broker")
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["default"], loglevel="WARNING",
                      shutdown_timeout=10):
        yield


def close_other_connections() -> None:
    """Threads that ran Django code (a Celery worker thread, Channels' sync_to_async executor)
    keep their own database connections; close them so the test database can be dropped."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    yield
    with django_db_blocker.unblock():
        close_other_connections()


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    has_cuda = False
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # noqa: S110  (no torch: no CUDA)
        pass
    skip_gpu = pytest.mark.skip(reason="needs CUDA (GPU tests run on the lent device only)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
    # Browser tests last: see the `browser` fixture.
    items.sort(key=lambda item: "browser" in item.keywords)


