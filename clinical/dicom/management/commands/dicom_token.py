from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import RequestContext, acting, new_request_id
from clinical.auth.otp_required import requires_second_factor
from clinical.dicom.services import access_token_issue
from clinical.models import User


class Command(BaseCommand):
    help = "DICOMweb クライアント用のアクセストークンを発行します（表示は一度だけ）。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="dicomweb")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"利用者 {options['username']} はいません")
        if requires_second_factor(user):
            raise CommandError("二要素認証が必要な利用者にはトークンを発行できません（専用の利用者を作ってください）")
        with acting(RequestContext(request_id=new_request_id(), channel="command", username="dicom_token")):
            _token, secret = access_token_issue(user=user, name=options["name"])
        self.stdout.write(secret)
