"""Numeric grounding of a physician's text: every save is checked against the same source data the
model's draft was checked against (carried on the revision), so a number typed in by hand is held
to the same rule as one the model wrote. Each flag has a stable key ("start:text") that the
physician confirms at sign-off.

Once an import has corrected the report's visit, the report's `current_sources` (the visit's
sources after the last correction) win over whatever a revision carries, whichever revision is the
parent: a non-empty `current_sources` is always at least as new as any revision's sources (a draft
finished after the correction was prepared from the same or older rows), so comparing timestamps
would only add a way to check against stale values."""

from __future__ import annotations

from typing import Any

from ml.grounding import grounding_record
from reports.models import Report, ReportRevision


def sources_of(revision: ReportRevision) -> dict[str, str]:
    grounding = revision.grounding or {}
    if "sources" in grounding:
        return dict(grounding["sources"])
    # Drafts made before the sources were recorded: the reference data is the closest we have.
    return {str(k): str(v) for k, v in (revision.reference_data or {}).items()}


def sources_now(report: Report, revision: ReportRevision) -> dict[str, str]:
    """What text saved on top of `revision` is checked against: the corrected sources if the visit
    was corrected, else the revision's own."""
    if report.current_sources:
        return {str(k): str(v) for k, v in report.current_sources.items()}
    return sources_of(revision)


def check(text: str, parent: ReportRevision) -> dict[str, Any]:
    """The grounding record for `text`, checked against `parent`'s sources, or its report's
    corrected sources (`parent.report` is the caller's locked row: read, not fetched again)."""
    return grounding_record(text, sources_now(parent.report, parent))


def issues_of(revision: ReportRevision) -> list[dict[str, Any]]:
    return list((revision.grounding or {}).get("issues") or [])


def issue_key(issue: dict[str, Any]) -> str:
    return f"{issue.get('start')}:{issue.get('text')}"
