"""The review screen: the draft beside the visit's values and trends (or the study's images), the
reference panel, flagged numbers highlighted with a box to confirm each, the sign dialog; read-only
once signed with the signature shown; amendments; who sees what; free text always shown escaped."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical import services as clinical_services
from clinical.dicom.models import Study
from clinical.models import CheckupVisit, Observation, Role
from inference import runner
from inference import services as inference_services
from inference.models import ModelVersion
from reports import services
from reports.grounding import issue_key, issues_of
from reports.models import Report, ReportRevision, ReportStatus, RevisionKind, SignOff
from tests.conftest import PASSWORD, Personas, login
from tests.reports.conftest import GOOD_DRAFT, WRONG_DRAFT

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"


def _page(client: Client, report: Report) -> str:
    response = client.get(f"/reports/{report.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _head(report: Report) -> ReportRevision:
    return report.revisions.order_by("-number")[0]


def test_the_physician_sees_the_flagged_number_highlighted_with_its_reason_and_a_box_to_confirm(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report(WRONG_DRAFT)
    html = _page(client_for("physician_a"), report)
    key = issue_key(issues_of(_head(report))[0])
    assert re.search(rf'<mark class="flag" data-key="{key}" title="[^"]+">6\.3 %</mark>', html)
    assert f'name="confirmed" value="{key}" form="sign-form"' in html
    assert re.search(r'id="sign-open" class="sign" disabled', html)  # held until the flag is dealt with
    assert 'id="report-text"' in html and "HbA1c = 6.8" in html
    event = audit_events(kind="phi_read", object_type="reports.report")[-1]
    assert event.object_id == str(report.pk) and event.patient_id == report.patient_id
    assert event.details["view"] == "review"


def test_a_draft_without_flags_can_be_signed_at_once(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    html = _page(client_for("physician_a"), draft_report(GOOD_DRAFT))
    assert re.search(r'id="sign-open" class="sign">', html) and "原データと一致しない数値はありません" in html


def test_the_visit_report_shows_the_judged_values_trends_and_reference_data(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    html = _page(client_for("physician_a"), draft_report())
    assert 'id="visit-values"' in html and "HbA1c" in html and "受診勧奨" in html
    assert '<svg class="trend"' in html  # clinical.charts
    assert 'id="reference-data"' in html
    assert 'id="review-config" type="application/json"' in html


@pytest.mark.parametrize("who", ["staff_a", "admin_a", "auditor_a"])
def test_others_of_the_facility_see_the_report_read_only(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], who: str) -> None:
    html = _page(client_for(who), draft_report(WRONG_DRAFT))
    assert "閲覧のみです" in html
    assert 'id="sign-open"' not in html and 'id="report-text"' not in html and 'name="confirmed"' not in html
    assert '<mark class="flag"' in html  # they still see what is flagged


def test_a_physician_of_another_facility_gets_404_and_the_attempt_is_recorded(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report()
    client = client_for("physician_b")
    assert client.get(f"/reports/{report.pk}/").status_code == 404
    assert client.post(f"/reports/{report.pk}/sign/", {"revision_number": 1, "method": "password",
                                                       "credential": PASSWORD}).status_code == 404
    assert audit_events(kind="access_denied", object_type="reports.report")[0].object_id == str(report.pk)


def test_script_and_html_in_the_text_are_shown_as_text(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    text = f"{XSS}\n<b>太字</b> 収縮期血圧 152 mmHg。"
    services.revision_save(report=report, actor=personas.physician_a, base_number=1, text=text)
    html = _page(client_for("physician_a"), report)
    assert XSS not in html and "<b>太字</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;太字&lt;/b&gt;" in html
    services.report_sign(report=report, actor=personas.physician_a, revision_number=2, method="password",
                         credential=PASSWORD, confirmed=[issue_key(i) for i in issues_of(_head(report))])
    signed = _page(client_for("physician_a"), report)
    assert XSS not in signed and "&lt;script&gt;alert(1)&lt;/script&gt;" in signed


def test_an_amendment_reason_with_markup_is_shown_as_text(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                         credential=PASSWORD)
    services.report_amend(report=report, actor=personas.physician_a, text="修正後の所見。", reason=XSS,
                          method="password", credential=PASSWORD)
    html = _page(client_for("physician_a"), report)
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_saving_through_the_form_makes_a_new_revision(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report(WRONG_DRAFT)
    client = client_for("physician_a")
    fixed = _head(report).text.replace("6.3", "6.8")
    response = client.post(f"/reports/{report.pk}/save/", {"text": fixed, "base_number": 1}, follow=True)
    html = response.content.decode()
    assert "第2版として保存しました" in html and '<mark class="flag"' not in html
    assert (_head(report).number, _head(report).kind) == (2, RevisionKind.EDIT)
    assert "医師が変更" in html  # the sentence-by-sentence comparison with the model's draft


def test_a_stale_form_save_shows_both_versions_and_overwrites_nothing(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    colleague = clinical_services.user_create(username="physician_a2", password=PASSWORD)
    clinical_services.membership_grant(user=colleague, facility=personas.facility_a, role=Role.PHYSICIAN)
    TOTPDevice.objects.create(user=colleague, name="test", confirmed=True)
    report = draft_report()
    services.revision_save(report=report, actor=personas.physician_a, base_number=1, text="第一の医師の所見。")
    response = login(Client(), colleague).post(f"/reports/{report.pk}/save/",
                                               {"text": "第二の医師の所見。", "base_number": 1})
    assert response.status_code == 409
    html = response.content.decode()
    conflict = html[html.index('id="conflict"'):html.index('id="conflict-mine"')]
    assert "第一の医師の所見。" in conflict and "第二の医師の所見。" in conflict and "第2版" in conflict
    assert " hidden" not in conflict.split(">")[0]
    assert list(report.revisions.values_list("text", flat=True))[-1] == "第一の医師の所見。"


def test_a_wrong_reauthentication_on_the_sign_form_shows_a_clear_error(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    response = client_for("physician_a").post(
        f"/reports/{report.pk}/sign/", {"revision_number": 1, "method": "password", "credential": "wrong"},
        follow=True)
    assert "パスワードが正しくありません。署名されていません。" in response.content.decode()
    assert not SignOff.objects.exists()


def test_staff_posting_the_sign_form_is_refused(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    response = client_for("staff_a").post(f"/reports/{report.pk}/sign/", {
        "revision_number": 1, "method": "password", "credential": PASSWORD})
    assert response.status_code == 403 and not SignOff.objects.exists()


def test_a_flagged_number_holds_the_sign_form_until_confirmed(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report(WRONG_DRAFT)
    client = client_for("physician_a")
    held = client.post(f"/reports/{report.pk}/sign/", {"revision_number": 1, "method": "password",
                                                      "credential": PASSWORD}, follow=True)
    assert "原データと一致しない数値があります" in held.content.decode() and not SignOff.objects.exists()
    key = issue_key(issues_of(_head(report))[0])
    client.post(f"/reports/{report.pk}/sign/", {"revision_number": 1, "method": "password",
                                               "credential": PASSWORD, "confirmed": [key]})
    assert SignOff.objects.get().confirmed_numbers == [key]


def test_a_signed_report_is_read_only_and_shows_the_signature(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    signoff = services.report_sign(report=report, actor=personas.physician_a, revision_number=1,
                                   method="password", credential=PASSWORD)
    html = _page(client_for("physician_a"), report)
    assert 'id="report-text"' not in html and 'id="sign-open"' not in html
    signature = html[html.index('id="signature"'):]
    assert signoff.content_sha256 in signature and "physician_a 氏" in signature and "パスワード" in signature
    assert f'href="/reports/{report.pk}/letter.pdf"' in html and "結果報告書 (PDF)" in html
    assert 'id="amend-form"' in html  # the physician may amend
    assert 'id="amend-form"' not in _page(client_for("staff_a"), report)


def test_an_amendment_through_the_form_shows_amended_with_its_history(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    first = services.report_sign(report=report, actor=personas.physician_a, revision_number=1,
                                 method="password", credential=PASSWORD)
    client = client_for("physician_a")
    response = client.post(f"/reports/{report.pk}/amend/", {
        "text": "血圧の再測定で 152 mmHg を確認しました。", "reason": "再測定値を追記", "method": "password",
        "credential": PASSWORD}, follow=True)
    html = response.content.decode()
    report.refresh_from_db()
    assert report.status == ReportStatus.AMENDED
    second = SignOff.objects.get(amends=first)
    assert "修正済" in html and "修正履歴" in html and "再測定値を追記" in html
    assert first.content_sha256 in html and second.content_sha256 in html


def test_a_refused_amendment_keeps_what_was_typed_and_asks_to_confirm_the_new_flag(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                         credential=PASSWORD)
    client = client_for("physician_a")
    text = _head(report).text + "\nLDL 160 mg/dLも高値です。"
    form = {"text": text, "reason": "脂質を追記", "method": "password", "credential": PASSWORD}
    response = client.post(f"/reports/{report.pk}/amend/", form)
    assert response.status_code == 400
    html = response.content.decode()
    key = re.search(r'name="confirmed" value="([^"]+:160)"', html)
    assert key and "LDL 160 mg/dLも高値です。" in html and 'value="脂質を追記"' in html
    assert PASSWORD not in html  # the credential is never echoed
    client.post(f"/reports/{report.pk}/amend/", {**form, "confirmed": [key.group(1)]})
    report.refresh_from_db()
    assert report.status == ReportStatus.AMENDED


def _visit_of(patient: Any, day: dt.date) -> CheckupVisit:
    visit = CheckupVisit.objects.create(facility=patient.facility, patient=patient, exam_date=day,
                                        course="tokutei", status="screened")
    Observation.objects.create(visit=visit, item="sbp", value_num=Decimal("138"), unit="mmHg", source="test")
    return visit


def test_it_shows_the_patients_prior_signed_reports(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report],
        canned: Callable[..., ModelVersion]) -> None:
    report = draft_report()
    earlier = _visit_of(report.patient, dt.date(2023, 6, 1))
    job = inference_services.job_create(actor=personas.physician_a, visit=earlier,
                                        model_version=canned(GOOD_DRAFT.replace("152", "138")))
    assert runner.run_job(job.pk) == "succeeded"
    prior = Report.objects.get(visit=earlier)
    services.revision_save(report=prior, actor=personas.physician_a, base_number=1, text="昨年の所見: 血圧 138 mmHg。")
    services.report_sign(report=prior, actor=personas.physician_a, revision_number=2, method="password",
                         credential=PASSWORD, confirmed=[issue_key(i) for i in issues_of(_head(prior))])
    html = _page(client_for("physician_a"), report)
    panel = html[html.index("過去の署名済み所見"):]
    assert f'href="/reports/{prior.pk}/"' in panel and "昨年の所見: 血圧 138 mmHg。" in panel


def test_a_study_report_links_the_image_viewer(personas: Personas, client_for: Callable[[str], Client],
                                               draft_report: Callable[..., Report]) -> None:
    patient = draft_report().patient
    study = Study.objects.create(facility=personas.facility_a, patient=patient, study_instance_uid="1.2.3.4",
                                 modalities="CR", study_description="胸部正面")
    report = Report.objects.create(facility=personas.facility_a, patient=patient, study=study, kind="cxr")
    ReportRevision.objects.create(report=report, number=1, kind=RevisionKind.EDIT, text="胸部に異常なし。",
                                  author_user=personas.physician_a)
    html = _page(client_for("physician_a"), report)
    assert f'href="/dicom/studies/{study.pk}/" id="viewer-link"' in html and "胸部X線" in html


def test_next_and_previous_drafts_follow_the_worklist_order(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    first, second = draft_report(), draft_report()
    client = client_for("physician_a")
    html = _page(client, first)
    assert f'href="/reports/{second.pk}/" rel="next"' in html and 'rel="prev"' not in html
    assert f'href="/reports/{first.pk}/" rel="prev"' in _page(client, second)


def test_physicians_and_admins_get_the_worklist_link_and_the_visit_links_its_report(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    assert 'href="/reports/">所見一覧</a>' in client_for("physician_a").get("/").content.decode()
    assert 'href="/reports/">所見一覧</a>' in client_for("admin_a").get("/").content.decode()
    assert 'href="/reports/"' not in client_for("staff_a").get("/").content.decode()
    visit_page = client_for("staff_a").get(f"/visits/{report.visit_id}/").content.decode()
    assert f'href="/reports/{report.pk}/">所見を開く（下書き）</a>' in visit_page
