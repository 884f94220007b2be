"""`manage.py restore PATH --yes`: checks the backup against its manifest first (a damaged backup is
refused before anything is touched), then restores the database and the file folders.

`--database-url` restores into another database (a fresh one, to rehearse a restore without
touching the live system); `--files-to DIR` puts the file folders under DIR instead of their live
places. Afterwards run `manage.py audit_verify` against the restored database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from audit.management.commands.backup import MANIFEST, file_roots, pg_env, verify_manifest


class Command(BaseCommand):
    help = "バックアップを検証してから、データベースとファイルを復元します。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="backup コマンドで作ったフォルダ")
        parser.add_argument("--yes", action="store_true", help="復元先のデータとファイルを置き換えることを了承する")
        parser.add_argument("--database-url", default="", help="復元先データベース（既定: 設定中のデータベース）")
        parser.add_argument("--files-to", default="", help="ファイルの復元先フォルダ（既定: 元の場所）")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"]).resolve()
        problems = verify_manifest(path)
        if problems:
            raise CommandError("バックアップがマニフェストと一致しないため復元しません:\n" + "\n".join(problems))
        if not options["yes"]:
            raise CommandError("復元は復元先のデータを置き換えます。了承する場合は --yes を付けてください。")
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        target: dict[str, Any] = (dict(dj_database_url.parse(options["database_url"])) if options["database_url"]
                                  else dict(connection.settings_dict))
        self._restore_database(path, manifest["database"], target)
        base = Path(options["files_to"]).resolve() if options["files_to"] else None
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        for name, live in file_roots().items():
            source = path / "files" / name
            if not source.is_dir():
                continue
            dest = base / name if base else live
            if dest.exists():
                # Kept beside, not deleted: a restore over the wrong folder must be recoverable.
                dest.rename(dest.with_name(f"{dest.name}.before-restore-{stamp}"))
            shutil.copytree(source, dest)
        self.stdout.write(f"OK: 復元しました（監査ログ 連番 {manifest['audit_last_seq']} まで）。"
                          "manage.py audit_verify で監査ログを検証してください。")

    def _restore_database(self, path: Path, database: dict[str, Any], target: dict[str, Any]) -> None:
        dump = path / database["file"]
        engine = str(target.get("ENGINE", ""))
        if database["vendor"] == "postgresql":
            if "postgresql" not in engine:
                raise CommandError("PostgreSQL のバックアップは PostgreSQL にのみ復元できます。")
            result = subprocess.run(  # noqa: S603
                ["pg_restore", "--no-owner", "--no-privileges", "--clean", "--if-exists",  # noqa: S607
                 "--single-transaction", "--exit-on-error", f"--dbname={target['NAME']}", str(dump)],
                env=pg_env(target), capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise CommandError(f"pg_restore に失敗しました: {result.stderr.strip()}")
            return
        if database["vendor"] == "sqlite":
            if "sqlite" not in engine:
                raise CommandError("SQLite のバックアップは SQLite にのみ復元できます。")
            dest = Path(str(target["NAME"]))
            if dest.exists():
                dest.rename(dest.with_name(f"{dest.name}.before-restore-{timezone.now():%Y%m%dT%H%M%S}"))
            shutil.copy2(dump, dest)
            return
        raise CommandError(f"{database['vendor']} の復元には対応していません。")
