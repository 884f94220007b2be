from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.verify import verify_chain


class Command(BaseCommand):
    help = "監査ログのハッシュチェーンを検証し、最初の破損箇所を表示します（破損があれば終了コード 1）。"

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_chain()
        if result.ok:
            self.stdout.write(f"OK: {result.checked} 件の監査イベントを検証しました。チェーンは完全です。")
            return
        assert result.first_break is not None
        raise CommandError(
            f"監査ログの破損を検出しました: seq={result.first_break.seq}: {result.first_break.reason}"
            f"（正常に検証できたのは {result.checked} 件）"
        )
