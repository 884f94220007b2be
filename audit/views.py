from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit.kinds import EventKind, Outcome
from audit.services import audit_record


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused form post is audited and explained; nothing else happens."""
    audit_record(
        kind=EventKind.CSRF_REJECTED,
        outcome=Outcome.DENIED,
        object_type="request",
        object_id=request.path[:64],
        details={"reason": reason, "method": request.method},
    )
    return render(request, "errors/csrf_failure.html", {"reason": reason}, status=403)
