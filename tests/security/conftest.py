from __future__ import annotations

import uuid
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _private_rate_limit_counts(settings: Any) -> None:
    # Counts of this test only: a shared Redis would carry other runs' logins from 127.0.0.1.
    settings.CACHES = {**settings.CACHES, "ratelimit": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}}
