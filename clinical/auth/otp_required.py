"""Physicians and administrators must pass TOTP before they see anything (django-otp)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from rest_framework.permissions import BasePermission

from clinical.models import Membership

# Paths a half-logged-in user may still reach: the second-factor pages, logout, assets, health.
_OPEN_PREFIXES = ("/accounts/2fa/", "/accounts/logout/", "/static/", "/i18n/", "/healthz", "/accounts/login/")


def requires_second_factor(user: Any) -> bool:
    if user is None or not user.is_authenticated:
        return False
    cached = user.__dict__.get("_requires_2fa")
    if cached is None:
        roles = settings.SECOND_FACTOR_REQUIRED_ROLES
        cached = user.is_superuser or Membership.objects.filter(user=user, role__in=roles).exists()
        user.__dict__["_requires_2fa"] = cached
    return bool(cached)


def second_factor_satisfied(user: Any) -> bool:
    return not requires_second_factor(user) or bool(getattr(user, "is_verified", lambda: False)())


class RequireSecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.path.startswith(_OPEN_PREFIXES):
            if not second_factor_satisfied(user):
                # API clients (ours under /api/, the report screen's under /reports/api/) get JSON.
                if request.path.startswith(("/api/", "/reports/api/")):
                    return JsonResponse(
                        {"detail": "二要素認証が完了していません。", "code": "second_factor_required"}, status=403
                    )
                from django_otp import devices_for_user

                has_device = any(True for _d in devices_for_user(user, confirmed=True))
                target = reverse("two_factor_verify" if has_device else "two_factor_setup")
                # Keep where the user was going, so passing TOTP lands them there.
                return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


class SecondFactorVerified(BasePermission):
    message = "二要素認証が完了していません。"

    def has_permission(self, request: Any, view: Any) -> bool:
        return second_factor_satisfied(request.user)


def websocket_user_verified(user: Any, session: Any) -> bool:
    """Websockets pass through AuthMiddlewareStack, not OTPMiddleware: check the second factor the
    same way OTPMiddleware does, from the device id the TOTP step stored in the session."""
    if user is None or not user.is_authenticated:
        return False
    if not requires_second_factor(user):
        return True
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.models import Device

    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    device = Device.from_persistent_id(persistent_id) if persistent_id else None
    return device is not None and device.user_id == user.pk and device.confirmed
