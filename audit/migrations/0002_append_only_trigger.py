"""On PostgreSQL the database itself refuses UPDATE and DELETE of audit rows, so not even raw SQL
or a compromised ORM path can rewrite history. (SQLite has no such guarantee: there, tampering is
detected by `audit_verify`.) TRUNCATE is a privilege of the schema owner only; the application's
database role in production must not own the schema (docs/configuration.md)."""

from django.db import migrations

from audit.immutable import refuse_changes


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [refuse_changes("audit_auditevent", "audit_event", "append-only")]
