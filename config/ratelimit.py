"""Request rate limits and request size limits, as middleware.

Rate limits are fixed windows counted in a Django cache (`RATELIMIT_CACHE`: Redis in production so
every worker process shares the count; local memory in the embedded mode). They slow down password
spraying across many usernames from one address and runaway API clients. They do not replace
django-axes: axes still locks a username+IP after `AXES_FAILURE_LIMIT` failures; this limit counts
every login POST from an address, whatever the username.

Size limits answer 413 with a message a person can act on, before Django reads the body (Django
itself would answer a bare 400 "Bad Request" for RequestDataTooBig).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class Rule:
    name: str
    path_prefix: str
    methods: frozenset[str]
    limit: int  # requests per window
    window_s: int
    by: str  # "ip" | "user_or_ip"


def _rules() -> list[Rule]:
    return [
        Rule(name=r["name"], path_prefix=r["path_prefix"], methods=frozenset(r.get("methods", ())),
             limit=int(r["limit"]), window_s=int(r["window_s"]), by=r.get("by", "ip"))
        for r in getattr(settings, "RATELIMIT_RULES", [])
    ]


def _client_ip(request: HttpRequest) -> str:
    from audit.middleware import client_ip

    return client_ip(request) or "unknown"


def hit(key: str, *, window_s: int, now: float | None = None) -> tuple[int, int]:
    """Count one request against `key`. Returns (requests so far in this window, seconds until it ends)."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    cache = caches[getattr(settings, "RATELIMIT_CACHE", "default")]
    cache_key = f"rl:{key}:{window}"
    # add() then incr(): atomic on Redis; on local memory, atomic within the process.
    cache.add(cache_key, 0, timeout=window_s + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window_s + 1)
        count = 1
    retry_after = int((window + 1) * window_s - now) + 1
    return count, retry_after


class RateLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if getattr(settings, "RATELIMIT_ENABLED", True):
            for rule in _rules():
                if not request.path.startswith(rule.path_prefix):
                    continue
                if rule.methods and request.method not in rule.methods:
                    continue
                user = getattr(request, "user", None)
                if rule.by == "user_or_ip" and user is not None and user.is_authenticated:
                    who = f"u{user.pk}"
                else:
                    who = f"ip{_client_ip(request)}"
                count, retry_after = hit(f"{rule.name}:{who}", window_s=rule.window_s)
                if count > rule.limit:
                    return self._refuse(request, rule, retry_after, first=count == rule.limit + 1)
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, rule: Rule, retry_after: int, *, first: bool) -> HttpResponse:
        from audit.kinds import EventKind, Outcome
        from audit.services import audit_record

        # The first refusal of a window is audited; the rest of a flood would only bury the log.
        if first:
            audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="request",
                         object_id=request.path[:64], details={"reason": "rate_limited", "rule": rule.name})
        message = _("リクエストが多すぎます。%(s)d 秒ほど待ってから再度お試しください。") % {"s": retry_after}
        if request.path.startswith("/api/") or request.headers.get("Accept", "").startswith("application/json"):
            response: HttpResponse = JsonResponse({"detail": message, "code": "rate_limited"}, status=429)
        else:
            response = render(request, "audit/request_refused.html", {"message": message}, status=429)
        response["Retry-After"] = str(retry_after)
        return response


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    mb = limit / (1024 * 1024)
    message = _("送信されたデータが大きすぎます（上限 %(mb).1f MB）。"
                "ファイルを分割するか、小さくしてから再度送信してください。") % {"mb": mb}
    if request.path.startswith(("/api/", "/dicomweb/")) or "json" in request.headers.get("Accept", ""):
        return JsonResponse({"detail": message, "code": "request_too_large", "limit_bytes": limit}, status=413)
    return render(request, "audit/request_refused.html", {"message": message}, status=413)


class RequestSizeLimitMiddleware:
    """413 before the body is read: multipart uploads up to `MAX_UPLOAD_BYTES` (DICOMweb STOW-RS,
    which streams, up to `DICOMWEB_MAX_REQUEST_BYTES`); other bodies (forms, JSON) up to
    `DATA_UPLOAD_MAX_MEMORY_SIZE`, which is what Django would refuse anyway."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length:
            limit = self._limit(request)
            if limit is not None and length > limit:
                return _too_large(request, limit)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # Bodies without a Content-Length (chunked) are caught when Django reads them.
        if isinstance(exception, RequestDataTooBig):
            return _too_large(request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0)
        return None

    @staticmethod
    def _limit(request: HttpRequest) -> int | None:
        content_type = request.META.get("CONTENT_TYPE", "")
        if request.path.startswith("/dicomweb/"):
            return int(getattr(settings, "DICOMWEB_MAX_REQUEST_BYTES", 0)) or None
        if content_type.startswith("multipart/"):
            return int(getattr(settings, "MAX_UPLOAD_BYTES", 0)) or None
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE
