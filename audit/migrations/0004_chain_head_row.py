"""The chain head row is created here, once, so that each audit event locks it with one SELECT …
FOR UPDATE instead of first probing it with an INSERT … ON CONFLICT (an index lookup per event).

The head is one row updated by every event, so it leaves a dead version per event; PostgreSQL's
autovacuum (on by default) removes them. On a server with autovacuum off, lookups of the head slow
down as dead versions pile up (seen: ≈ 180 → ≈ 30 events per second after 100,000 events) until a
VACUUM; docs/configuration.md says to keep autovacuum on."""

from django.db import migrations


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    head = apps.get_model("audit", "AuditChainHead")
    head.objects.get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_review_keyset_indexes")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
