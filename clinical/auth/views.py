"""Login, logout and the TOTP second factor (enrolment and verification)."""

from __future__ import annotations

import base64

import segno
from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_otp import devices_for_user
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.kinds import EventKind, Outcome
from audit.services import audit_record


class TokenForm(forms.Form):
    token = forms.RegexField(
        label=gettext_lazy("認証コード（6桁）"),
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": gettext_lazy("6桁の数字を入力してください。")},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True,
                                      "pattern": "[0-9]{6}", "maxlength": 6}),
    )


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return "/"


@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    devices = list(devices_for_user(request.user, confirmed=True))
    if not devices:
        return redirect("two_factor_setup")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"].strip()
        throttled = [d for d in devices if not d.verify_is_allowed()[0]]
        device = next((d for d in devices if d.verify_token(token)), None)
        if device is None and throttled:
            form.add_error("token", _("認証コードの誤りが続いたため、しばらく待ってから再入力してください。"))
        if device is not None:
            otp_login(request, device)
            audit_record(kind=EventKind.SECOND_FACTOR, user=request.user, object_type="user",
                         object_id=str(request.user.pk), details={"device": device.persistent_id})
            return redirect(_next_url(request))
        audit_record(kind=EventKind.SECOND_FACTOR, outcome=Outcome.FAILURE, user=request.user,
                     object_type="user", object_id=str(request.user.pk), details={"reason": "invalid_token"})
        if not throttled:
            form.add_error("token", _("認証コードが正しくないか、有効期限が切れています。"))
    return render(request, "registration/two_factor_verify.html", {"form": form, "next": _next_url(request)})


@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    if any(True for _d in devices_for_user(request.user, confirmed=True)):
        return redirect("two_factor_verify")
    device, _created = TOTPDevice.objects.get_or_create(
        user=request.user, confirmed=False, defaults={"name": "authenticator"}
    )
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"].strip()):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            audit_record(kind=EventKind.SECOND_FACTOR_ENROLLED, user=request.user, object_type="user",
                         object_id=str(request.user.pk), details={"device": device.persistent_id})
            return redirect(_next_url(request))
        audit_record(kind=EventKind.SECOND_FACTOR_ENROLLED, outcome=Outcome.FAILURE, user=request.user,
                     object_type="user", object_id=str(request.user.pk), details={"reason": "invalid_token"})
        form.add_error("token", _("認証コードが正しくありません。認証アプリの時刻と表示中のコードを確認してください。"))
    secret = base64.b32encode(bytes.fromhex(device.key)).decode("ascii")
    qr_svg = segno.make(device.config_url, micro=False).svg_inline(scale=4, dark="#111")
    return render(request, "registration/two_factor_setup.html",
                  {"form": form, "secret": secret, "qr_svg": qr_svg, "next": _next_url(request)})
