"""MHLW 医療情報システムの安全管理に関するガイドライン 第6.0版: passwords must be long, or may be
shorter only when a second factor protects the account."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def _has_second_factor(user: Any) -> bool:
    if user is None or getattr(user, "pk", None) is None:
        return False
    from django_otp import devices_for_user

    return any(True for _d in devices_for_user(user, confirmed=True))


class MedicalPasswordValidator:
    def __init__(self, min_length: int = 12, min_length_with_second_factor: int = 8) -> None:
        self.min_length = min_length
        self.min_length_with_second_factor = min_length_with_second_factor

    def validate(self, password: str, user: Any = None) -> None:
        required = self.min_length_with_second_factor if _has_second_factor(user) else self.min_length
        if len(password) < required:
            raise ValidationError(
                _("パスワードは%(n)d文字以上にしてください（二要素認証を使わない場合は%(m)d文字以上）。")
                % {"n": required, "m": self.min_length},
                code="password_too_short",
            )
        classes = sum(
            (any(c.islower() for c in password), any(c.isupper() for c in password),
             any(c.isdigit() for c in password), any(not c.isalnum() for c in password))
        )
        if classes < 2:
            raise ValidationError(
                _("パスワードには英小文字・英大文字・数字・記号のうち2種類以上を含めてください。"),
                code="password_too_simple",
            )

    def get_help_text(self) -> str:
        return _("%(n)d文字以上（二要素認証を使う場合は%(m)d文字以上）、2種類以上の文字を含めてください。") % {
            "n": self.min_length, "m": self.min_length_with_second_factor,
        }
