"""Reports whose visit was corrected by a later import (clinical.signals.visits_corrected).

A report's text was written — by the model, then by the physician — against the values the visit
had then. When an import corrects them, the report keeps working but can no longer be trusted:
- unsigned: every save is checked against the corrected sources (reports/grounding.py), and the
  head revision may not be signed until the physician has saved once after the correction;
- signed: the letter and FHIR export refuse (409) until an amendment is signed after it.
This module records the correction on the report (the write) and answers those questions (reads of
fields already on the row: no query, so the worklist can ask them of every row)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.intake.items import BY_KEY
from clinical.models import Observation, ScreeningResult
from clinical.scoping import role_at
from inference.inputs import sources_from
from reports.models import Report, ReportRevision, ReportStatus

SIGNED = (ReportStatus.SIGNED, ReportStatus.AMENDED)
Changes = dict[str, list[str]]  # item → [before, after], as the import shows values ("6.8", "True")


def reports_mark_corrected(*, visit_ids: list[int], changes: dict[int, Changes], actor: Any = None) -> list[Report]:
    """Record on every report of `visit_ids` that its source values changed: when, what (merged over
    earlier corrections), and the visit's sources now. Audited per report, in the caller's
    transaction (the import's): a file that fails flags nothing. Worklists hear of it on commit."""
    with transaction.atomic():
        # Locked: a sign-off running now either commits before this (and is then flagged as signed
        # before the correction) or waits and sees the new fields.
        reports = list(Report.objects.select_for_update().filter(visit_id__in=visit_ids).order_by("id"))
        if not reports:
            return []
        sources = visit_sources_now({r.visit_id for r in reports if r.visit_id is not None})
        now = timezone.now()
        roles: dict[int, str] = {}
        for report in reports:
            assert report.visit_id is not None
            change = changes.get(report.visit_id) or {}
            report.source_changes = merge_changes(report.source_changes or {}, change)
            report.source_changed_at = now
            report.current_sources = sources.get(report.visit_id, {})
            report.updated_at = now
            if report.facility_id not in roles:
                roles[report.facility_id] = role_at(actor, report.facility_id)
            audit_record(kind=EventKind.UPDATE, user=actor, role=roles[report.facility_id],
                         facility_id=report.facility_id, object_type="reports.report", object_id=report.pk,
                         patient_id=report.patient_id,
                         details={"reason": "source_corrected", "visit": report.visit_id, "changed": change,
                                  "status": report.status})
        Report.objects.bulk_update(reports, ["source_changes", "source_changed_at", "current_sources", "updated_at"])
        from reports.services import report_announce  # services asks this module its questions

        for report in reports:
            report_announce(report)
    return reports


def visit_sources_now(visit_ids: set[int]) -> dict[int, dict[str, str]]:
    """Each visit's grounding sources after the correction, in two queries whatever the number."""
    observations: dict[int, list[Observation]] = defaultdict(list)
    for obs in Observation.objects.filter(visit_id__in=visit_ids).order_by("visit_id", "id"):
        observations[obs.visit_id].append(obs)
    screenings: dict[int, list[ScreeningResult]] = defaultdict(list)
    for sr in ScreeningResult.objects.filter(visit_id__in=visit_ids).order_by("visit_id", "ruleset"):
        screenings[sr.visit_id].append(sr)
    return {vid: sources_from(observations[vid], screenings[vid]) for vid in visit_ids}


def merge_changes(earlier: Changes, later: Changes) -> Changes:
    """Keep the first "before" (what the report's text was first written against) and the latest
    "after"; an item corrected back to where it started is no longer a change."""
    merged = {k: list(v) for k, v in earlier.items()}
    for item, (before, after) in later.items():
        first = merged[item][0] if item in merged else before
        if first == after:
            merged.pop(item, None)
        else:
            merged[item] = [first, after]
    return merged


# --- questions asked of a report (fields on the row only) ---------------------------------------

def unsaved_correction(report: Report, revision: ReportRevision) -> bool:
    """`revision` was written before the last correction: signing it would sign the old values."""
    return report.source_changed_at is not None and report.source_changed_at > revision.created_at


def corrected_after_signing(report: Report) -> bool:
    """A signed report whose values changed after its latest signature (`Report.signed_at` moves
    with every amendment): its outputs wait for an amendment."""
    return (report.status in SIGNED and report.source_changed_at is not None and report.signed_at is not None
            and report.source_changed_at > report.signed_at)


def _shown(item: str, value: str) -> str:
    if item == "fasting":
        return {"True": _("空腹"), "False": _("非空腹")}.get(value, _("不明"))
    return value


def change_rows(report: Report) -> list[dict[str, str]]:
    """[{"label", "before", "after", "unit"}] in item order, for the banner."""
    rows = []
    order = {key: i for i, key in enumerate(BY_KEY)}
    for item, (before, after) in sorted((report.source_changes or {}).items(),
                                        key=lambda kv: order.get(kv[0], len(order))):
        known = BY_KEY.get(item)
        label = _("空腹時採血") if item == "fasting" else (known.label if known else item)
        rows.append({"label": label, "before": _shown(item, before), "after": _shown(item, after),
                     "unit": known.unit if known and item != "fasting" else ""})
    return rows


def changes_text(report: Report) -> str:
    """"HbA1c 6.8 → 7.1、収縮期血圧 152 → 148" for messages."""
    return "、".join(f"{r['label']} {r['before']} → {r['after']}" for r in change_rows(report))


def sign_refusal_message(report: Report) -> str:
    listed = changes_text(report)
    if listed:
        return _("元データが訂正されました（%(changes)s）。数値を確認して保存し直してから署名してください。") % {
            "changes": listed}
    return _("元データが訂正されました。数値を確認して保存し直してから署名してください。")


def output_refusal_message(report: Report) -> str:
    listed = changes_text(report)
    message = _("署名後に元データが訂正されました。署名後の修正が必要です。")
    if listed:
        message += _("訂正された項目: %(changes)s。") % {"changes": listed}
    return message + _("訂正後の値で所見を確認し、「署名後の修正」で署名し直すと結果報告書と FHIR 出力を作成できます。")


def banner(report: Report, head: ReportRevision) -> dict[str, Any] | None:
    """What the review screen says about a correction, or None if there was none."""
    at: datetime | None = report.source_changed_at
    if at is None:
        return None
    if corrected_after_signing(report):
        state = "amend"
        action = _("署名後に元データが訂正されました。署名後の修正が必要です（結果報告書と FHIR 出力は止めています）。")
    elif report.status not in SIGNED and unsaved_correction(report, head):
        state, action = "save", _("数値を確認して保存し直してから署名してください。")
    else:
        state, action = "done", _("訂正後の値で確認済みです。")
    return {"rows": change_rows(report), "at": at, "state": state, "action": action}
