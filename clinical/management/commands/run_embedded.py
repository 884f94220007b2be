from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config import embedded


class Command(BaseCommand):
    help = "アプリケーション全体を1プロセスで起動します（SQLite、インメモリの Celery と Channels）。"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if not settings.EMBEDDED:
            raise CommandError("REDIS_URL が設定されています。本番構成は `make serve` で起動してください。")
        self.stdout.write(f"Med-LMM CDS (embedded) → http://{host}:{port}/")
        embedded.serve(host=host, port=port)
