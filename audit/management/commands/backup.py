"""`manage.py backup PATH`: the database (pg_dump custom format on PostgreSQL, an online copy of the
SQLite file), the DICOM store and var/uploads, and a manifest with the SHA-256 of every file.
`manage.py backup --verify PATH` re-checks an existing backup against its manifest.

Copy the folder to write-protected media / another site afterwards (MHLW guideline: several
generations, at least one not writable from here); this command only makes a consistent set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from audit.models import AuditChainHead

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def dicom_root() -> Path:
    # The same rule as the DICOM store's own (audit imports no other app).
    configured = getattr(settings, "DICOM_STORE_ROOT", "") or os.environ.get("DICOM_STORE_ROOT", "")
    return Path(configured) if configured else Path(settings.VAR_DIR) / "dicom"


def uploads_root() -> Path:
    return Path(settings.VAR_DIR) / "uploads"


def file_roots() -> dict[str, Path]:
    """Folder name inside the backup → live folder."""
    return {"dicom": dicom_root(), "uploads": uploads_root()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def walk(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def pg_env(db: dict[str, Any]) -> dict[str, str]:
    """libpq settings for pg_dump / pg_restore; the password travels in the environment, never argv."""
    env = dict(os.environ)
    for key, var in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER"), ("PASSWORD", "PGPASSWORD")):
        if db.get(key):
            env[var] = str(db[key])
    return env


def verify_manifest(path: Path) -> list[str]:
    """Problems found (empty: the backup is intact)."""
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        return [f"{MANIFEST} がありません"]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems = []
    listed = set(manifest["files"])
    for rel, meta in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            problems.append(f"欠落: {rel}")
        elif file.stat().st_size != meta["size"] or sha256_file(file) != meta["sha256"]:
            problems.append(f"内容が一致しません: {rel}")
    for file in walk(path):
        rel = file.relative_to(path).as_posix()
        if rel != MANIFEST and rel not in listed:
            problems.append(f"マニフェストにないファイル: {rel}")
    return problems


class Command(BaseCommand):
    help = "データベース・DICOM 保存領域・アップロードをバックアップし、SHA-256 マニフェストを作ります。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="バックアップ先のフォルダ（新規または空）")
        parser.add_argument("--verify", action="store_true", help="既存のバックアップをマニフェストで検証する")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"]).resolve()
        if options["verify"]:
            problems = verify_manifest(path)
            if problems:
                raise CommandError("バックアップの検証に失敗しました:\n" + "\n".join(problems))
            count = len(json.loads((path / MANIFEST).read_text(encoding="utf-8"))["files"])
            self.stdout.write(f"OK: {count} 個のファイルがマニフェストと一致しました。")
            return
        if path.exists() and any(path.iterdir()):
            raise CommandError(f"{path} は空ではありません。新しいフォルダを指定してください。")
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        head = AuditChainHead.objects.filter(id=1).first()
        database = self._dump_database(path)
        for name, root in file_roots().items():
            if root.is_dir():
                shutil.copytree(root, path / "files" / name, symlinks=False,
                                ignore=shutil.ignore_patterns("*.tmp", ".tmp-*"))
        files = {}
        for file in walk(path):
            rel = file.relative_to(path).as_posix()
            files[rel] = {"sha256": sha256_file(file), "size": file.stat().st_size}
        manifest = {
            "format": FORMAT_VERSION,
            "created_at": timezone.now().isoformat(),
            "database": database,
            # The chain head at the start of the dump: a restore must verify at least this far.
            "audit_last_seq": head.last_seq if head else 0,
            "audit_last_hash": head.last_hash if head else "",
            "roots": {name: str(root) for name, root in file_roots().items()},
            "files": files,
        }
        (path / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        self.stdout.write(f"OK: {path} に {len(files)} 個のファイルをバックアップしました"
                          f"（監査ログ 連番 {manifest['audit_last_seq']} まで）。")

    def _dump_database(self, path: Path) -> dict[str, Any]:
        db = connection.settings_dict
        if connection.vendor == "postgresql":
            out = path / "database.dump"
            # Custom format: compressed, restorable table by table; one snapshot, so consistent.
            result = subprocess.run(  # noqa: S603
                ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={out}",  # noqa: S607
                 f"--dbname={db['NAME']}"],
                env=pg_env(db), capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise CommandError(f"pg_dump に失敗しました: {result.stderr.strip()}")
            return {"vendor": "postgresql", "file": out.name, "name": str(db["NAME"])}
        if connection.vendor == "sqlite":
            out = path / "database.sqlite3"
            source = sqlite3.connect(str(db["NAME"]))
            target = sqlite3.connect(str(out))
            try:
                source.backup(target)  # SQLite's online backup: a consistent copy while others write
            finally:
                target.close()
                source.close()
            return {"vendor": "sqlite", "file": out.name, "name": str(db["NAME"])}
        raise CommandError(f"{connection.vendor} のバックアップには対応していません。")
