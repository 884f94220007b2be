"""How a report is shown to a reader: the grounding flags with their keys and source values, the
text cut into plain and highlighted pieces, and the model's draft against the physician's text
sentence by sentence. Pure functions over revisions; the HTML view and the API share them so the
screen and the JSON never disagree about what is flagged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from ml.textdiff import sentence_diff
from reports import grounding
from reports.models import ReportRevision

KIND_LABELS = {
    "checkup_summary": _("総合所見"),
    "cxr": _("胸部X線"),
    "ecg": _("心電図"),
    "fundus": _("眼底"),
    "ct": _("CT"),
}

CHANGE_LABELS = {
    "kept": _("AIのまま"),
    "edited": _("医師が変更"),
    "deleted": _("医師が削除"),
    "added": _("医師が追加"),
}


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def author(revision: ReportRevision) -> str:
    """Who wrote a revision: the physician's name, or the model as it was labelled then."""
    if revision.author_user_id is not None and revision.author_user is not None:
        user = revision.author_user
        return str(getattr(user, "display_name", "") or user.get_username())
    return revision.author_model_label


def issues(revision: ReportRevision) -> list[dict[str, Any]]:
    """The revision's flagged numbers, each with the key the physician confirms at sign-off and the
    source values it should be compared with ("HbA1c" → "6.8 %")."""
    return describe(grounding.issues_of(revision), grounding.sources_of(revision))


def describe(raw: list[dict[str, Any]], sources: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for issue in raw:
        candidates = [str(c) for c in issue.get("candidates") or []]
        out.append({
            "key": grounding.issue_key(issue),
            "text": str(issue.get("text", "")),
            "unit": str(issue.get("unit") or ""),
            "start": int(issue.get("start") or 0),
            "end": int(issue.get("end") or 0),
            "reason": str(issue.get("reason", "")),
            "candidates": candidates,
            "sources": [{"name": c, "value": str(sources.get(c, ""))} for c in candidates],
        })
    return out


@dataclass(frozen=True)
class Segment:
    text: str
    flag: dict[str, Any] | None = None  # the issue this piece of text is, or None for plain text


def segments(text: str, flags: list[dict[str, Any]]) -> list[Segment]:
    """`text` cut at the flagged spans. The template escapes every piece, so highlighting never
    needs `|safe` on text a model or a person wrote. Overlapping or out-of-range spans are skipped."""
    out: list[Segment] = []
    at = 0
    for flag in sorted(flags, key=lambda f: (f["start"], f["end"])):
        start, end = flag["start"], flag["end"]
        if start < at or end <= start or end > len(text):
            continue
        if start > at:
            out.append(Segment(text[at:start]))
        out.append(Segment(text[start:end], flag))
        at = end
    if at < len(text):
        out.append(Segment(text[at:]))
    return out


def sentence_changes(draft: ReportRevision | None, head: ReportRevision) -> list[dict[str, str]]:
    """What the model wrote against what the head revision says, in reading order."""
    if draft is None or draft.pk == head.pk:
        return []
    return [{"status": c.status, "status_label": str(CHANGE_LABELS[c.status]), "before": c.before, "after": c.after}
            for c in sentence_diff(draft.text, head.text)]
