"""Who is calling a DICOMweb endpoint: the browser session (password + TOTP, enforced by the
site's middleware, CSRF checked on writes like DRF does), or `Authorization: Bearer <token>` for
modalities and scripts that cannot log in through a form.

A token only acts for a user who needs no second factor (a staff or service account): handing a
physician's or administrator's reach to a long-lived secret would bypass TOTP.

Machine clients poll (a PACS asking QIDO-RS every few seconds), and resolving a token to a user and
that user to facilities costs more than the search itself; so a token's user, with its facility
scope, is kept in this process for DICOMWEB_TOKEN_CACHE_S seconds (default 10). Revoking a token or
a membership therefore takes effect for token clients within that time, not instantly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from audit.context import RequestContext, acting, current_context, new_request_id
from audit.middleware import client_ip
from clinical.auth.otp_required import requires_second_factor, second_factor_satisfied
from clinical.dicom.models import AccessToken
from clinical.dicom.storage import sha256_hex
from clinical.scoping import facility_ids_for
from config.env import env_int

View = Callable[..., HttpResponseBase]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def error(status: int, detail: str, code: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"detail": detail, "code": code}, status=status, json_dumps_params={"ensure_ascii": False})
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


_cache: dict[str, tuple[float, Any]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 1000


def _cache_seconds() -> int:
    configured = getattr(settings, "DICOMWEB_TOKEN_CACHE_S", None)
    return env_int("DICOMWEB_TOKEN_CACHE_S", 10) if configured is None else int(configured)


def _token_user(secret: str) -> Any | None:
    """The active user of an active token that needs no second factor, or None."""
    key = sha256_hex(secret.encode())
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    token = (
        AccessToken.objects.select_related("user")
        .filter(key_sha256=key, is_active=True, user__is_active=True)
        .first()
    )
    if token is None or requires_second_factor(token.user):
        return None  # refusals are not cached: a token issued a moment later must work at once
    user = token.user
    facility_ids_for(user)  # resolve the scope once; it is cached on the user object
    ttl = _cache_seconds()
    if ttl > 0:
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[key] = (now + ttl, user)
    return user


class _Csrf(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        return error(403, f"CSRF 検証に失敗しました: {reason}", "csrf_failed")


def dicomweb(methods: tuple[str, ...] = ("GET",)) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return error(405, "このメソッドは使えません", "method_not_allowed", Allow=", ".join(methods))
            authorization = request.headers.get("Authorization", "")
            if authorization[:7].lower() == "bearer ":
                user = _token_user(authorization[7:].strip())
                if user is None:
                    return error(401, "トークンが無効です", "invalid_token",
                                 WWW_Authenticate='Bearer error="invalid_token"')
                request.user = user
                ctx = current_context()
                with acting(
                    RequestContext(
                        request_id=ctx.request_id if ctx else new_request_id(), source_ip=client_ip(request),
                        user_id=user.pk, username=user.get_username(), channel="api",
                    )
                ):
                    return view(request, *args, **kwargs)
            user = request.user
            if not user.is_authenticated:
                return error(401, "ログインが必要です", "not_authenticated", WWW_Authenticate='Bearer realm="dicomweb"')
            if not second_factor_satisfied(user):
                return error(403, "二要素認証が完了していません。", "second_factor_required")
            if request.method not in SAFE_METHODS:
                rejected = _Csrf(lambda r: HttpResponse()).process_view(request, view, (), {})
                if rejected is not None:
                    return rejected
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
