"""The audit log is append-only and hash-chained; audit_verify finds the first broken link."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit.kinds import EventKind
from audit.models import AppendOnlyError, AuditEvent
from audit.services import AuditEntry, audit_record, audit_record_many
from audit.verify import verify_chain
from tests.embedded import embedded_manage


def _three_events() -> list[AuditEvent]:
    return [audit_record(kind=EventKind.PHI_READ, object_type="t", object_id=i, details={"n": i}) for i in range(3)]


@pytest.mark.django_db
def test_it_chains_each_event_to_the_previous_one() -> None:
    first, second, third = _three_events()
    assert (first.seq, second.seq, third.seq) == (1, 2, 3)
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert verify_chain().ok and verify_chain().checked == 3


@pytest.mark.django_db
def test_a_batch_appends_the_same_chain_as_one_event_at_a_time_with_one_head_lock(
    django_assert_num_queries: Any,
) -> None:
    first = audit_record(kind=EventKind.CREATE, object_type="t", object_id=0)
    entries = [AuditEntry(kind=EventKind.CREATE, object_type="inference.inferencejob", object_id=i, facility_id=7,
                          details={"auto": True, "n": i}) for i in range(1, 51)]
    # lock the head; insert the 50 rows and move the head in one statement (no savepoint of its own)
    with django_assert_num_queries(2):
        batch = audit_record_many(entries)
    assert [e.seq for e in batch] == list(range(2, 52))
    assert batch[0].prev_hash == first.hash and all(b.prev_hash == a.hash for a, b in itertools.pairwise(batch))
    stored = AuditEvent.objects.get(seq=51)
    assert (stored.object_id, stored.details, stored.hash) == ("50", {"auto": True, "n": 50}, batch[-1].hash)
    after = audit_record(kind=EventKind.UPDATE, object_type="t", object_id=0)
    assert after.seq == 52 and after.prev_hash == batch[-1].hash
    assert verify_chain().ok and verify_chain().checked == 52
    assert audit_record_many([]) == []


@pytest.mark.django_db(transaction=True)
def test_a_change_whose_audit_event_cannot_be_written_does_not_commit_even_if_the_caller_goes_on() -> None:
    with transaction.atomic():
        first = audit_record(kind=EventKind.CREATE, object_type="t", object_id=1)
        try:
            audit_record(kind=EventKind.UPDATE, object_type="t", object_id="x" * 65)  # too long: the INSERT fails
        except DatabaseError:
            pass  # a caller that swallows the failure and would commit its change without the event
    # The append had no savepoint to roll back to: the whole transaction is gone, the change with it.
    assert not AuditEvent.objects.filter(seq=first.seq).exists()
    assert verify_chain().ok


@pytest.mark.django_db
def test_it_refuses_update_and_delete_through_the_orm() -> None:
    event = _three_events()[0]
    event.kind = "logout"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(kind="logout")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.django_db
@pytest.mark.parametrize("sql", ["UPDATE audit_auditevent SET username = 'x'", "DELETE FROM audit_auditevent"])
def test_it_refuses_raw_sql_update_and_delete_on_postgresql(sql: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL only")
    _three_events()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.count() == 3


def _tamper(sql: str, *params: str) -> None:
    """Simulate someone with superuser rights who disabled the trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "seq", "reason"),
    [
        ("UPDATE audit_auditevent SET username = 'mallory' WHERE seq = 2", 2, "改ざん"),
        ("DELETE FROM audit_auditevent WHERE seq = 2", 2, "欠落"),
        ("DELETE FROM audit_auditevent WHERE seq = 3", 3, "末尾"),
        ("UPDATE audit_auditevent SET seq = seq + 10 WHERE seq = 1", 1, "欠落"),
    ],
    ids=["edited", "deleted", "tail-cut", "moved"],
)
def test_audit_verify_names_the_first_broken_link(sql: str, seq: int, reason: str) -> None:
    _three_events()
    _tamper(sql)
    result = verify_chain()
    assert not result.ok and result.first_break is not None
    assert result.first_break.seq == seq and reason in result.first_break.reason
    with pytest.raises(CommandError, match=f"seq={seq}"):
        call_command("audit_verify")


@pytest.mark.django_db
def test_it_detects_two_rows_whose_contents_were_swapped() -> None:
    a, b, _c = _three_events()
    _tamper("UPDATE audit_auditevent SET details = %s WHERE seq = 1", '{"n": 1}')
    _tamper("UPDATE audit_auditevent SET details = %s WHERE seq = 2", '{"n": 0}')
    result = verify_chain()
    assert result.first_break is not None and result.first_break.seq == 1


@pytest.mark.slow
def test_audit_verify_on_sqlite_detects_an_edited_row(tmp_path: Path) -> None:
    """Embedded mode has no trigger: tampering must still be found, by the command, end to end."""
    manage = embedded_manage(tmp_path, timeout=120)
    assert manage("migrate", "-v0").returncode == 0
    assert manage("seed_demo").returncode == 0
    ok = manage("audit_verify")
    assert ok.returncode == 0, ok.stderr
    db = sqlite3.connect(tmp_path / "medlmm.sqlite3")
    db.execute("UPDATE audit_auditevent SET username = 'mallory' WHERE seq = 5")
    db.commit()
    db.close()
    broken = manage("audit_verify")
    assert broken.returncode != 0
    assert "seq=5" in broken.stderr and "改ざん" in broken.stderr
