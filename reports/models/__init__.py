from reports.models.print_batch import PrintBatch, PrintStatus
from reports.models.quality import ReportQuality
from reports.models.report import (
    ImmutableRevision,
    Priority,
    Report,
    ReportRevision,
    ReportStatus,
    RevisionKind,
)
from reports.models.signoff import ReauthMethod, SignOff

__all__ = ["ImmutableRevision", "PrintBatch", "PrintStatus", "Priority", "ReauthMethod", "Report", "ReportQuality",
           "ReportRevision", "ReportStatus", "RevisionKind", "SignOff"]
