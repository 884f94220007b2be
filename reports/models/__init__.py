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

__all__ = ["ImmutableRevision", "Priority", "ReauthMethod", "Report", "ReportQuality", "ReportRevision",
           "ReportStatus", "RevisionKind", "SignOff"]
