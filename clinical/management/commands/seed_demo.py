from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.context import RequestContext, acting, new_request_id
from clinical.demo.checkups import seed_checkups
from clinical.demo.seed import DEMO_PASSWORD, PERSONAS, seed_demo
from clinical.dicom.demo import seed_studies


class Command(BaseCommand):
    help = "デモ用の施設・利用者・受診者を登録します（何度実行しても同じ結果）。"

    def handle(self, *args: Any, **options: Any) -> None:
        with acting(RequestContext(request_id=new_request_id(), channel="command", username="seed_demo")):
            result = seed_demo()
            result["visits_imported"] = seed_checkups()
            result["dicom_instances"] = seed_studies()
        self.stdout.write(f"デモデータ: {result}")
        self.stdout.write(f"デモ用ログイン（パスワードはすべて {DEMO_PASSWORD}）:")
        for p in PERSONAS:
            otp = f"  TOTP: `make totp USER={p.username}`" if p.totp_key_hex else ""
            self.stdout.write(f"  {p.username:8s} {p.display_name}（{p.role} @ {p.facility_code}）{otp}")
