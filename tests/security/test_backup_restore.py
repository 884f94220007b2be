"""Backup and restore: the database, the DICOM store and uploads, a SHA-256 manifest; a damaged
backup is refused; a restore into a fresh database has the same rows and an intact audit chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.kinds import EventKind
from audit.services import audit_record
from tests.conftest import Personas
from tests.factories import PatientFactory

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("audit_auditevent", "audit_auditchainhead", "clinical_user", "clinical_facility", "clinical_patient",
          "clinical_membership", "guardian_userobjectpermission")


def _conninfo(name: str) -> str:
    db = connection.settings_dict
    parts = [f"dbname={name}"] + [f"{k}={db[K]}" for k, K in (("host", "HOST"), ("port", "PORT"),
                                                                 ("user", "USER"), ("password", "PASSWORD"))
                                   if db.get(K)]
    return " ".join(parts)


def _counts(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        # Table names from the constant above, never from input.
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]  # noqa: S608
                for t in TABLES}


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"medlmm_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def live_files(tmp_path: Path, settings: Any) -> dict[str, Path]:
    settings.VAR_DIR = tmp_path / "var"
    settings.DICOM_STORE_ROOT = str(tmp_path / "dicom-store")
    dicom = Path(settings.DICOM_STORE_ROOT) / "ab"
    dicom.mkdir(parents=True)
    (dicom / "abcdef").write_bytes(b"DICM" * 100)
    uploads = settings.VAR_DIR / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "checkup.csv").write_text("受診者番号,受診日\n", encoding="utf-8")
    return {"dicom": dicom.parent, "uploads": uploads}


def _data(personas: Personas) -> None:
    for i in range(5):
        patient = PatientFactory.create(facility=personas.facility_a)
        audit_record(kind=EventKind.PHI_READ, facility_id=personas.facility_a.pk, object_type="clinical.patient",
                     object_id=patient.pk, patient_id=patient.pk, details={"i": i})


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_backup_then_restore_into_a_fresh_database(
    personas: Personas, live_files: dict[str, Path], tmp_path: Path, fresh_database: str
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump / pg_restore round trip")
    _data(personas)
    backup = tmp_path / "backup"
    call_command("backup", str(backup))
    manifest = json.loads((backup / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {"database.dump", "files/dicom/ab/abcdef", "files/uploads/checkup.csv"}
    assert manifest["audit_last_seq"] > 0 and manifest["database"]["vendor"] == "postgresql"
    call_command("backup", str(backup), "--verify")

    restored_files = tmp_path / "restored-files"
    call_command("restore", str(backup), "--yes", f"--database-url={_db_url(fresh_database)}",
                 f"--files-to={restored_files}")
    assert _counts(_conninfo(fresh_database)) == _counts(_conninfo(connection.settings_dict["NAME"]))
    assert (restored_files / "dicom" / "ab" / "abcdef").read_bytes() == b"DICM" * 100
    assert (restored_files / "uploads" / "checkup.csv").read_text(encoding="utf-8").startswith("受診者番号")

    # verify_chain() on the restored database, by the command an operator would run.
    env = {**os.environ, "DATABASE_URL": _db_url(fresh_database), "MEDLMM_VAR_DIR": str(tmp_path / "v")}
    result = subprocess.run([sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{manifest['audit_last_seq']} 件" in result.stdout


@pytest.mark.django_db
def test_a_damaged_backup_is_named_and_never_restored(
    personas: Personas, live_files: dict[str, Path], tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    call_command("backup", str(backup))
    (backup / "files" / "uploads" / "checkup.csv").write_text("改ざん", encoding="utf-8")
    (backup / "files" / "dicom" / "ab" / "extra").write_bytes(b"x")
    with pytest.raises(CommandError, match=r"内容が一致しません: files/uploads/checkup\.csv"):
        call_command("backup", str(backup), "--verify")
    with pytest.raises(CommandError, match="マニフェストにないファイル: files/dicom/ab/extra"):
        call_command("restore", str(backup), "--yes", "--database-url=sqlite:////nonexistent/x.sqlite3")


@pytest.mark.django_db
def test_backup_refuses_a_non_empty_folder_and_restore_wants_consent(
    personas: Personas, live_files: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(CommandError, match="空ではありません"):
        call_command("backup", str(tmp_path / "full"))
    call_command("backup", str(tmp_path / "ok"))
    with pytest.raises(CommandError, match="--yes"):
        call_command("restore", str(tmp_path / "ok"))


def _db_url(name: str) -> str:
    db = connection.settings_dict
    auth = db.get("USER") or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{name}"
