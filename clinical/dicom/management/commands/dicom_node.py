from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import RequestContext, acting, new_request_id
from clinical.dicom.services import dicom_node_register
from clinical.models import Facility


class Command(BaseCommand):
    help = "C-STORE で送信できる AE タイトルを施設に登録します。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("facility", help="施設コード")
        parser.add_argument("ae_title")
        parser.add_argument("--host", default="", help="接続元ホスト（省略時はどこからでも）")
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        facility = Facility.objects.filter(code=options["facility"]).first()
        if facility is None:
            raise CommandError(f"施設コード {options['facility']} はありません")
        with acting(RequestContext(request_id=new_request_id(), channel="command", username="dicom_node")):
            node = dicom_node_register(facility=facility, ae_title=options["ae_title"], host=options["host"],
                                       description=options["description"])
        self.stdout.write(f"登録しました: {node}")
