from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reports.verify import verify_signoffs


class Command(BaseCommand):
    help = "署名済み所見の内容ハッシュをすべて再計算し、不一致があれば表示します（不一致があれば終了コード 1）。"

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_signoffs()
        if result.ok:
            self.stdout.write(f"OK: {result.checked} 件の署名を検証しました。改ざんは見つかりませんでした。")
            return
        for m in result.mismatches:
            self.stderr.write(f"不一致: 署名 {m.signoff_id}（所見 {m.report_id} 第{m.revision_number}版）"
                              f" 記録 {m.stored[:16]}… 再計算 {m.computed[:16]}…")
        raise CommandError(
            f"{len(result.mismatches)} 件の署名で内容が署名時と一致しません（検証 {result.checked} 件）。")
