from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "デモ利用者の現在の TOTP コードを表示します（デモ用。本番では使用できません）。"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        if not (settings.EMBEDDED or settings.MEDLMM_DEMO):
            raise CommandError("このコマンドはデモ環境（組込みモード）でのみ使えます。")
        device = TOTPDevice.objects.filter(user__username=username, confirmed=True, name="demo").first()
        if device is None:
            raise CommandError(f"利用者「{username}」にデモ用 TOTP はありません。")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift)
        self.stdout.write(f"{code:0{device.digits}d}")
