"""The reports API: read a report, save revisions (a second save on a stale revision gets both
texts back, never a lost update), sign with re-authentication once every flagged number is
corrected or confirmed, amend; 403 for someone of the facility who is not its physician, 404
outside the user's facilities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical import services as clinical_services
from clinical.models import Role
from reports import services
from reports.models import Report, ReportStatus, SignOff
from tests.conftest import PASSWORD, Personas, login
from tests.reports.conftest import WRONG_DRAFT

pytestmark = pytest.mark.django_db


def _url(report: Report, action: str = "") -> str:
    return f"/reports/api/{report.pk}/" + (f"{action}/" if action else "")


def _post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, body, content_type="application/json")


def _head_text(report: Report) -> str:
    return report.revisions.order_by("-number")[0].text


def test_it_gives_the_physician_the_head_revision_with_its_flagged_numbers(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report(WRONG_DRAFT)
    response = client_for("physician_a").get(_url(report))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "draft" and body["can_sign"] and body["head"]["number"] == 1
    issue = body["head"]["issues"][0]
    assert issue["text"] == "6.3" and issue["key"] == f"{issue['start']}:6.3"
    assert body["head"]["text"][issue["start"]:issue["end"]].startswith("6.3")
    assert any(s["value"].startswith("6.8") for s in issue["sources"])
    read = audit_events(kind="phi_read", object_type="reports.report")
    assert read[-1].object_id == str(report.pk) and read[-1].patient_id == report.patient_id


@pytest.mark.parametrize("who", ["staff_a", "admin_a", "auditor_a"])
def test_it_shows_the_report_to_others_of_the_facility_without_signing_rights(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], who: str) -> None:
    body = client_for(who).get(_url(draft_report())).json()
    assert (body["can_edit"], body["can_sign"], body["can_amend"]) == (False, False, False)


def test_it_answers_404_to_a_physician_of_another_facility_and_records_it(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report()
    client = client_for("physician_b")
    assert client.get(_url(report)).status_code == 404
    assert _post(client, _url(report, "revisions"), {"text": "x", "base_number": 1}).status_code == 404
    assert _post(client, _url(report, "sign"), {"revision_number": 1, "method": "password",
                                                "credential": PASSWORD}).status_code == 404
    denied = audit_events(kind="access_denied", object_type="reports.report")
    assert denied and denied[0].object_id == str(report.pk)
    assert report.revisions.count() == 1 and not SignOff.objects.exists()


def test_it_saves_a_revision_and_answers_its_number_flags_and_changes(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report(WRONG_DRAFT)
    client = client_for("physician_a")
    fixed = _head_text(report).replace("6.3", "6.8")
    response = _post(client, _url(report, "revisions"), {"text": fixed, "base_number": 1, "autosave": True})
    assert response.status_code == 201
    body = response.json()
    assert body["created"] and body["report_status"] == ReportStatus.IN_REVIEW
    assert body["report_status_label"] == "確認中"
    assert (body["revision"]["number"], body["revision"]["kind"], body["revision"]["issues"]) == (2, "autosave", [])
    assert [c["status"] for c in body["changes"]].count("edited") == 1
    again = _post(client, _url(report, "revisions"), {"text": fixed, "base_number": 2, "autosave": True})
    assert again.status_code == 200 and again.json()["created"] is False and report.revisions.count() == 2


def test_a_stale_save_gets_a_conflict_with_both_versions_and_writes_nothing(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    colleague = clinical_services.user_create(username="physician_a2", password=PASSWORD)
    clinical_services.membership_grant(user=colleague, facility=personas.facility_a, role=Role.PHYSICIAN)
    TOTPDevice.objects.create(user=colleague, name="test", confirmed=True)
    report = draft_report()
    url = _url(report, "revisions")
    first = _post(client_for("physician_a"), url, {"text": "第一の医師の所見。", "base_number": 1})
    assert first.status_code == 201
    second = _post(login(Client(), colleague), url, {"text": "第二の医師の所見。", "base_number": 1})
    assert second.status_code == 409
    body = second.json()
    assert body["code"] == "conflict" and "第2版" in body["error"]
    assert body["current"]["number"] == 2 and body["current"]["text"] == "第一の医師の所見。"
    assert body["yours"] == "第二の医師の所見。"
    assert list(report.revisions.values_list("number", flat=True)) == [1, 2]


def test_it_refuses_an_empty_text_with_the_services_message(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    response = _post(client_for("physician_a"), _url(draft_report(), "revisions"), {"text": "  ", "base_number": 1})
    assert response.status_code == 400 and "本文が空です" in response.json()["error"]


@pytest.mark.parametrize("who", ["staff_a", "admin_a"])
def test_it_refuses_to_let_a_non_physician_of_the_facility_save_or_sign(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], who: str) -> None:
    report = draft_report()
    client = client_for(who)
    saved = _post(client, _url(report, "revisions"), {"text": "書き換え", "base_number": 1})
    signed = _post(client, _url(report, "sign"), {"revision_number": 1, "method": "password", "credential": PASSWORD})
    assert (saved.status_code, signed.status_code) == (403, 403)
    assert signed.json()["code"] == "not_permitted" and "医師だけ" in signed.json()["error"]
    assert report.revisions.count() == 1 and not SignOff.objects.exists()


def test_the_auditor_cannot_sign_either(client_for: Callable[[str], Client],
                                        draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    response = _post(client_for("auditor_a"), _url(report, "sign"),
                     {"revision_number": 1, "method": "password", "credential": PASSWORD})
    assert response.status_code in (403, 404) and not SignOff.objects.exists()


def test_a_wrong_reauthentication_is_refused_with_a_clear_message_and_recorded(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report()
    response = _post(client_for("physician_a"), _url(report, "sign"),
                     {"revision_number": 1, "method": "password", "credential": "not-my-password"})
    assert response.status_code == 400
    assert response.json() == {"error": "パスワードが正しくありません。署名されていません。", "code": "reauth_failed"}
    wrong_code = _post(client_for("physician_a"), _url(report, "sign"),
                       {"revision_number": 1, "method": "totp", "credential": "000000"})
    assert "認証コードが正しくありません" in wrong_code.json()["error"]
    assert len(audit_events(kind="sign", outcome="failure")) == 2 and not SignOff.objects.exists()


def test_a_flagged_number_blocks_signing_until_it_is_corrected(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report(WRONG_DRAFT)
    client = client_for("physician_a")
    held = _post(client, _url(report, "sign"), {"revision_number": 1, "method": "password", "credential": PASSWORD})
    assert held.status_code == 400 and held.json()["code"] == "unconfirmed_numbers"
    assert [i["text"] for i in held.json()["unconfirmed"]] == ["6.3"]
    fixed = _head_text(report).replace("6.3", "6.8")
    assert _post(client, _url(report, "revisions"), {"text": fixed, "base_number": 1}).status_code == 201
    signed = _post(client, _url(report, "sign"), {"revision_number": 2, "method": "password", "credential": PASSWORD})
    assert signed.status_code == 200
    body = signed.json()
    assert body["revision_number"] == 2 and len(body["content_sha256"]) == 64 and body["physician"] == "physician_a"
    report.refresh_from_db()
    assert report.status == ReportStatus.SIGNED


def test_a_flagged_number_the_physician_confirms_can_be_signed(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report(WRONG_DRAFT)
    client = client_for("physician_a")
    key = client.get(_url(report)).json()["head"]["issues"][0]["key"]
    signed = _post(client, _url(report, "sign"), {"revision_number": 1, "method": "password", "credential": PASSWORD,
                                                  "confirmed": [key]})
    assert signed.status_code == 200 and SignOff.objects.get().confirmed_numbers == [key]


def test_signing_a_stale_revision_or_a_signed_report_is_a_conflict(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    client = client_for("physician_a")
    services.revision_save(report=report, actor=personas.physician_a, base_number=1, text="新しい所見。")
    stale = _post(client, _url(report, "sign"), {"revision_number": 1, "method": "password", "credential": PASSWORD})
    assert stale.status_code == 409 and stale.json()["current"]["number"] == 2
    assert _post(client, _url(report, "sign"), {"revision_number": 2, "method": "password",
                                                "credential": PASSWORD}).status_code == 200
    again = _post(client, _url(report, "sign"), {"revision_number": 2, "method": "password", "credential": PASSWORD})
    assert again.status_code == 409 and again.json()["code"] == "locked"
    edit = _post(client, _url(report, "revisions"), {"text": "後から変更", "base_number": 2})
    assert edit.status_code == 409 and edit.json()["code"] == "locked"


def test_it_amends_a_signed_report_with_a_reason_and_a_new_signature(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    first = services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                                 credential=PASSWORD)
    client = client_for("physician_a")
    no_reason = _post(client, _url(report, "amend"), {"text": "修正後。", "reason": "", "method": "password",
                                                      "credential": PASSWORD})
    assert no_reason.status_code == 400 and "修正理由" in no_reason.json()["error"]
    amended = _post(client, _url(report, "amend"), {"text": "修正後の所見。", "reason": "再測定値を反映",
                                                    "method": "password", "credential": PASSWORD})
    assert amended.status_code == 200
    body = amended.json()
    assert body["amends"] is True and body["reason"] == "再測定値を反映" and body["revision_number"] == 2
    assert body["content_sha256"] != first.content_sha256
    detail = client.get(_url(report)).json()
    assert detail["status"] == "amended" and detail["can_amend"] and detail["signoff"]["amends"]


def test_an_amendment_with_a_new_unmatched_number_asks_for_confirmation(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                         credential=PASSWORD)
    client = client_for("physician_a")
    text = _head_text(report) + "\nLDL 160 mg/dLも高値です。"
    body = {"text": text, "reason": "脂質の所見を追加", "method": "password", "credential": PASSWORD}
    held = _post(client, _url(report, "amend"), body)
    assert held.status_code == 400 and held.json()["unconfirmed"][0]["text"] == "160"
    assert report.revisions.count() == 1  # nothing kept from the refused amendment
    done = _post(client, _url(report, "amend"), {**body, "confirmed": [held.json()["unconfirmed"][0]["key"]]})
    assert done.status_code == 200


def test_the_api_checks_the_csrf_token_of_a_session(personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    client = login(Client(enforce_csrf_checks=True), personas.physician_a)
    response = _post(client, _url(report, "revisions"), {"text": "x", "base_number": 1})
    assert response.status_code == 403 and report.revisions.count() == 1


def test_the_openapi_schema_lists_the_report_endpoints(client_for: Callable[[str], Client]) -> None:
    response = client_for("physician_a").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/reports/api/{id}/", "/reports/api/{id}/revisions/", "/reports/api/{id}/sign/",
            "/reports/api/{id}/amend/"} <= set(paths)
    sign = paths["/reports/api/{id}/sign/"]["post"]
    assert {"200", "400", "403", "409"} <= set(sign["responses"])


def test_it_answers_json_not_a_login_redirect_when_the_second_factor_is_missing(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    report = draft_report()
    response = login(Client(), personas.physician_a, second_factor=False).get(f"/reports/api/{report.pk}/")
    assert response.status_code == 403
    assert response.json() == {"detail": "二要素認証が完了していません。", "code": "second_factor_required"}
