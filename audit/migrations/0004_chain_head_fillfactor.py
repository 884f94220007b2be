"""The chain head is one row updated by every audit event. Each update leaves a dead version; if
one does not fit beside the live row in its page, PostgreSQL moves the row to a new page and adds
an index entry, and without a VACUUM those entries pile up: every later lookup of the head walks
them all (seen: 840 pages and writes slowing from ≈ 180 to ≈ 30 per second after 100,000 events on
a server with autovacuum off). With fillfactor 10 the page is pruned on almost every access, so
every update stays a HOT update in the same page: the table stays one page, vacuum or not. The
row is also created here, once, instead of an INSERT … ON CONFLICT probe per event."""

from django.db import migrations


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE audit_auditchainhead SET (fillfactor = 10)")
    head = apps.get_model("audit", "AuditChainHead")
    head.objects.get_or_create(id=1)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE audit_auditchainhead RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_review_keyset_indexes")]
    operations = [migrations.RunPython(forward, backward)]
