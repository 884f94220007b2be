"""Writes of reports: a model draft becomes revision 1; physicians save revisions (never a lost
update), sign with re-authentication, and amend signed reports with a reason and a new signature.
Every write is audited in its own transaction; live updates go out on commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.models import ScreeningResult, User
from clinical.scoping import facility_ids_for, role_at
from inference.models import InferenceJob
from reports import corrections
from reports import grounding as report_grounding
from reports.canonical import CANONICAL_VERSION, canonical_content, content_sha256
from reports.models import (
    Priority,
    Report,
    ReportRevision,
    ReportStatus,
    RevisionKind,
    SignOff,
)
from reports.quality import quality_record
from reports.reauth import ReauthFailed, reauthenticate

MAX_TEXT = 20_000


class ReportRefused(Exception):
    """A write the user asked for and may not have, with the reason shown to them."""

    code = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotPermitted(ReportRefused):
    code = "not_permitted"


class ReportLocked(ReportRefused):
    code = "locked"


class RevisionConflict(ReportRefused):
    """Someone saved a newer revision since this editor loaded `base_number`: nothing was written;
    the caller shows both versions."""

    code = "conflict"

    def __init__(self, *, current: ReportRevision, yours: str) -> None:
        super().__init__(_("他の利用者が先に保存しました（第%(n)d版）。両方の内容を確認してから保存し直してください。")
                         % {"n": current.number})
        self.current = current
        self.yours = yours


class SignRefused(ReportRefused):
    code = "sign_refused"

    def __init__(self, message: str, *, unconfirmed: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.unconfirmed = list(unconfirmed)


class SourcesChanged(SignRefused):
    """The visit's values were corrected after the revision to be signed was written: the physician
    saves once more (checked against the corrected values) before signing."""

    code = "sources_changed"


# --- drafts from the model --------------------------------------------------------------------------

def _priority(job: InferenceJob) -> int:
    findings = (job.findings or {}).get("findings") or []
    if any(isinstance(f, dict) and f.get("severity") == "severe" for f in findings):
        return Priority.CRITICAL
    if ((job.findings or {}).get("follow_up") or {}).get("needed"):
        return Priority.FOLLOW_UP
    if job.visit_id and ScreeningResult.objects.filter(visit_id=job.visit_id, follow_up=True).exists():
        return Priority.FOLLOW_UP
    return Priority.ROUTINE


def revision_create_from_draft(*, job: InferenceJob) -> ReportRevision | None:
    """Store a SUCCEEDED job's draft as the next revision of its report (the first for a new one).
    Runs inside the transaction that marks the job SUCCEEDED. Idempotent per job (the revision's
    unique `source_job`); a report already past DRAFT is left alone (a physician owns it now).

    A worker writes the drafts of a batch that ends together in one transaction (inference's group
    commit), so the statements here are paid once per draft on the path to the physicians' screens:
    no savepoint of its own (an error rolls the job's whole final write back, and the worker writes
    it again alone), a new report gets its priority as it is inserted and holds no revision yet, an
    existing one is asked for its last number and this job's revision in one statement (13
    statements per draft before, 8 now for a new report)."""
    with transaction.atomic(savepoint=False):
        lookup: dict[str, Any] = {"visit_id": job.visit_id} if job.visit_id else {"study_id": job.study_id}
        priority = _priority(job)
        # get_or_create keeps its own savepoint around the INSERT: a second model's draft of the same
        # visit may create the report at the same moment, and then this one takes the row.
        report, created = Report.objects.select_for_update().get_or_create(
            kind=job.task, **lookup,
            defaults={"facility_id": job.facility_id, "patient_id": job.patient_id, "priority": priority})
        number = 1
        if not created:
            held = report.revisions.aggregate(n=Max("number"), mine=Max("pk", filter=Q(source_job=job)))
            if held["mine"] is not None:
                return ReportRevision.objects.get(pk=held["mine"])
            if report.status != ReportStatus.DRAFT:
                return None
            number = (held["n"] or 0) + 1
        mv = job.model_version
        revision = ReportRevision.objects.create(
            report=report, number=number, kind=RevisionKind.DRAFT, text=job.report_text, findings=job.findings,
            reference_data=job.reference_data, grounding=job.grounding, inputs=job.inputs,
            prompt_version=job.prompt_version, author_model_version=mv,
            author_model_label=f"{mv.name} {mv.version} ({mv.engine})", source_job=job,
        )
        if priority != report.priority:
            Report.objects.filter(pk=report.pk).update(priority=priority)
        audit_record(kind=EventKind.CREATE, facility_id=job.facility_id, object_type="reports.reportrevision",
                     object_id=revision.pk, patient_id=job.patient_id,
                     details={"report": report.pk, "number": number, "job": job.pk, "model": str(mv),
                              "grounding_issues": len((job.grounding or {}).get("issues", []))})
        _flag_if_sources_moved(job)
    return revision


def _flag_if_sources_moved(job: InferenceJob) -> None:
    """A correction import that committed while this job was generating left the draft written
    against the old values (its visits_corrected came before the report existed). Compare the
    sources the draft was checked against with the visit's now; if they differ, the report is
    flagged exactly as a correction after drafting would flag it."""
    from reports.corrections import reports_mark_corrected, visit_sources_now

    drafted = (job.grounding or {}).get("sources")
    if job.visit_id is None or drafted is None:
        return
    now = visit_sources_now({job.visit_id}).get(job.visit_id, {})
    if now == drafted:
        return
    changes = {key: [drafted.get(key, "—"), now.get(key, "—")] for key in sorted(set(drafted) | set(now))
               if drafted.get(key) != now.get(key) and not key.startswith("判定理由")}
    reports_mark_corrected(visit_ids=[job.visit_id], changes={job.visit_id: changes})


# --- physicians' revisions --------------------------------------------------------------------------

def _require_physician(actor: User, report: Report) -> None:
    if report.facility_id not in facility_ids_for(actor, "sign_reports"):
        raise NotPermitted(_("この施設の医師だけが所見を編集・署名できます。"))


def _head(report: Report) -> ReportRevision:
    head = report.revisions.order_by("-number").first()
    if head is None:
        raise ReportRefused(_("この所見にはまだ版がありません。"))
    return head


def _clean_text(text: str) -> str:
    text = (text or "").replace("\r\n", "\n").strip()
    if not text:
        raise ReportRefused(_("本文が空です。所見を入力してください。"))
    if len(text) > MAX_TEXT:
        raise ReportRefused(_("本文が長すぎます（%(n)d文字まで）。") % {"n": MAX_TEXT})
    return text


def _append(*, report: Report, head: ReportRevision, actor: User, text: str, kind: str,
            findings: Any = None, reason: str = "") -> ReportRevision:
    return ReportRevision.objects.create(
        report=report, number=head.number + 1, kind=kind, parent=head, text=text,
        findings=head.findings if findings is None else findings, reference_data=head.reference_data,
        grounding=report_grounding.check(text, head), inputs=head.inputs, prompt_version=head.prompt_version,
        author_user=actor, amendment_reason=reason,
    )


def revision_save(*, report: Report, actor: User, text: str, base_number: int, autosave: bool = False,
                  findings: Any = None) -> ReportRevision:
    """Save the physician's text as a new revision on top of `base_number`, the revision their
    editor was showing. If someone saved since, raise RevisionConflict and write nothing. Saving
    the same text again is a no-op that returns the head (autosave calls this every few seconds)."""
    _require_physician(actor, report)
    text = _clean_text(text)
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report.pk)
        if report.status in (ReportStatus.SIGNED, ReportStatus.AMENDED):
            raise ReportLocked(
                _("署名済みの所見は編集できません。修正する場合は「署名後の修正」から理由を添えてください。"))
        head = _head(report)
        if head.number != base_number:
            raise RevisionConflict(current=head, yours=text)
        # The same text again is a new revision after a correction: saving is how the physician
        # re-checks it against the corrected values, and what lets them sign it.
        if head.text == text and findings is None and not corrections.unsaved_correction(report, head):
            return head
        revision = _append(report=report, head=head, actor=actor, text=text, findings=findings,
                           kind=RevisionKind.AUTOSAVE if autosave else RevisionKind.EDIT)
        updates: dict[str, Any] = {"updated_at": timezone.now()}
        if report.status == ReportStatus.DRAFT:
            updates["status"] = ReportStatus.IN_REVIEW
        if report.assigned_physician_id is None:
            updates["assigned_physician"] = actor
        Report.objects.filter(pk=report.pk).update(**updates)
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, report.facility_id),
                     facility_id=report.facility_id, object_type="reports.reportrevision", object_id=revision.pk,
                     patient_id=report.patient_id,
                     details={"report": report.pk, "number": revision.number, "kind": revision.kind,
                              "grounding_issues": len(revision.grounding.get("issues", []))})
        report_announce(report)
    return revision


# --- sign-off and amendments -----------------------------------------------------------------------

def _status_now(report: Report) -> str:
    # The caller's object may be stale; checked again under the row lock before writing.
    return str(Report.objects.filter(pk=report.pk).values_list("status", flat=True).get())


def _reauth_or_refuse(*, actor: User, report: Report, method: str, credential: str) -> None:
    try:
        reauthenticate(user=actor, method=method, credential=credential)
    except ReauthFailed as exc:
        # Its own transaction: the failed attempt stays on record even though nothing is signed.
        audit_record(kind=EventKind.SIGN, outcome=Outcome.FAILURE, user=actor,
                     role=role_at(actor, report.facility_id), facility_id=report.facility_id,
                     object_type="reports.report", object_id=report.pk, patient_id=report.patient_id,
                     details={"reason": exc.code, "method": method})
        raise SignRefused(exc.message) from None


def _unconfirmed(revision: ReportRevision, confirmed: set[str]) -> list[dict[str, Any]]:
    return [issue for issue in report_grounding.issues_of(revision)
            if report_grounding.issue_key(issue) not in confirmed]


def _sign(*, report: Report, revision: ReportRevision, actor: User, method: str, confirmed: set[str],
          amends: SignOff | None = None, reason: str = "") -> SignOff:
    if corrections.unsaved_correction(report, revision):
        raise SourcesChanged(corrections.sign_refusal_message(report))
    missing = _unconfirmed(revision, confirmed)
    if missing:
        message = _("原データと一致しない数値があります。修正するか、確認済みにしてから署名してください: %(list)s")
        raise SignRefused(message % {"list": "、".join(i["text"] for i in missing)}, unconfirmed=missing)
    valid = {report_grounding.issue_key(i) for i in report_grounding.issues_of(revision)}
    kept = sorted(confirmed & valid)
    signed_at = timezone.now()
    content = canonical_content(report=report, revision=revision, physician_username=actor.get_username(),
                                signed_at=signed_at, method=method, confirmed=kept,
                                amends_sha256=amends.content_sha256 if amends else "", reason=reason)
    signoff = SignOff.objects.create(
        report=report, revision=revision, physician=actor, signed_at=signed_at, method=method,
        confirmed_numbers=kept, amends=amends, reason=reason, canonical_version=CANONICAL_VERSION,
        content_sha256=content_sha256(content),
    )
    quality_record(signoff=signoff)
    status = ReportStatus.AMENDED if amends else ReportStatus.SIGNED
    Report.objects.filter(pk=report.pk).update(status=status, signed_at=signed_at, updated_at=signed_at)
    audit_record(kind=EventKind.SIGN, user=actor, role=role_at(actor, report.facility_id),
                 facility_id=report.facility_id, object_type="reports.report", object_id=report.pk,
                 patient_id=report.patient_id,
                 details={"revision": revision.number, "sha256": signoff.content_sha256, "method": method,
                          "confirmed_numbers": len(kept), "amendment": amends is not None})
    report_announce(report)
    return signoff


def report_sign(*, report: Report, actor: User, revision_number: int, method: str, credential: str,
                confirmed: Iterable[str] = ()) -> SignOff:
    """Sign the head revision (the one the physician was looking at, `revision_number`) after
    re-authenticating them. Every grounding flag in it must be corrected or confirmed."""
    _require_physician(actor, report)
    if _status_now(report) in (ReportStatus.SIGNED, ReportStatus.AMENDED):
        raise ReportLocked(_("この所見は署名済みです。"))
    _reauth_or_refuse(actor=actor, report=report, method=method, credential=credential)
    with transaction.atomic():
        report = Report.objects.select_for_update(of=("self",)).select_related("patient").get(pk=report.pk)
        if report.status in (ReportStatus.SIGNED, ReportStatus.AMENDED):
            raise ReportLocked(_("この所見は署名済みです。"))
        head = _head(report)
        if head.number != revision_number:
            raise RevisionConflict(current=head, yours="")
        return _sign(report=report, revision=head, actor=actor, method=method, confirmed=set(confirmed))


def report_amend(*, report: Report, actor: User, text: str, reason: str, method: str, credential: str,
                 confirmed: Iterable[str] = ()) -> SignOff:
    """Amend a signed report: a new revision with the reason, signed at once (re-authenticated).
    The earlier signature stays; the new one points at it."""
    _require_physician(actor, report)
    text = _clean_text(text)
    reason = (reason or "").strip()
    if not reason:
        raise ReportRefused(_("修正理由を入力してください。"))
    if _status_now(report) not in (ReportStatus.SIGNED, ReportStatus.AMENDED):
        raise ReportRefused(_("署名前の所見は通常の編集で直してください。"))
    _reauth_or_refuse(actor=actor, report=report, method=method, credential=credential)
    with transaction.atomic():
        report = Report.objects.select_for_update(of=("self",)).select_related("patient").get(pk=report.pk)
        if report.status not in (ReportStatus.SIGNED, ReportStatus.AMENDED):
            raise ReportRefused(_("署名前の所見は通常の編集で直してください。"))
        head = _head(report)
        previous = SignOff.objects.filter(report=report).order_by("-signed_at").first()
        if previous is None or previous.revision_id != head.pk:
            raise ReportRefused(_("署名済みの版が見つかりません。"))
        # After a correction the physician may re-sign the same text: it is checked again against the
        # corrected values, and the new signature records that they looked.
        if head.text == text and not corrections.corrected_after_signing(report):
            raise ReportRefused(_("本文が変わっていません。修正内容を入力してください。"))
        revision = _append(report=report, head=head, actor=actor, text=text, kind=RevisionKind.AMENDMENT,
                           reason=reason)
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, report.facility_id),
                     facility_id=report.facility_id, object_type="reports.reportrevision", object_id=revision.pk,
                     patient_id=report.patient_id,
                     details={"report": report.pk, "number": revision.number, "kind": revision.kind,
                              "reason": reason})
        return _sign(report=report, revision=revision, actor=actor, method=method, confirmed=set(confirmed),
                     amends=previous, reason=reason)


def report_announce(report: Report) -> None:
    """Tell the facility's worklists that this report changed (after commit)."""
    from inference.broadcasting import broadcast_on_commit
    from inference.events import worklist_group

    broadcast_on_commit(worklist_group(report.facility_id), {
        "type": "worklist.report", "report": report.pk, "url": f"/reports/{report.pk}/",
    })
