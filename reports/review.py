"""Everything the review screen shows for one report, gathered in one place so the page (GET) and
the form fallbacks that re-render it (a conflict, a refused amendment) show the same thing."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from clinical.scoping import facility_ids_for
from reports import corrections, grounding, presenting, reference, selectors
from reports.models import Report, ReportStatus

AUTOSAVE_MS = 5000
HISTORY_SHOWN = 50

# The letter is built beside this screen (reports/output_urls.py); its address is fixed by that issue.
LETTER_URL = "/reports/{pk}/letter.pdf"


def _labels() -> dict[str, str]:
    """Messages the screen's script shows, translated here (the script holds no UI text)."""
    return {
        "revision": _("第{n}版"),
        "saving": _("保存しています…"),
        "saved": _("第{n}版として保存しました。"),
        "autosaved": _("第{n}版として自動保存しました。"),
        "unsaved": _("未保存の変更があります。"),
        "conflict": _("他の利用者が先に保存しました。両方の内容を確認してください。"),
        "failed": _("保存できませんでした。通信状態を確認してください。"),
        "flags_left": _("未確認の数値が {n} 件あります。修正するか、確認済みにしてください。"),
        "ready": _("署名できます。"),
        "signing": _("署名しています…"),
        "signed": _("署名しました。"),
        "no_flags": _("原データと一致しない数値はありません。"),
        "confirm": _("確認済み（この値で正しい）"),
        "compare": _("照合先"),
        "amend_flags": _("修正後の本文に原データと一致しない数値があります。確認してから再度送信してください。"),
    }


def review_context(user: Any, report: Report, **extra: Any) -> dict[str, Any]:
    revisions = selectors.revisions_of(report)
    head = revisions[-1]
    draft = next((r for r in revisions if r.author_model_version_id is not None), None)
    signoffs = selectors.signoffs_of(report)
    can_sign = report.facility_id in facility_ids_for(user, "sign_reports")
    signed = report.status in selectors.SIGNED
    editable = can_sign and not signed
    flags = presenting.issues(head)
    prev_id, next_id = selectors.worklist_neighbours(user, report)
    context: dict[str, Any] = {
        "report": report,
        "kind_label": presenting.kind_label(report.kind),
        "head": head,
        "draft": draft,
        "history": list(reversed(revisions))[:HISTORY_SHOWN],
        "revision_count": len(revisions),
        "signoffs": signoffs,
        "signoff": signoffs[-1] if signoffs else None,
        "amended": report.status == ReportStatus.AMENDED,
        "signed": signed,
        "can_sign": can_sign,
        "editable": editable,
        "amendable": can_sign and signed,
        "flags": flags,
        "segments": presenting.segments(head.text, flags),
        "changes": presenting.sentence_changes(draft, head),
        "head_author": presenting.author(head),
        "sources": grounding.sources_now(report, head),
        "correction": corrections.banner(report, head),
        "reference_data": head.reference_data or {},
        "inputs_summary": (head.inputs or {}).get("summary") or {},
        "prior": [{"report": r, "signoff": so, "kind_label": presenting.kind_label(r.kind)}
                  for r, so in selectors.prior_signed_reports(report)],
        "prev_id": prev_id,
        "next_id": next_id,
        "letter_url": LETTER_URL.format(pk=report.pk) if signed else "",
        "conflict": None,
        "amend": None,
    }
    if report.visit is not None:
        rows, judged = reference.visit_values(report.visit)
        context.update(values=rows, judged=judged, trends=reference.visit_trends(report.visit, rows))
    if report.study is not None:
        images, ecgs = reference.study_images(report.study)
        context.update(images=images, ecgs=ecgs)
    context["config"] = {
        "report": report.pk,
        "head": head.number,
        "editable": editable,
        "autosave_ms": AUTOSAVE_MS,
        "api": {name: reverse(f"reports_api_{name}", args=[report.pk])
                for name in ("report", "revisions", "sign", "amend")},
        "prev": reverse("reports_review", args=[prev_id]) if prev_id else None,
        "next": reverse("reports_review", args=[next_id]) if next_id else None,
        "labels": _labels(),
    }
    context.update(extra)
    return context
