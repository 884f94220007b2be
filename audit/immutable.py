"""A PostgreSQL trigger that refuses UPDATE and DELETE on a table: used for the audit log and for
report revisions (evidence of what was written). Migrations call `refuse_changes(table, name)`;
SQLite has no such guarantee, and there tampering is detected by the verify commands."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def refuse_changes(table: str, name: str, what: str) -> migrations.RunPython:
    """A migration operation installing (and, reversed, removing) the trigger on `table`."""
    forward_sql = f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '{table} is {what}: %% refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER {name}_no_update BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();
CREATE TRIGGER {name}_no_delete BEFORE DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();
"""
    reverse_sql = f"""
DROP TRIGGER IF EXISTS {name}_no_update ON {table};
DROP TRIGGER IF EXISTS {name}_no_delete ON {table};
DROP FUNCTION IF EXISTS {name}();
"""

    def forward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(forward_sql)

    def reverse(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(reverse_sql)

    return migrations.RunPython(forward, reverse)
