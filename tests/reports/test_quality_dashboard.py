"""The AI quality dashboard: per model version and task, what physicians did with the drafts,
weekly plots, and shadow versions against the version in force on the same visits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical import services as clinical_services
from clinical.models import Role
from inference import runner
from inference import services as inference_services
from inference.models import ModelVersion
from reports import services
from reports.dashboard import selectors
from reports.models import Report
from tests.conftest import PASSWORD, Personas, login

pytestmark = pytest.mark.django_db
URL = "/reports/quality/"


def _sign(report: Report, actor: Any, text: str | None = None) -> None:
    number = 1
    if text is not None:
        number = services.revision_save(report=report, actor=actor, base_number=1, text=text).number
    services.report_sign(report=report, actor=actor, revision_number=number, method="password", credential=PASSWORD)


def test_it_counts_drafts_signatures_unedited_share_and_edit_distance_per_model(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    unedited, edited, waiting = draft_report(), draft_report(), draft_report()
    _sign(unedited, personas.physician_a)
    draft_text = edited.revisions.get(number=1).text
    _sign(edited, personas.physician_a, draft_text + "\n減塩を勧めます。")
    rows = selectors.model_rows([personas.facility_a.pk])
    assert waiting.status == "draft"
    by_model: dict[int | None, Any] = {r.model_version.pk: r for r in rows}
    # Each draft_report() registers its own canned version: three rows, one draft each.
    assert sorted((r.drafts, r.signed) for r in rows) == [(1, 0), (1, 1), (1, 1)]
    edited_row = by_model[edited.revisions.get(number=1).author_model_version_id]
    assert edited_row.signed_without_edits == 0 and edited_row.mean_edit_distance == len("\n減塩を勧めます。")
    assert edited_row.sentences_added == 1 and edited_row.median_seconds_to_sign is not None
    unedited_row = by_model[unedited.revisions.get(number=1).author_model_version_id]
    assert unedited_row.unedited_share == 1.0 and unedited_row.mean_edit_distance == 0


def test_it_shows_administrators_the_table_and_weekly_plots(
        personas: Personas, draft_report: Callable[..., Report], client_for: Any, audit_events: Any) -> None:
    _sign(draft_report(), personas.physician_a)
    response = client_for("admin_a").get(URL)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="quality-rows"' in body and 'data-task="checkup_summary"' in body
    assert body.count('<svg class="qchart"') == 3 and "平均編集距離" in body
    assert audit_events(object_type="reports.quality_dashboard")[0].user_id == personas.admin_a.pk


@pytest.mark.parametrize("who", ["staff_a", "physician_a", "auditor_a", "physician_b"])
def test_it_is_for_facility_administrators_only(client_for: Any, who: str) -> None:
    assert client_for(who).get(URL).status_code == 403


def test_an_administrator_of_another_facility_sees_none_of_its_numbers(
        personas: Personas, draft_report: Callable[..., Report]) -> None:
    _sign(draft_report(), personas.physician_a)
    admin_b = clinical_services.user_create(username="admin_b", password=PASSWORD)
    clinical_services.membership_grant(user=admin_b, facility=personas.facility_b, role=Role.ADMIN)
    TOTPDevice.objects.create(user=admin_b, name="test", confirmed=True)  # administrators need 2FA
    body = login(Client(), admin_b).get(URL).content.decode()
    assert "data-model=" not in body and "この期間に下書きはありません" in body
    # Nor by asking for facility A explicitly.
    body = login(Client(), admin_b).get(
        URL, {"facility": personas.facility_a.pk}).content.decode()
    assert "選択できない施設です" in body and "data-model=" not in body


def test_it_explains_a_bad_date_range(client_for: Any) -> None:
    body = client_for("admin_a").get(URL, {"since": "2026-13-01"}).content.decode()
    assert "YYYY-MM-DD" in body
    body = client_for("admin_a").get(URL, {"since": "2026-05-01", "until": "2026-04-01"}).content.decode()
    assert "開始日は終了日より前" in body


def test_it_compares_a_shadow_version_with_the_version_in_force_on_the_same_visits(
        personas: Personas, draft_report: Callable[..., Report], request: pytest.FixtureRequest) -> None:
    report = draft_report()
    final = report.revisions.get(number=1).text
    canned: Callable[..., ModelVersion] = request.getfixturevalue("canned")
    shadow = canned('{"findings": [], "impression": "異常なし。", '
                    '"follow_up": {"needed": false, "recommendation": ""}}')
    ModelVersion.objects.filter(pk=shadow.pk).update(shadow=True)
    shadow.refresh_from_db()
    assert report.visit is not None
    job = inference_services.job_create(actor=personas.physician_a, visit=report.visit, model_version=shadow)
    assert runner.run_job(job.pk) == "succeeded"
    _sign(report, personas.physician_a)
    rows = selectors.shadow_rows([personas.facility_a.pk])
    assert len(rows) == 1
    row = rows[0]
    assert (row.shadow.pk, row.task, row.compared, row.in_force_mean_distance) == (
        shadow.pk, "checkup_summary", 1, 0.0)
    assert row.shadow_mean_distance and row.shadow_mean_distance > 0 and row.shadow_closer == 0
    assert row.examples == [report.pk] and final


def test_it_renders_in_a_fixed_number_of_queries(
        personas: Personas, draft_report: Callable[..., Report], client_for: Any,
        django_assert_max_num_queries: Any) -> None:
    client = client_for("admin_a")
    _sign(draft_report(), personas.physician_a)
    client.get(URL)  # warm per-process caches (content types, rule sets)
    with django_assert_max_num_queries(30) as few:
        client.get(URL)
    for _ in range(4):
        _sign(draft_report(), personas.physician_a)
    with django_assert_max_num_queries(30) as many:
        client.get(URL)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_nav_links_to_the_dashboard_for_administrators(client_for: Any) -> None:
    assert reverse("reports_quality_dashboard") in client_for("admin_a").get("/").content.decode()
    assert reverse("reports_quality_dashboard") not in client_for("physician_a").get("/").content.decode()
