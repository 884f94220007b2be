"""Re-authentication at the moment of signing: the physician proves again who they are, with their
password or a TOTP code, whatever the session says. Failures are counted per user, so the sign
form cannot be used to guess a password faster than the login form allows."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _
from django_otp import devices_for_user

from clinical.models import User

MAX_FAILURES = 5
WINDOW_S = 15 * 60


class ReauthFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _key(user: User) -> str:
    return f"reports:reauth-failures:{user.pk}"


def reauthenticate(*, user: User, method: str, credential: str) -> None:
    """Return if `credential` proves `user` by `method` ("password" or "totp"); raise ReauthFailed."""
    limit = getattr(settings, "REPORTS_REAUTH_MAX_FAILURES", MAX_FAILURES)
    failures = int(cache.get(_key(user), 0))
    if failures >= limit:
        raise ReauthFailed("throttled", _("再認証の失敗が続いたため、15分間署名できません。"))
    credential = (credential or "").strip()
    if method == "password":
        ok = bool(credential) and user.check_password(credential)
    elif method == "totp":
        devices = list(devices_for_user(user, confirmed=True))
        if not devices:
            raise ReauthFailed("no_device",
                               _("ワンタイムパスワードが登録されていません。パスワードで再認証してください。"))
        ok = bool(credential) and any(d.verify_token(credential) for d in devices)
    else:
        raise ReauthFailed("bad_method", _("再認証の方法が不正です。"))
    if not ok:
        cache.set(_key(user), failures + 1, WINDOW_S)
        what = _("パスワード") if method == "password" else _("認証コード")
        raise ReauthFailed("invalid", _("%(what)sが正しくありません。署名されていません。") % {"what": what})
    cache.delete(_key(user))
