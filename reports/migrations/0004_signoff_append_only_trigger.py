"""Sign-offs are evidence like revisions: the database refuses UPDATE and DELETE of them."""

from django.db import migrations

from audit.immutable import refuse_changes


class Migration(migrations.Migration):
    dependencies = [("reports", "0003_signoff_quality")]
    operations = [refuse_changes("reports_signoff", "reports_signoff_immutable", "immutable")]
