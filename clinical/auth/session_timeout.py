"""Idle timeout and absolute session lifetime (MHLW guideline; OWASP ASVS 5.0 L2 3.3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from audit.kinds import EventKind, Outcome
from audit.services import audit_record

LOGIN_AT = "_login_at"
SEEN_AT = "_seen_at"


class SessionTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            login_at = session.setdefault(LOGIN_AT, now)
            seen_at = session.get(SEEN_AT, now)
            reason = None
            if now - seen_at > settings.SESSION_IDLE_TIMEOUT_S:
                reason = "idle"
            elif now - login_at > settings.SESSION_ABSOLUTE_TIMEOUT_S:
                reason = "absolute"
            if reason:
                audit_record(kind=EventKind.SESSION_EXPIRED, outcome=Outcome.FAILURE, user=user,
                             object_type="user", object_id=user.pk, details={"reason": reason})
                logout(request)
                if request.path.startswith("/api/"):
                    return JsonResponse({"detail": _("セッションの有効期限が切れました。再度ログインしてください。"),
                                         "code": "session_expired"}, status=401)
                message = (_("一定時間操作がなかったため、ログアウトしました。再度ログインしてください。")
                           if reason == "idle" else _("セッションの有効期限が切れました。再度ログインしてください。"))
                messages.warning(request, message)
                return redirect(f"{reverse(settings.LOGIN_URL)}?{urlencode({'next': request.get_full_path()})}")
            # Write at most every 30 s: a session save on every request would be a DB write per click.
            if now - seen_at > 30 or SEEN_AT not in session:
                session[SEEN_AT] = now
        return self.get_response(request)
