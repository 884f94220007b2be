"""Logins, failed logins, logouts and lockouts are audited where Django and django-axes announce them."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.kinds import EventKind, Outcome
from audit.services import audit_record


@receiver(user_logged_in)
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(kind=EventKind.LOGIN, user=user, object_type="user", object_id=user.pk)


@receiver(user_login_failed)
def on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # The attempted username is kept (who was attacked); the password never is.
    audit_record(
        kind=EventKind.LOGIN_FAILED,
        outcome=Outcome.FAILURE,
        username=str(credentials.get("username", ""))[:150],
        details={"reason": "invalid_credentials"},
    )


@receiver(user_logged_out)
def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(kind=EventKind.LOGOUT, user=user, object_type="user", object_id=user.pk)


@receiver(user_locked_out)
def on_locked_out(sender: Any, request: Any, username: str | None = None, ip_address: str | None = None,
                  **kwargs: Any) -> None:
    audit_record(
        kind=EventKind.LOCKED_OUT,
        outcome=Outcome.DENIED,
        username=(username or "")[:150],
        details={"ip_address": ip_address},
    )
