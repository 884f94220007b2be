"""Physicians save revisions (never a lost update), sign with re-authentication after every flagged
number is corrected or confirmed, and amend with a reason; the database and report_verify guard
what was signed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical import services as clinical_services
from clinical.models import Role
from reports import services
from reports.grounding import issue_key, issues_of
from reports.models import Report, ReportQuality, ReportRevision, ReportStatus, RevisionKind, SignOff
from tests.conftest import PASSWORD, Personas
from tests.reports.conftest import WRONG_DRAFT

pytestmark = pytest.mark.django_db


def _code(user: Any) -> str:
    device = TOTPDevice.objects.get(user=user)
    return f"{totp(device.bin_key, step=device.step, t0=device.t0):06d}"


def _head(report: Report) -> ReportRevision:
    return report.revisions.order_by("-number")[0]


def test_it_saves_each_edit_as_a_new_revision_by_the_physician(
        personas: Personas, draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report()
    revision = services.revision_save(report=report, actor=personas.physician_a, base_number=1,
                                      text=_head(report).text + "\n減塩を勧めます。")
    report.refresh_from_db()
    assert (revision.number, revision.kind, revision.author_user) == (2, RevisionKind.EDIT, personas.physician_a)
    assert revision.parent is not None and revision.parent.number == 1
    assert report.status == ReportStatus.IN_REVIEW and report.assigned_physician == personas.physician_a
    assert revision.grounding["sources"]["収縮期血圧"].startswith("152")
    event = audit_events(object_type="reports.reportrevision", object_id=str(revision.pk))[0]
    assert event.kind == "update" and event.user_id == personas.physician_a.pk and event.details["number"] == 2
    # The same text again (an autosave with nothing new) writes nothing.
    same = services.revision_save(report=report, actor=personas.physician_a, base_number=2, text=revision.text,
                                  autosave=True)
    assert same.pk == revision.pk and report.revisions.count() == 2


def test_it_refuses_the_second_of_two_concurrent_saves_and_keeps_both_texts(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    colleague = clinical_services.user_create(username="physician_a2", password=PASSWORD)
    clinical_services.membership_grant(user=colleague, facility=personas.facility_a, role=Role.PHYSICIAN)
    report = draft_report()
    services.revision_save(report=report, actor=personas.physician_a, base_number=1, text="第一の医師の所見。")
    with pytest.raises(services.RevisionConflict) as exc:
        services.revision_save(report=report, actor=colleague, base_number=1, text="第二の医師の所見。")
    assert exc.value.current.text == "第一の医師の所見。" and exc.value.yours == "第二の医師の所見。"
    assert "第2版" in exc.value.message
    assert list(report.revisions.values_list("number", flat=True)) == [1, 2]


@pytest.mark.parametrize("who", ["staff_a", "admin_a", "auditor_a", "physician_b"])
def test_it_lets_only_physicians_of_the_facility_edit_or_sign(
        personas: Personas, draft_report: Callable[..., Report], who: str) -> None:
    report = draft_report()
    user = getattr(personas, who)
    with pytest.raises(services.NotPermitted):
        services.revision_save(report=report, actor=user, base_number=1, text="書き換え")
    with pytest.raises(services.NotPermitted):
        services.report_sign(report=report, actor=user, revision_number=1, method="password", credential=PASSWORD)
    assert report.revisions.count() == 1 and not SignOff.objects.exists()


def test_it_refuses_to_sign_with_a_wrong_password_and_records_the_attempt(
        personas: Personas, draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report()
    with pytest.raises(services.SignRefused, match="パスワードが正しくありません"):
        services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                             credential="wrong-password")
    report.refresh_from_db()
    assert report.status == ReportStatus.DRAFT and not SignOff.objects.exists()
    failed = audit_events(kind="sign", outcome="failure")
    assert len(failed) == 1 and failed[0].details == {"reason": "invalid", "method": "password"}


def test_it_stops_accepting_reauthentication_after_five_failures(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    for _ in range(5):
        with pytest.raises(services.SignRefused):
            services.report_sign(report=report, actor=personas.physician_a, revision_number=1,
                                 method="password", credential="nope")
    with pytest.raises(services.SignRefused, match="15分間"):
        services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                             credential=PASSWORD)


def test_it_signs_with_a_totp_code_and_then_refuses_every_edit(
        personas: Personas, draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report()
    signoff = services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="totp",
                                   credential=_code(personas.physician_a))
    report.refresh_from_db()
    assert report.status == ReportStatus.SIGNED and report.signed_at == signoff.signed_at
    assert len(signoff.content_sha256) == 64 and signoff.revision.number == 1
    event = audit_events(kind="sign", outcome="success")[0]
    assert event.details["sha256"] == signoff.content_sha256 and event.patient_id == report.patient_id
    with pytest.raises(services.ReportLocked):
        services.revision_save(report=report, actor=personas.physician_a, base_number=1, text="後から変更")
    with pytest.raises(services.ReportLocked):
        services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                             credential=PASSWORD)


def test_it_refuses_to_sign_a_revision_other_than_the_one_on_screen(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    services.revision_save(report=report, actor=personas.physician_a, base_number=1, text="新しい所見。")
    with pytest.raises(services.RevisionConflict):
        services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                             credential=PASSWORD)
    assert not SignOff.objects.exists()


def test_it_holds_sign_off_until_a_flagged_number_is_corrected(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report(WRONG_DRAFT)
    draft = _head(report)
    assert [i["text"] for i in issues_of(draft)] == ["6.3"]
    with pytest.raises(services.SignRefused) as exc:
        services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                             credential=PASSWORD)
    assert "6.3" in exc.value.message and exc.value.unconfirmed[0]["text"] == "6.3"
    fixed = services.revision_save(report=report, actor=personas.physician_a, base_number=1,
                                   text=draft.text.replace("6.3", "6.8"))
    assert issues_of(fixed) == []
    signoff = services.report_sign(report=report, actor=personas.physician_a, revision_number=2,
                                   method="password", credential=PASSWORD)
    assert "6.8" in signoff.revision.text and signoff.confirmed_numbers == []


def test_it_signs_a_flagged_number_the_physician_confirmed(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report(WRONG_DRAFT)
    key = issue_key(issues_of(_head(report))[0])
    signoff = services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                                   credential=PASSWORD, confirmed=[key, "999:bogus"])
    assert signoff.confirmed_numbers == [key]  # only real flags are recorded
    assert ReportQuality.objects.get(signoff=signoff).grounding_confirmed == 1


def test_it_flags_a_number_the_physician_typed_that_is_not_in_the_data(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    revision = services.revision_save(report=report, actor=personas.physician_a, base_number=1,
                                      text=_head(report).text + "\nLDL 160 mg/dLも高値です。")
    assert [i["text"] for i in issues_of(revision)] == ["160"]


def test_it_amends_a_signed_report_with_a_reason_and_a_new_signature(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    first = services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                                 credential=PASSWORD)
    with pytest.raises(services.ReportRefused, match="修正理由"):
        services.report_amend(report=report, actor=personas.physician_a, text="修正後の所見。", reason=" ",
                              method="password", credential=PASSWORD)
    second = services.report_amend(report=report, actor=personas.physician_a, text="修正後の所見。",
                                   reason="血圧の再測定値を反映", method="password", credential=PASSWORD)
    report.refresh_from_db()
    assert report.status == ReportStatus.AMENDED
    assert second.amends == first and second.reason == "血圧の再測定値を反映"
    assert (second.revision.number, second.revision.kind, second.revision.amendment_reason) == (
        2, RevisionKind.AMENDMENT, "血圧の再測定値を反映")
    assert ReportQuality.objects.get(signoff=second).is_amendment


def test_it_stores_what_the_physician_changed_for_the_quality_dashboard(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    draft = _head(report)
    assert "受診勧奨判定値以上。" in draft.text
    edited = draft.text.replace("受診勧奨判定値以上。", "受診勧奨判定値以上です。") + "\n減塩を勧めます。"
    services.revision_save(report=report, actor=personas.physician_a, base_number=1, text=edited)
    signoff = services.report_sign(report=report, actor=personas.physician_a, revision_number=2,
                                   method="password", credential=PASSWORD)
    quality = ReportQuality.objects.get(signoff=signoff)
    assert quality.edit_distance == len("です") + len("\n減塩を勧めます。")
    assert (quality.sentences_edited, quality.sentences_added, quality.sentences_deleted) == (1, 1, 0)
    assert quality.sentences_kept >= 1 and quality.model_version_id == draft.author_model_version_id
    assert quality.seconds_to_sign is not None and quality.seconds_to_sign >= 0 and quality.revisions == 2
    assert not quality.signed_without_edits


def test_report_verify_passes_untouched_signatures_and_fails_on_an_altered_revision(
        personas: Personas, draft_report: Callable[..., Report], capsys: Any) -> None:
    report = draft_report()
    signoff = services.report_sign(report=report, actor=personas.physician_a, revision_number=1,
                                   method="password", credential=PASSWORD)
    call_command("report_verify")
    assert "OK: 1 件" in capsys.readouterr().out
    if connection.vendor != "postgresql":
        pytest.skip("the trigger-disabled tampering path needs PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending: ALTER TABLE needs that
        cursor.execute("ALTER TABLE reports_reportrevision DISABLE TRIGGER USER")
        cursor.execute("UPDATE reports_reportrevision SET text = replace(text, '152', '132') WHERE id = %s",
                       [signoff.revision_id])
        cursor.execute("ALTER TABLE reports_reportrevision ENABLE TRIGGER USER")
    with pytest.raises(CommandError, match="1 件の署名"):
        call_command("report_verify")
    assert f"署名 {signoff.pk}" in capsys.readouterr().err


def test_the_database_refuses_to_change_or_delete_a_sign_off(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL")
    report = draft_report()
    signoff = services.report_sign(report=report, actor=personas.physician_a, revision_number=1,
                                   method="password", credential=PASSWORD)
    for sql in ("UPDATE reports_signoff SET content_sha256 = 'x' WHERE id = %s",
                "DELETE FROM reports_signoff WHERE id = %s",
                "UPDATE reports_reportrevision SET text = 'x' WHERE id = %s"):
        with pytest.raises(DatabaseError, match="immutable"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [signoff.pk if "signoff" in sql else signoff.revision_id])
