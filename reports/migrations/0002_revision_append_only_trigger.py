"""On PostgreSQL the database refuses UPDATE and DELETE of report revisions (as for audit events):
a revision, once written, is evidence of what the model or physician wrote."""

from django.db import migrations

from audit.immutable import refuse_changes


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial"), ("audit", "0002_append_only_trigger")]
    operations = [refuse_changes("reports_reportrevision", "reports_revision_immutable", "immutable")]
