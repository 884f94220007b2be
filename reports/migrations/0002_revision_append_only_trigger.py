"""On PostgreSQL the database refuses UPDATE and DELETE of report revisions (as for audit events):
a revision, once written, is evidence of what the model or physician wrote."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION reports_revision_immutable() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'reports_reportrevision is immutable: %% refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reports_revision_no_update BEFORE UPDATE ON reports_reportrevision
  FOR EACH ROW EXECUTE FUNCTION reports_revision_immutable();
CREATE TRIGGER reports_revision_no_delete BEFORE DELETE ON reports_reportrevision
  FOR EACH ROW EXECUTE FUNCTION reports_revision_immutable();
"""

REVERSE = """
DROP TRIGGER IF EXISTS reports_revision_no_update ON reports_reportrevision;
DROP TRIGGER IF EXISTS reports_revision_no_delete ON reports_reportrevision;
DROP FUNCTION IF EXISTS reports_revision_immutable();
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def reverse(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERSE)


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]
    operations = [migrations.RunPython(forward, reverse)]
