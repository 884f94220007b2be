"""Quality data stored at each sign-off: how far the signed text is from the model's draft."""

from __future__ import annotations

from ml.textdiff import edit_distance, sentence_diff, summarise
from reports.models import ReportQuality, ReportRevision, SignOff


def model_draft_of(revision: ReportRevision) -> ReportRevision | None:
    """The first model-written revision of the report, at or before `revision`."""
    return (ReportRevision.objects.filter(report_id=revision.report_id, author_model_version__isnull=False,
                                          number__lte=revision.number)
            .select_related("author_model_version").order_by("number").first())


def quality_record(*, signoff: SignOff) -> ReportQuality:
    revision = signoff.revision
    report = signoff.report
    draft = model_draft_of(revision)
    before = draft.text if draft else ""
    counts = summarise(sentence_diff(before, revision.text)) if draft else {
        "kept": 0, "edited": 0, "deleted": 0, "added": 0}
    return ReportQuality.objects.create(
        signoff=signoff, facility_id=report.facility_id,
        model_version_id=draft.author_model_version_id if draft else None, task=report.kind,
        signed_at=signoff.signed_at, is_amendment=signoff.amends_id is not None,
        draft_chars=len(before), final_chars=len(revision.text),
        edit_distance=edit_distance(before, revision.text) if draft else len(revision.text),
        sentences_kept=counts["kept"], sentences_edited=counts["edited"], sentences_deleted=counts["deleted"],
        sentences_added=counts["added"],
        grounding_warnings=len((draft.grounding or {}).get("issues") or []) if draft else 0,
        grounding_confirmed=len(signoff.confirmed_numbers or []),
        seconds_to_sign=(signoff.signed_at - draft.created_at).total_seconds() if draft else None,
        revisions=revision.number,
    )
