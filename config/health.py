"""/healthz: can this process reach what it needs? JSON, no PHI, no login (for load balancers)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


def _check_db() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


def _check_redis() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"ok": True, "skipped": "embedded mode (no REDIS_URL)"}
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return {"ok": bool(client.ping())}
    finally:
        client.close()


def _check_celery() -> dict[str, Any]:
    if settings.EMBEDDED:
        from config import embedded

        alive = embedded.worker_alive()
        return {"ok": alive, "workers": ["embedded"] if alive else []}
    from config.celery import app

    replies = app.control.inspect(timeout=1.0).ping() or {}
    queues: dict[str, list[str]] = {}
    if replies:
        active = app.control.inspect(timeout=1.0).active_queues() or {}
        queues = {worker: sorted(q["name"] for q in qs) for worker, qs in active.items()}
    served = {q for qs in queues.values() for q in qs}
    return {"ok": bool(replies) and {"default", "gpu"} <= served, "workers": sorted(replies), "queues": queues}


def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}
    for name, check in (("database", _check_db), ("redis", _check_redis), ("celery", _check_celery)):
        started = time.perf_counter()
        try:
            checks[name] = check()
        except Exception as exc:  # a health check reports failures, it does not raise them
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
        checks[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503)
