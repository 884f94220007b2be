"""An index for the audit review's keyset pages (ORDER BY seq DESC LIMIT n) filtered by user.

Measured at 2,000,000 events (docs/security.md): filtered by a user with no events in the
reviewer's facilities, PostgreSQL walked the seq index backwards through the whole table (1.1 s);
with (user_id, seq) it reads just that user's rows, newest first (6 ms). A (kind, seq) index was
tried and left out: the planner kept the seq index for kind filters, so it would only cost writes.

Created with raw SQL, outside the model state, because audit/models.py belongs to the chain's
owners; CONCURRENTLY on PostgreSQL so building them on a large live log never blocks audit writes
(which would block every request)."""

from django.db import migrations

INDEXES = {
    "audit_user_seq": "(user_id, seq)",
}


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name, columns in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX {concurrently}IF NOT EXISTS {name} ON audit_auditevent {columns}")


def reverse(apps, schema_editor):  # type: ignore[no-untyped-def]
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction
    dependencies = [("audit", "0002_append_only_trigger")]
    operations = [migrations.RunPython(forward, reverse)]
