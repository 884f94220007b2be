from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clinical.dicom import scp
from config.env import env_int, env_str


class Command(BaseCommand):
    help = "DICOM C-STORE SCP を起動します（登録済みの AE タイトルからのみ受信）。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ae-title", default=env_str("DICOM_SCP_AE_TITLE", "MEDLMM"))
        parser.add_argument("--host", default=env_str("DICOM_SCP_HOST", "0.0.0.0"))  # noqa: S104 (a network service)
        parser.add_argument("--port", type=int, default=env_int("DICOM_SCP_PORT", 11112))

    def handle(self, *args: Any, **options: Any) -> None:
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        self.stdout.write(f"DICOM SCP {options['ae_title']} を {options['host']}:{options['port']} で待ち受けます")
        scp.serve(ae_title=options["ae_title"], host=options["host"], port=options["port"], block=True)
