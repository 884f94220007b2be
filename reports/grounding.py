"""Numeric grounding of a physician's text: every save is checked against the same source data the
model's draft was checked against (carried on the revision), so a number typed in by hand is held
to the same rule as one the model wrote. Each flag has a stable key ("start:text") that the
physician confirms at sign-off."""

from __future__ import annotations

from typing import Any

from ml.grounding import check_grounding
from reports.models import ReportRevision


def sources_of(revision: ReportRevision) -> dict[str, str]:
    grounding = revision.grounding or {}
    if "sources" in grounding:
        return dict(grounding["sources"])
    # Drafts made before the sources were recorded: the reference data is the closest we have.
    return {str(k): str(v) for k, v in (revision.reference_data or {}).items()}


def check(text: str, parent: ReportRevision) -> dict[str, Any]:
    """The grounding record for `text`, checked against `parent`'s sources."""
    sources = sources_of(parent)
    issues = check_grounding(text, sources)
    return {"checked": True, "sources": sources, "issues": [
        {"text": i.mention.text, "unit": i.mention.unit, "start": i.mention.start, "end": i.mention.end,
         "reason": i.reason, "candidates": list(i.candidates)} for i in issues
    ]}


def issues_of(revision: ReportRevision) -> list[dict[str, Any]]:
    return list((revision.grounding or {}).get("issues") or [])


def issue_key(issue: dict[str, Any]) -> str:
    return f"{issue.get('start')}:{issue.get('text')}"
